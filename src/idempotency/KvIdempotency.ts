/**
 * Idempotency keys in a NATS KV bucket, so effectively-once execution holds across hosts
 * (guarantee 2). Every write is a compare-and-set on the key's revision: a first claim is a write
 * that expects no message (`create`), every later change names the revision it read, and a
 * write that lost a race (JetStream error 10071, "wrong last sequence") re-reads and decides
 * again. So two workers never both hold a live claim, whichever host or connection they use.
 *
 * - Keys: an idempotency key may hold anything (spaces, slashes, unicode), a KV key may not, so
 *   the KV key is the key's sha256 in hex and the value carries the original.
 * - Leases: per-key TTL does not work on nats-server 2.9, so a lease is the `heldUntil` stored in
 *   the value, compared with this host's `Clock` (a TestClock moves it). Hosts whose clocks
 *   disagree by more than a lease's margin can take over each other's live claims early.
 * - Retention: the bucket's `ttl` (the stream's max_age) is the retention, so the server forgets a
 *   key that was not written for that long: done keys, and claims abandoned since. `prune` does
 *   the same on demand with a scan, for an explicit `now`, and is not needed for housekeeping.
 * @since 0.1.0
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import type { KV } from "@nats-io/kv"
import { Clock, Duration, Effect, Layer, Option, Schema } from "effect"
import { createHash } from "node:crypto"
import { retryTransient } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import { type Claim, encodeOutput, Idempotency, IdempotencyError, leaseEnd } from "./Idempotency.ts"

/** @category models @since 0.1.0 */
export interface KvOptions {
  /** How long a key is remembered after its last write; becomes the bucket's `ttl`. */
  readonly retention: Duration.Input
  /** The KV bucket. Default: `<streamPrefix>_idempotency`. */
  readonly bucket?: string
}

/** The value stored under a key's hash. */
const KeyRecord = Schema.Struct({
  key: Schema.String,
  owner: Schema.String,
  heldUntil: Schema.Number,
  done: Schema.Boolean,
  // the JSON value given to `complete`: opaque to the store by contract
  outcome: Schema.optionalKey(Schema.Unknown),
  completedAt: Schema.optionalKey(Schema.Number),
  // a dead mark: the stored message `sequence` was decided dead, `outcome` holds the verdict
  deadSequence: Schema.optionalKey(Schema.Number)
})
type KeyRecord = typeof KeyRecord.Type
const decodeRecord = Schema.decodeUnknownResult(Schema.fromJsonString(KeyRecord))

/**
 * What a read found. `revision` is what the next write must expect: 0 for a key never written
 * (or whose delete marker the bucket ttl removed), the marker's revision for a deleted key.
 */
type Current =
  | { readonly _tag: "Absent"; readonly revision: number }
  | { readonly _tag: "Present"; readonly revision: number; readonly record: KeyRecord }

/** Rounds of read-decide-write before giving up; each lost round means another writer won one. */
const maxRounds = 10

/** The KV key for an idempotency key: sha256 in hex, valid whatever the key holds. @category internals @since 0.1.0 */
export const kvKey = (key: string): string => createHash("sha256").update(key).digest("hex")

/** The default bucket for a stream prefix. @category internals @since 0.1.0 */
export const defaultBucket = (streamPrefix: string): string => `${streamPrefix}_idempotency`

