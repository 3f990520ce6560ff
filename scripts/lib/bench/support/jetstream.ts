/**
 * Raw nats.js for the baselines and the bookkeeping of every section: streams shaped like an
 * msgsys actor's (work queue, file storage, one durable pull consumer with explicit acks and the
 * same ack_wait and max_ack_pending), windowed publishing, and waiting for a stream to empty.
 */
import { AckPolicy, jetstream, type JetStreamManager, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect as natsConnect, nanos } from "@nats-io/transport-node"

/** A connection with its JetStream handles. */
export const connect = async (url: string) => {
  const nc = await natsConnect({ servers: url, name: "msgsys-bench" })
  return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc), kvm: new Kvm(nc) }
}
export type Connection = Awaited<ReturnType<typeof connect>>

/** The consumer name of every raw stream. */
export const consumerName = "worker"

/** msgsys's defaults for its task consumers (ActorTopology): the raw side gets the same. */
const ackWaitMs = 30_000
const maxAckPending = 10_000

/**
 * A work-queue stream on `subject.>` with one durable pull consumer, as msgsys declares an actor's.
 * `ackPending` raises max_ack_pending for a consumer that holds more unacked messages.
 */
export const createWorkQueue = async (jsm: JetStreamManager, stream: string, subject: string, ackPending = maxAckPending) => {
  await jsm.streams.add({
    name: stream,
    subjects: [`${subject}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File
  })
  await jsm.consumers.add(stream, {
    durable_name: consumerName,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: ackPending,
    filter_subject: `${subject}.>`
  })
}

/** Calls `send(i)` for i in [0, n), with `window` calls in flight at once (a new one starts as one ends). */
export const windowed = async (n: number, window: number, send: (i: number) => Promise<unknown>) => {
  let next = 0
  const lane = async () => {
    while (next < n) await send(next++)
  }
  await Promise.all(Array.from({ length: Math.min(window, n) }, lane))
}

/** The body every bench message carries, raw or msgsys: the same bytes on both sides. */
export const body = (n: number, sentAt = 0) => JSON.stringify({ n, sentAt })

/** Messages in `stream` now. */
export const count = async (jsm: JetStreamManager, stream: string) => (await jsm.streams.info(stream)).state.messages

/**
 * Waits until `stream` holds exactly `expected` messages; a work-queue stream drops a message once
 * it is acked, so `expected = 0` means every message was acked. Polls every millisecond.
 */
export const waitForCount = async (jsm: JetStreamManager, stream: string, expected: number, timeoutMs: number) => {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const messages = await count(jsm, stream)
    if (messages === expected) return
    if (performance.now() > deadline) {
      throw new Error(`stream ${stream} holds ${messages} messages after ${timeoutMs} ms, expected ${expected}`)
    }
    await Bun.sleep(1)
  }
}

/** Deletes every stream (KV buckets included) whose name starts with one of `prefixes`. */
export const deleteStreams = async (jsm: JetStreamManager, ...prefixes: ReadonlyArray<string>) => {
  const doomed: Array<string> = []
  for await (const name of jsm.streams.names()) {
    if (prefixes.some((p) => name.startsWith(p))) doomed.push(name)
  }
  for (const name of doomed) await jsm.streams.delete(name)
}

/** How long a figure may take before the bench calls it stuck: generous, it only stops a hang. */
export const stallTimeout = (messages: number) => Math.max(60_000, messages * 5)
