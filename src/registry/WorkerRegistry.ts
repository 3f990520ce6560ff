/**
 * The workers alive now. Each worker announces itself (host, pid, version, actors, pools, since,
 * in-flight work) under its id in the workers bucket every few seconds, and deletes its entry
 * when it shuts down gracefully; a worker that dies stops announcing, and its entry expires with
 * the bucket's TTL (the reader also skips entries whose last heartbeat is too old). Like BullMQ's
 * `getWorkers` and Oban's node list, so `msgsys status` and the dashboard can say who is working.
 * This module holds the format and the reader; `Announcer` is the worker's side.
 * @since 0.1.0
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { Clock, Duration, Effect, Schema } from "effect"
import { brokerFailure } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import type * as Topology from "../broker/Topology.ts"

/** How often a worker announces itself. @category constants @since 0.1.0 */
export const heartbeatEvery: Duration.Duration = Duration.seconds(5)

/** An entry whose last heartbeat is older than this is not alive (three heartbeats missed). @category constants @since 0.1.0 */
export const staleAfter: Duration.Duration = Duration.seconds(15)

/** One actor as its worker runs it. @category models @since 0.1.0 */
export const ActorEntry = Schema.Struct({
  name: Schema.String,
  pool: Schema.String,
  concurrency: Schema.Number,
  /** Handlers running. */
  inFlight: Schema.Number,
  /** Messages held: running, waiting to start, being settled. */
  held: Schema.Number,
  paused: Schema.Boolean,
  consuming: Schema.Boolean,
  restarts: Schema.Number
})

/** What a worker says about itself. @category models @since 0.1.0 */
export const Announcement = Schema.Struct({
  id: Schema.String,
  host: Schema.String,
  pid: Schema.Number,
  version: Schema.String,
  actors: Schema.Array(ActorEntry),
  pools: Schema.Array(Schema.Struct({ name: Schema.String, size: Schema.Number, inFlight: Schema.Number })),
  /** Handlers running, across its actors. */
  inFlight: Schema.Number,
  /** When it started, epoch ms. */
  since: Schema.Number,
  /** When it sent this, epoch ms. */
  heartbeatAt: Schema.Number,
  /** Its HTTP port (health, metrics, dashboard); absent when HTTP is off. */
  httpPort: Schema.optionalKey(Schema.Number)
})

/** @category models @since 0.1.0 */
export type Announcement = typeof Announcement.Type

const decode = Schema.decodeUnknownOption(Schema.fromJsonString(Announcement))

/**
 * The workers bucket: history 1, entries expire after `staleAfter` plus a margin without a
 * heartbeat. Part of the shared topology.
 * @category topology @since 0.1.0
 */
export const bucket = (names: Subjects.Names): Topology.KvSpec => ({
  bucket: names.workersBucket,
  history: 1,
  ttl: Duration.sum(staleAfter, Duration.seconds(15)),
  description: "msgsys workers alive now (each announces itself every few seconds)"
})

const isMissingStream = (e: unknown) => e instanceof JetStreamApiError && e.code === 10059

/**
 * The workers alive now, oldest first: entries of the workers bucket with a heartbeat within
 * `staleAfter`. No bucket (no worker has run yet) is no workers.
 * @category reading @since 0.1.0
 */
export const list = Effect.fn("WorkerRegistry.list")(function*(names: Subjects.Names) {
  const nats = yield* Nats
  const stream = `KV_${names.workersBucket}`
  const exists = yield* Effect.tryPromise({
    try: () => nats.manager.streams.info(stream).then(() => true, (e) => isMissingStream(e) ? false : Promise.reject(e)),
    catch: brokerFailure(`read the workers bucket ${names.workersBucket}`)
  })
  if (!exists) return []
  const now = yield* Clock.currentTimeMillis
  const entries = yield* Effect.tryPromise({
    try: async () => {
      const kv = await nats.kvm.open(names.workersBucket)
      const out: Array<Announcement> = []
      for await (const key of await kv.keys()) {
        const e = await kv.get(key)
        if (e === null || e.operation !== "PUT") continue
        const a = decode(e.string())
        if (a._tag === "Some") out.push(a.value)
      }
      return out
    },
    catch: brokerFailure(`read the workers bucket ${names.workersBucket}`)
  })
  return entries
    .filter((a) => now - a.heartbeatAt <= Duration.toMillis(staleAfter))
    .sort((a, b) => a.since - b.since || a.id.localeCompare(b.id))
})
