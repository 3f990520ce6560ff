/**
 * Remembers which work has run, so a redelivered message returns the stored outcome instead of
 * running again (guarantee 2). A worker claims a key with a lease; a crashed worker's lease runs
 * out and another worker takes the key over, so work is retried, never stuck.
 * @since 0.1.0
 */
import { Clock, Context, Data, Duration, Effect, Layer } from "effect"

/** What an earlier, completed run left behind. @category models @since 0.1.0 */
export interface StoredOutcome {
  /** JSON value given to `complete`. */
  readonly output: unknown
  /** Epoch ms. */
  readonly completedAt: number
}

/** The answer to `claim`. @category models @since 0.1.0 */
export type Claim =
  /** You hold the key: run the handler, then `complete` (or `release` on failure). */
  | { readonly _tag: "Claimed" }
  /** It already ran: return the stored outcome, do not run it again. */
  | { readonly _tag: "Done"; readonly outcome: StoredOutcome }
  /** Another live worker holds the key until `heldUntil` (epoch ms). */
  | { readonly _tag: "Held"; readonly owner: string; readonly heldUntil: number }
  /**
   * This stored message was decided dead (`markDead`): do not run it again, finish moving it to
   * dead letters. Only answered to a claim naming the same message `sequence`.
   */
  | { readonly _tag: "Dead"; readonly verdict: unknown; readonly decidedAt: number }

/**
 * The idempotency store could not be read or written. The message is not acked and will be
 * retried.
 * @category errors @since 0.1.0
 */
export class IdempotencyError extends Data.TaggedError("IdempotencyError")<{
  readonly operation: string
  readonly key: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `idempotency store: ${this.operation} of key "${this.key}" failed: ${why}. ` +
      "The message is not acknowledged and will be retried; check the idempotency store (its SQLite file or KV bucket)."
  }
}

/** @category services @since 0.1.0 */
export class Idempotency extends Context.Service<Idempotency, {
  /**
   * Atomically: `Done` if completed; `Dead` if the stored message `sequence` was decided dead;
   * `Held` if another owner's lease is live; otherwise claims the key for `owner` (taking over an
   * expired lease, `owner`'s own claim, or a dead mark of another message — a replay) and
   * answers `Claimed`.
   */
  readonly claim: (
    key: string,
    owner: string,
    lease: Duration.Input,
    sequence?: number
  ) => Effect.Effect<Claim, IdempotencyError>
  /** Extends `owner`'s lease; `false` if the key is no longer held by `owner` (or is done). */
  readonly renew: (key: string, owner: string, lease: Duration.Input) => Effect.Effect<boolean, IdempotencyError>
  /**
   * Marks the key done with `output` (a JSON value). The work ran, so this holds even if the lease
   * has passed to another owner meanwhile; if the key is already done, the first outcome stays.
   */
  readonly complete: (key: string, owner: string, output: unknown) => Effect.Effect<void, IdempotencyError>
  /**
   * Records that the run of stored message `sequence` failed for good (`verdict`, a JSON value):
   * a claim for that message answers `Dead` until the retention passes, so a task decided dead is
   * never run again even if moving it to dead letters fails and it is redelivered.
   */
  readonly markDead: (key: string, owner: string, sequence: number, verdict: unknown) => Effect.Effect<void, IdempotencyError>
  /** Drops `owner`'s claim after a failure, so a retry can claim the key at once. */
  readonly release: (key: string, owner: string) => Effect.Effect<void, IdempotencyError>
  /**
   * Deletes done keys completed more than the retention before `now` (default: the clock), and
   * abandoned claims whose lease ended that long ago. Returns how many keys it deleted.
   */
  readonly prune: (now?: number) => Effect.Effect<number, IdempotencyError>
}>()("msgsys/Idempotency") {}

/** @category models @since 0.1.0 */
export interface Options {
  /** How long a done key is remembered; a redelivery later than that runs again. */
  readonly retention: Duration.Input
}

/** Lease end for a claim made at `now`. @category internals @since 0.1.0 */
export const leaseEnd = (now: number, lease: Duration.Input): number =>
  now + Duration.toMillis(Duration.fromInputUnsafe(lease))

