/**
 * `dispatch`: microseconds per message of decode + route + handler call + settle, in-process,
 * with fake deliveries and in-memory stores (no broker). It measures the rebuilt dispatch, which
 * does not exist yet: the lead fills `run` in when it lands. Until then the figure is "n/a".
 */
import { na, type Runner, type Section } from "./support/Section.ts"

export const section: Section = {
  name: "dispatch",
  title: "msgsys dispatch in-process",
  figures: () => [{ key: "perMessage", label: "decode + route + handler + settle", unit: "µs/msg", digits: 2 }],
  setup: async (): Promise<Runner> => ({
    run: async () => ({ perMessage: na("not yet") }),
    close: async () => {}
  })
}
