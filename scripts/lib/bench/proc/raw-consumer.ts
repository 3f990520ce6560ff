/**
 * The raw nats.js twin of msgsys-worker: one consume() (max_messages 1024) on a durable pull
 * consumer.
 * - latency: note (now - sentAt) on receipt, ack; report all after `total` messages;
 * - hold: keep every message unacked; after `total`, report "holding"; on "release" ack them all.
 * Messages: ready; done {latencies} | holding {count}, released. Commands: release, stop.
 */
import type { JsMsg } from "@nats-io/jetstream"
import * as Io from "../support/childIo.ts"
import { now } from "../support/clock.ts"
import * as Js from "../support/jetstream.ts"

interface Settings {
  readonly url: string
  readonly stream: string
  readonly mode: "latency" | "hold"
  readonly total: number
  readonly warmup: number
}

Io.run(async () => {
  const s = Io.settings<Settings>()
  const c = await Js.connect(s.url)
  const consumer = await c.js.consumers.get(s.stream, Js.consumerName)
  const messages = await consumer.consume({ max_messages: 1024 })
  const held: Array<JsMsg> = []
  Io.on("release", () => {
    for (const m of held) m.ack()
    void c.nc.flush().then(() => Io.emit({ type: "released", count: held.length }))
  })
  Io.on("stop", () => {
    c.nc.drain().then(() => process.exit(0), () => process.exit(1))
  })
  Io.emit({ type: "ready" })
  const latencies: Array<number> = []
  let seen = 0
  for await (const m of messages) {
    if (s.mode === "latency") {
      const at = now()
      const { n, sentAt } = JSON.parse(m.string()) as { n: number; sentAt: number }
      if (n >= s.warmup) latencies.push(at - sentAt)
      m.ack()
      if (++seen === s.total) {
        Io.emit({ type: "done", latencies })
        break
      }
    } else {
      held.push(m)
      if (++seen === s.total) {
        Io.emit({ type: "holding", count: seen })
        break
      }
    }
  }
})