/** `output` as it will read back: JSON round-tripped, `undefined` as null. @category internals @since 0.1.0 */
export const encodeOutput = (key: string, output: unknown): Effect.Effect<string, IdempotencyError> =>
  Effect.try({
    try: () => JSON.stringify(output === undefined ? null : output),
    catch: (cause) => new IdempotencyError({ operation: "encoding the outcome as JSON", key, cause })
  })

interface Entry {
  readonly owner: string
  readonly heldUntil: number
  readonly outcome: StoredOutcome | undefined
  readonly dead?: { readonly sequence: number; readonly verdict: unknown; readonly decidedAt: number }
}

/**
 * An in-memory store (one process; lost on exit), for unit tests and `msgsys dev`.
 * @category constructors @since 0.1.0
 */
export const makeMemory = (options: Options): Effect.Effect<Idempotency["Service"]> =>
  Effect.sync(() => {
    const retentionMs = Duration.toMillis(Duration.fromInputUnsafe(options.retention))
    // Each operation reads and writes the map in one synchronous step, so it is atomic.
    const entries = new Map<string, Entry>()
    return Idempotency.of({
      claim: (key, owner, lease, sequence) =>
        Effect.map(Clock.currentTimeMillis, (now): Claim => {
          const e = entries.get(key)
          if (e?.outcome) return { _tag: "Done", outcome: e.outcome }
          if (e?.dead && e.dead.sequence === sequence) return { _tag: "Dead", verdict: e.dead.verdict, decidedAt: e.dead.decidedAt }
          if (e && !e.dead && e.owner !== owner && e.heldUntil > now) return { _tag: "Held", owner: e.owner, heldUntil: e.heldUntil }
          entries.set(key, { owner, heldUntil: leaseEnd(now, lease), outcome: undefined })
          return { _tag: "Claimed" }
        }),
      renew: (key, owner, lease) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const e = entries.get(key)
          if (!e || e.outcome || e.dead || e.owner !== owner) return false
          entries.set(key, { ...e, heldUntil: leaseEnd(now, lease) })
          return true
        }),
      complete: (key, owner, output) =>
        Effect.gen(function*() {
          const json = yield* encodeOutput(key, output)
          const now = yield* Clock.currentTimeMillis
          if (entries.get(key)?.outcome) return
          entries.set(key, { owner, heldUntil: 0, outcome: { output: JSON.parse(json), completedAt: now } })
        }),
      markDead: (key, owner, sequence, verdict) =>
        Effect.gen(function*() {
          const json = yield* encodeOutput(key, verdict)
          const now = yield* Clock.currentTimeMillis
          if (entries.get(key)?.outcome) return
          entries.set(key, { owner, heldUntil: 0, outcome: undefined, dead: { sequence, verdict: JSON.parse(json), decidedAt: now } })
        }),
      release: (key, owner) =>
        Effect.sync(() => {
          const e = entries.get(key)
          if (e && !e.outcome && !e.dead && e.owner === owner) entries.delete(key)
        }),
      prune: (at) =>
        Effect.map(at === undefined ? Clock.currentTimeMillis : Effect.succeed(at), (now) => {
          const cutoff = now - retentionMs
          let deleted = 0
          for (const [key, e] of entries) {
            const endedAt = e.outcome ? e.outcome.completedAt : e.dead ? e.dead.decidedAt : e.heldUntil
            if (endedAt < cutoff) {
              entries.delete(key)
              deleted++
            }
          }
          return deleted
        })
    })
  })

/**
 * An in-memory store, for users' unit tests. Retention defaults to 7 days. A function, not a
 * constant, because Effect memoizes a layer value across `Effect.provide` calls: each call here
 * gives a fresh, empty store.
 * @category layers @since 0.1.0
 */
export const layerMemory = (options: Partial<Options> = {}): Layer.Layer<Idempotency> =>
  Layer.effect(Idempotency, makeMemory({ retention: options.retention ?? "7 days" }))