const isConflict = (e: unknown): boolean =>
  e instanceof JetStreamApiError &&
  (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

const retentionMillis = (bucket: string, retention: Duration.Input): Effect.Effect<number, IdempotencyError> => {
  // an unparsable input ("7 dayz") reads as NaN and is rejected with the rest
  const ms = Option.match(Duration.fromInput(retention), { onNone: () => Number.NaN, onSome: Duration.toMillis })
  return Number.isFinite(ms) && ms >= 1
    ? Effect.succeed(ms)
    : Effect.fail(
      new IdempotencyError({
        operation: `opening KV bucket ${bucket}`,
        key: "*",
        cause: new Error(`retention must be a finite duration of at least 1 ms (got ${String(retention)}); give e.g. "7 days"`)
      })
    )
}

/**
 * The store on a bucket that is already open. Use `make` unless you open the bucket yourself.
 * @category constructors @since 0.1.0
 */
export const fromKv = (kv: KV, options: { readonly retention: Duration.Input; readonly bucket: string }): Idempotency["Service"] => {
  const retentionMs = Duration.toMillis(Duration.fromInputUnsafe(options.retention))
  const bucket = options.bucket

  const read = (hash: string, key: string, operation: string): Effect.Effect<Current, IdempotencyError> =>
    Effect.tryPromise({
      try: () => kv.get(hash),
      catch: (cause) => new IdempotencyError({ operation, key, cause })
    }).pipe(retryTransient, Effect.flatMap((entry): Effect.Effect<Current, IdempotencyError> => {
      if (entry === null) return Effect.succeed({ _tag: "Absent", revision: 0 })
      if (entry.operation !== "PUT") return Effect.succeed({ _tag: "Absent", revision: entry.revision })
      const decoded = decodeRecord(entry.string())
      return decoded._tag === "Success"
        ? Effect.succeed({ _tag: "Present", revision: entry.revision, record: decoded.success })
        : Effect.fail(
          new IdempotencyError({
            operation,
            key,
            cause: new Error(
              `the value of ${hash} in KV bucket ${bucket} is not an idempotency record; ` +
                `delete it with \`nats kv del ${bucket} ${hash}\``
            )
          })
        )
    }))

  /** `true` if written, `false` if another writer changed the key since `revision`. */
  const write = (hash: string, key: string, operation: string, record: KeyRecord, revision: number) =>
    Effect.tryPromise({
      try: () => kv.put(hash, JSON.stringify(record), { previousSeq: revision }),
      catch: (cause) => cause
    }).pipe(
      // a bucket between leaders (a cluster node went away); if a timed-out write did land, the
      // next one finds the revision moved and the caller reads the key again
      retryTransient,
      Effect.as(true),
      Effect.catch((cause) =>
        isConflict(cause) ? Effect.succeed(false) : Effect.fail(new IdempotencyError({ operation, key, cause }))
      )
    )

  /** `true` if deleted, `false` if another writer changed the key since `revision`. */
  const remove = (hash: string, key: string, operation: string, revision: number) =>
    Effect.tryPromise({
      try: () => kv.delete(hash, { previousSeq: revision }),
      catch: (cause) => cause
    }).pipe(
      retryTransient,
      Effect.as(true),
      Effect.catch((cause) =>
        isConflict(cause) ? Effect.succeed(false) : Effect.fail(new IdempotencyError({ operation, key, cause }))
      )
    )

  const contended = (operation: string, key: string) =>
    new IdempotencyError({
      operation,
      key,
      cause: new Error(`the key changed ${maxRounds} times while it was being written (other workers write it too)`)
    })

  const claim = (key: string, owner: string, lease: Duration.Input, sequence?: number): Effect.Effect<Claim, IdempotencyError> =>
    Effect.gen(function*() {
      const hash = kvKey(key)
      const now = yield* Clock.currentTimeMillis
      const claimed: KeyRecord = { key, owner, heldUntil: leaseEnd(now, lease), done: false }
      // first round: write without reading (`create`), the one round trip a new key needs
      let current: Current = { _tag: "Absent", revision: 0 }
      for (let round = 0; round < maxRounds; round++) {
        if (round > 0) current = yield* read(hash, key, "claim")
        if (current._tag === "Present") {
          const r = current.record
          if (r.done && r.deadSequence === undefined) {
            return { _tag: "Done", outcome: { output: r.outcome ?? null, completedAt: r.completedAt ?? 0 } }
          }
          if (r.done && r.deadSequence === sequence) {
            return { _tag: "Dead", verdict: r.outcome ?? null, decidedAt: r.completedAt ?? 0 }
          }
          if (!r.done && r.owner !== owner && r.heldUntil > now) return { _tag: "Held", owner: r.owner, heldUntil: r.heldUntil }
        }
        // absent, deleted, our own claim, or an expired one: take it if nobody wrote since the read
        if (yield* write(hash, key, "claim", claimed, current.revision)) return { _tag: "Claimed" }
      }
      return yield* contended("claim", key)
    })

  const renew = (key: string, owner: string, lease: Duration.Input): Effect.Effect<boolean, IdempotencyError> =>
    Effect.gen(function*() {
      const hash = kvKey(key)
      const now = yield* Clock.currentTimeMillis
      for (let round = 0; round < maxRounds; round++) {
        const current = yield* read(hash, key, "renew")
        if (current._tag === "Absent" || current.record.done || current.record.owner !== owner) return false
        const renewed = { ...current.record, heldUntil: leaseEnd(now, lease) }
        if (yield* write(hash, key, "renew", renewed, current.revision)) return true
      }
      return yield* contended("renew", key)
    })

  // As in the SQLite store: the work ran, so its outcome is recorded even if the lease passed to
  // another owner meanwhile (that owner's later `renew` answers false); only a done key is kept.
  const complete = (key: string, owner: string, output: unknown): Effect.Effect<void, IdempotencyError> =>
    Effect.gen(function*() {
      const hash = kvKey(key)
      const json = yield* encodeOutput(key, output)
      const now = yield* Clock.currentTimeMillis
      const done: KeyRecord = { key, owner, heldUntil: 0, done: true, outcome: JSON.parse(json), completedAt: now }
      for (let round = 0; round < maxRounds; round++) {
        const current = yield* read(hash, key, "complete")
        if (current._tag === "Present" && current.record.done && current.record.deadSequence === undefined) return
        if (yield* write(hash, key, "complete", done, current.revision)) return
      }
      return yield* contended("complete", key)
    })

  const markDead = (key: string, owner: string, sequence: number, verdict: unknown): Effect.Effect<void, IdempotencyError> =>
    Effect.gen(function*() {
      const hash = kvKey(key)
      const json = yield* encodeOutput(key, verdict)
      const now = yield* Clock.currentTimeMillis
      const dead: KeyRecord = {
        key,
        owner,
        heldUntil: 0,
        done: true,
        outcome: JSON.parse(json),
        completedAt: now,
        deadSequence: sequence
      }
      for (let round = 0; round < maxRounds; round++) {
        const current = yield* read(hash, key, "markDead")
        if (current._tag === "Present" && current.record.done && current.record.deadSequence === undefined) return
        if (yield* write(hash, key, "markDead", dead, current.revision)) return
      }
      return yield* contended("markDead", key)
    })

  const release = (key: string, owner: string): Effect.Effect<void, IdempotencyError> =>
    Effect.gen(function*() {
      const hash = kvKey(key)
      for (let round = 0; round < maxRounds; round++) {
        const current = yield* read(hash, key, "release")
        if (current._tag === "Absent" || current.record.done || current.record.owner !== owner) return
        if (yield* remove(hash, key, "release", current.revision)) return
      }
      return yield* contended("release", key)
    })

  // A scan: one read per live key. The bucket ttl already forgets keys after the retention, so
  // this is for an explicit `now` (tests, a manual clean-up), not for regular housekeeping.
  const prune = (at?: number): Effect.Effect<number, IdempotencyError> =>
    Effect.gen(function*() {
      const now = at ?? (yield* Clock.currentTimeMillis)
      const cutoff = now - retentionMs
      const hashes = yield* Effect.tryPromise({
        try: async () => {
          const out: Array<string> = []
          for await (const k of await kv.keys()) out.push(k)
          return out
        },
        catch: (cause) => new IdempotencyError({ operation: "prune (listing keys)", key: "*", cause })
      })
      const deleted = yield* Effect.forEach(hashes, (hash) =>
        Effect.gen(function*() {
          const current = yield* read(hash, hash, "prune")
          if (current._tag === "Absent") return false
          const r = current.record
          const expired = r.done ? (r.completedAt ?? 0) < cutoff : r.heldUntil < cutoff
          // a key written since the read is not stale any more: a lost race leaves it
          return expired ? yield* remove(hash, r.key, "prune", current.revision) : false
        }), { concurrency: 16 })
      return deleted.filter(Boolean).length
    })

  return Idempotency.of({ claim, renew, complete, markDead, release, prune })
}

/**
 * Opens (creating if missing) the bucket with `ttl` = retention and history 1, and builds the
 * store on it. An existing bucket with another ttl is used as it is, with a warning.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("KvIdempotency.make")(function*(options: KvOptions) {
  const nats = yield* Nats
  const config = yield* MsgsysConfig
  const bucket = options.bucket ?? defaultBucket(config.streamPrefix)
  const retentionMs = yield* retentionMillis(bucket, options.retention)
  const fail = (cause: unknown) => new IdempotencyError({ operation: `opening KV bucket ${bucket}`, key: "*", cause })
  const kv = yield* Effect.tryPromise({
    try: () => nats.kvm.create(bucket, { ttl: retentionMs, history: 1, replicas: nats.replicas }),
    catch: fail
  }).pipe(retryTransient)
  // every write is a compare-and-set and every call is asked again when nobody answers, so the
  // store's requests need not wait long for an answer (a timed-out write that landed shows as a
  // moved revision, and the claim reads again)
  const quick = yield* Effect.tryPromise({ try: () => nats.quickKvm.open(bucket), catch: fail }).pipe(retryTransient)
  const status = yield* Effect.tryPromise({ try: () => kv.status(), catch: fail })
  if (status.ttl !== retentionMs) {
    yield* Effect.logWarning(
      `KV bucket ${bucket} ${status.ttl === 0 ? "keeps keys forever" : `forgets keys after ${status.ttl} ms`}, ` +
        `not after the configured idempotency retention of ${retentionMs} ms; ` +
        `change it with \`nats stream edit KV_${bucket} --max-age ${retentionMs}ms\` or configure the same retention`
    )
  }
  return fromKv(quick, { retention: options.retention, bucket })
})

/**
 * The KV store as a layer over the NATS connection and config.
 * @category layers @since 0.1.0
 */
export const layer = (options: KvOptions): Layer.Layer<Idempotency, IdempotencyError, Nats | MsgsysConfig> =>
  Layer.effect(Idempotency, make(options))
