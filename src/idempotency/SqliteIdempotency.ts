/**
 * Idempotency keys in the msgsys SQLite file (table `idempotency_keys`). Every operation goes
 * through the file's group-commit writer: a worker running many messages pays one transaction
 * per batch, and claims stay atomic across the processes sharing the file (each is a read and a
 * write inside one `BEGIN IMMEDIATE` transaction). Lease times come from the caller's `Clock` (a
 * TestClock moves them).
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Layer } from "effect"
import * as Database from "../sqlite/Database.ts"
import * as KeyTable from "./KeyTable.ts"
import {
  encodeOutput,
  Idempotency,
  IdempotencyError,
  leaseEnd,
  type Options
} from "./Idempotency.ts"

/**
 * The SQLite store on the `Database`.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("SqliteIdempotency.make")(function*(options: Options) {
  const db = yield* Database.Database
  const retentionMs = Duration.toMillis(Duration.fromInputUnsafe(options.retention))
  const keys = yield* Effect.orDie(db.use("preparing idempotency statements", KeyTable.prepare))

  // Waiting for the answer is uninterruptible: once queued, the operation and its answer are one
  // step, as if it ran in the caller.
  const write = <A>(operation: string, run: () => A): Effect.Effect<A, Database.DatabaseError> =>
    Effect.uninterruptible(db.write(operation, run))

  const fail = (operation: string, key: string) => (cause: Database.DatabaseError) =>
    new IdempotencyError({ operation, key, cause })

  return Idempotency.of({
    claim: (key, owner, lease, sequence) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        write("claiming an idempotency key", () => keys.claim(key, owner, leaseEnd(now, lease), now, sequence))
      ).pipe(Effect.mapError(fail("claim", key))),
    renew: (key, owner, lease) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        write("renewing an idempotency lease", () => keys.renew(key, owner, leaseEnd(now, lease)))
      ).pipe(Effect.mapError(fail("renew", key))),
    complete: (key, owner, output) =>
      Effect.gen(function*() {
        const json = yield* encodeOutput(key, output)
        const now = yield* Clock.currentTimeMillis
        yield* write("completing an idempotency key", () => keys.complete(key, owner, json, now)).pipe(
          Effect.mapError(fail("complete", key))
        )
      }),
    markDead: (key, owner, sequence, verdict) =>
      Effect.gen(function*() {
        const json = yield* encodeOutput(key, verdict)
        const now = yield* Clock.currentTimeMillis
        yield* write("marking an idempotency key dead", () => keys.markDead(key, owner, sequence, json, now)).pipe(
          Effect.mapError(fail("markDead", key))
        )
      }),
    release: (key, owner) =>
      write("releasing an idempotency key", () => keys.release(key, owner)).pipe(Effect.mapError(fail("release", key))),
    prune: (at) =>
      Effect.flatMap(at === undefined ? Clock.currentTimeMillis : Effect.succeed(at), (now) =>
        write("pruning idempotency keys", () => keys.prune(now - retentionMs))
      ).pipe(Effect.mapError(fail("prune", "*")))
  })
})

/**
 * The SQLite store as a layer over the `Database`.
 * @category layers @since 0.1.0
 */
export const layerSqlite = (options: Options): Layer.Layer<Idempotency, never, Database.Database> =>
  Layer.effect(Idempotency, make(options))
