/**
 * `raw`: what nats.js alone does on this machine, the floor every msgsys figure is read against.
 * - publish: js.publish of N messages, `inFlight` awaiting their ack at once (a new one starts as
 *   one is acked);
 * - consume + ack: one consume() (max_messages 1024) drains the N messages, acking each; timed
 *   until the work-queue stream is empty, i.e. every ack reached the server;
 * - consume + KV put + ack: the same, storing a result-sized record per message in a KV bucket
 *   and acking once the put is confirmed, at most `concurrency` messages in hand at once (as the
 *   msgsys drain's actor).
 * Each run uses fresh streams and a fresh bucket; filling a stream before a drain is not timed.
 */
import type { JsMsg } from "@nats-io/jetstream"
import type { KV } from "@nats-io/kv"
import type { Env, Runner, Section } from "./support/Section.ts"
import * as Js from "./support/jetstream.ts"
import { perSecond } from "./support/stats.ts"

/** A record the size and shape of an msgsys task's final status. */
const resultRecord = (seq: number) =>
  JSON.stringify({
    id: `01JBENCH${String(seq).padStart(18, "0")}`,
    subject: "bench.echo",
    tenant: "default",
    status: "succeeded",
    attempt: 1,
    updatedAt: 1_700_000_000_000 + seq,
    output: { n: seq },
    startedAt: 1_700_000_000_000 + seq,
    endedAt: 1_700_000_000_000 + seq
  })

/** Publishes `n` messages with `inFlight` acks outstanding; returns milliseconds. */
export const publish = async (c: Js.Connection, subject: string, n: number, inFlight: number) => {
  const started = performance.now()
  await Js.windowed(n, inFlight, (i) => c.js.publish(`${subject}.echo`, Js.body(i)))
  return performance.now() - started
}

/** Drains `n` messages from the stream's consumer, `handle` settling each; returns milliseconds until the stream is empty. */
const drain = async (c: Js.Connection, stream: string, n: number, handle: (m: JsMsg) => Promise<void> | void) => {
  const consumer = await c.js.consumers.get(stream, Js.consumerName)
  const started = performance.now()
  const messages = await consumer.consume({ max_messages: 1024 })
  let received = 0
  for await (const m of messages) {
    const settled = handle(m)
    if (settled) await settled
    if (++received === n) break
  }
  await Js.waitForCount(c.jsm, stream, 0, Js.stallTimeout(n))
  const ms = performance.now() - started
  await messages.close()
  return ms
}

/** consume + ack: decode each message and ack it (acks are not awaited: nats.js sends them and moves on). */
export const consumeAck = (c: Js.Connection, stream: string, n: number) =>
  drain(c, stream, n, (m) => {
    JSON.parse(m.string())
    m.ack()
  })

/**
 * consume + KV put + ack: up to `concurrency` puts in flight; each message is acked when its put
 * is confirmed. The loop waits only when all slots are taken.
 */
export const consumeKvAck = async (c: Js.Connection, kv: KV, stream: string, n: number, concurrency: number) => {
  let inHand = 0
  let freed: (() => void) | undefined
  let failure: unknown
  const ms = await drain(c, stream, n, async (m) => {
    if (failure) throw failure
    const { n: seq } = JSON.parse(m.string()) as { n: number }
    inHand++
    kv.put(`t${seq}`, resultRecord(seq)).then(
      () => m.ack(),
      (e: unknown) => (failure = e)
    ).finally(() => {
      inHand--
      freed?.()
      freed = undefined
    })
    while (inHand >= concurrency) await new Promise<void>((r) => (freed = r))
  })
  if (failure) throw failure
  return ms
}

/** One run of the three figures on fresh streams named after `tag`. */
const runOnce = async (c: Js.Connection, env: Env, n: number) => {
  const tag = env.unique("raw")
  const subject = tag.toLowerCase()
  const stream = `${tag}_TASKS`
  const kvStream = `${tag}_KVTASKS`
  await Js.createWorkQueue(c.jsm, stream, subject)
  await Js.createWorkQueue(c.jsm, kvStream, `${subject}kv`)
  const kv = await c.kvm.create(`${tag}_results`, { history: 1, ttl: 7 * 24 * 3600 * 1000 })
  try {
    const publishMs = await publish(c, subject, n, env.settings.inFlight)
    await Js.waitForCount(c.jsm, stream, n, 10_000)
    const consumeAckMs = await consumeAck(c, stream, n)
    await publish(c, `${subject}kv`, n, env.settings.inFlight)
    const consumeKvAckMs = await consumeKvAck(c, kv, kvStream, n, env.settings.concurrency)
    const stored = (await kv.status()).values
    if (stored !== n) throw new Error(`raw consume+KV: ${stored} records stored, expected ${n}`)
    return {
      publish: perSecond(n, publishMs),
      consumeAck: perSecond(n, consumeAckMs),
      consumeKvAck: perSecond(n, consumeKvAckMs)
    }
  } finally {
    await Js.deleteStreams(c.jsm, tag, `KV_${tag}`)
  }
}

export const section: Section = {
  name: "raw",
  title: "raw nats.js",
  figures: (s) => [
    { key: "publish", label: `js.publish, ${s.inFlight} in flight`, unit: "msgs/s" },
    { key: "consumeAck", label: "consume (max_messages 1024) + ack", unit: "msgs/s" },
    { key: "consumeKvAck", label: `consume + KV put + ack, ${s.concurrency} in hand`, unit: "msgs/s" }
  ],
  setup: async (env): Promise<Runner> => {
    const c = await Js.connect(env.url)
    if (env.settings.warmup > 0) await runOnce(c, env, env.settings.warmup)
    return {
      run: () => runOnce(c, env, env.settings.tasks),
      close: () => c.nc.drain()
    }
  }
}
