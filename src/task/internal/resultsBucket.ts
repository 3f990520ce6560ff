/**
 * Opening the results bucket, which three modules share: task status records (`Results`), the
 * enqueue key index (`EnqueueKeys`) and cancel requests (`CancelRequests`), each under keys of its
 * own. One bucket keeps them under one TTL and one storage bound.
 * @since 0.1.0
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import type { KV } from "@nats-io/kv"
import { Duration, Effect } from "effect"
import { brokerFailure, retryTransient } from "../../broker/BrokerError.ts"
import { Nats } from "../../broker/Nats.ts"
import * as Subjects from "../../broker/Subjects.ts"
import { MsgsysConfig } from "../../config/MsgsysConfig.ts"

/** Opens (creating if missing) the bucket. */
export const open = (bucket: string, ttl: Duration.Duration) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    const kv: KV = yield* Effect.tryPromise({
      try: () => nats.kvm.create(bucket, { ttl: Duration.toMillis(ttl), history: 1, replicas: nats.replicas }),
      catch: brokerFailure(`open results bucket ${bucket}`)
    }).pipe(retryTransient)
    return { nats, kv }
  })

/** The bucket again, for reads, which are asked again when nobody answers (`Nats.quickKvm`). */
export const openForReads = (nats: Nats["Service"], bucket: string) =>
  Effect.tryPromise({ try: () => nats.quickKvm.open(bucket), catch: brokerFailure(`open results bucket ${bucket}`) }).pipe(
    retryTransient
  )

/** The bucket and TTL the config names. */
export const fromConfig = Effect.map(MsgsysConfig, (config) => ({
  bucket: Subjects.make(config.streamPrefix).resultsBucket,
  ttl: config.resultTtl
}))

/** A create on an existing key, or an update from a stale revision. */
export const isConflict = (e: unknown): boolean =>
  e instanceof JetStreamApiError &&
  (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
