/**
 * The broker overview `msgsys status` prints, against a real nats-server.
 */
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import * as Nats from "../../../src/broker/Nats.ts"
import * as Topology from "../../../src/broker/Topology.ts"
import * as Overview from "../../../src/cli/Overview.ts"
import { natsHarness, uniqueName } from "../../support/harness.ts"

const h = natsHarness()

describe("Overview.describe", () => {
  test("lists streams with their counts and consumers with pending and ack pending", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      yield* Topology.apply({
        streams: [{ name: base, subjects: [`${base}.a.>`, `${base}.b.>`], retention: "workqueue" }],
        consumers: [
          { stream: base, name: "a", filterSubject: `${base}.a.>` },
          { stream: base, name: "b", filterSubject: `${base}.b.>` }
        ],
        kv: []
      })
      const nats = yield* Nats.Nats
      yield* Effect.promise(() => nats.jetstream.publish(`${base}.a.1`, "x"))
      yield* Effect.promise(() => nats.jetstream.publish(`${base}.b.1`, "y"))
      const overview = yield* Overview.describe(nats, { prefix: base })
      const stream = overview.streams.find((s) => s.name === base)
      expect(stream).toMatchObject({ name: base, messages: 2, consumers: 2, retention: "workqueue" })
      expect(overview.consumers.filter((c) => c.stream === base).map((c) => [c.name, c.filter, c.pending, c.ackPending]))
        .toEqual([["a", `${base}.a.>`, 1, 0], ["b", `${base}.b.>`, 1, 0]])
      expect(overview.streams.every((s) => s.name.startsWith(base))).toBe(true)
    })))
})
