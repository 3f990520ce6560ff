/**
 * The raw nats.js twin of msgsys-producer: js.publish of `total` messages at `rate` per second on
 * a fixed schedule, each carrying the time it was published. Messages: ready, done.
 */
import * as Io from "../support/childIo.ts"
import { now } from "../support/clock.ts"
import * as Js from "../support/jetstream.ts"
import { paced } from "../support/pace.ts"

interface Settings {
  readonly url: string
  readonly subject: string
  readonly rate: number
  readonly total: number
}

Io.run(async () => {
  const s = Io.settings<Settings>()
  const c = await Js.connect(s.url)
  Io.emit({ type: "ready" })
  const result = await paced(s.rate, s.total, (n) => c.js.publish(s.subject, Js.body(n, now())))
  Io.emit({ type: "done", ...result })
  await c.nc.drain()
  process.exit(0)
})
