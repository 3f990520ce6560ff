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
import {
  type Claim,
  encodeOutput,
  Idempotency,
  IdempotencyError,
  leaseEnd,
  type Options
} from "./Idempotency.ts"

interface KeyRow {
  readonly sequence: number | null
  readonly owner: string | null
  readonly held_until: number
  readonly done: number
  readonly output: string | null
  readonly completed_at: number | null
}

/**
 * The SQLite store on the `Database`.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("SqliteIdempotency.make")(function*(options: Options) {
  const db = yield* Database.Database
  const retentionMs = Duration.toMillis(Duration.fromInputUnsafe(options.retention))
  const h = db.handle
  const statements = yield* Effect.orDie(db.use("preparing idempotency statements", () => ({
    select: h.prepare<KeyRow, [string]>(
      "SELECT owner, held_until, done, output, completed_at, sequence FROM idempotency_keys WHERE key = ?"
    ),
    insert: h.prepare<never, [string, string, number]>(
      "INSERT INTO idempotency_keys (key, owner, held_until, done) VALUES (?, ?, ?, 0)"
    ),
    take: h.prepare<never, [string, number, string]>(
      "UPDATE idempotency_keys SET owner = ?, held_until = ?, done = 0, output = NULL, completed_at = NULL, " +
        "sequence = NULL WHERE key = ? AND done IN (0, 2)"
    ),
    markDead: h.prepare<never, [string, string, string, number, number]>(
      `INSERT INTO idempotency_keys (key, owner, held_until, done, output, completed_at, sequence) VALUES (?, ?, 0, 2, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, held_until = 0, done = 2, output = excluded.output,
         completed_at = excluded.completed_at, sequence = excluded.sequence
       WHERE done <> 1`
    ),
    renew: h.prepare<never, [number, string, string]>(
      "UPDATE idempotency_keys SET held_until = ? WHERE key = ? AND owner = ? AND done = 0"
    ),
    complete: h.prepare<never, [string, string, string, number]>(
      `INSERT INTO idempotency_keys (key, owner, held_until, done, output, completed_at) VALUES (?, ?, 0, 1, ?, ?)
       ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, held_until = 0, done = 1,
         output = excluded.output, completed_at = excluded.completed_at
       WHERE done <> 1`
    ),
    release: h.prepare<never, [string, string]>(
      "DELETE FROM idempotency_keys WHERE key = ? AND owner = ? AND done = 0"
    ),
    prune: h.prepare<never, [number, number]>(
      "DELETE FROM idempotency_keys WHERE (done <> 0 AND completed_at < ?) OR (done = 0 AND held_until < ?)"
    )
  })))

  // Waiting for the answer is uninterruptible: once queued, the operation and its answer are one
  // step, as if it ran in the caller.
  const write = <A>(operation: string, run: () => A): Effect.Effect<A, Database.DatabaseError> =>
    Effect.uninterruptible(db.write(operation, run))

  const fail = (operation: string, key: string) => (cause: Database.DatabaseError) =>
    new IdempotencyError({ operation, key, cause })

  return Idempotency.of({
    claim: (key, owner, lease, sequence) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        write("claiming an idempotency key", (): Claim => {
          const row = statements.select.get(key)
          const heldUntil = leaseEnd(now, lease)
          if (row === null) {
            statements.insert.run(key, owner, heldUntil)
            return { _tag: "Claimed" }
          }
          if (row.done === 1) {
            return {
              _tag: "Done",
              outcome: { output: row.output === null ? null : JSON.parse(row.output), completedAt: row.completed_at ?? 0 }
            }
          }
          if (row.done === 2 && row.sequence === (sequence ?? null)) {
            return { _tag: "Dead", verdict: row.output === null ? null : JSON.parse(row.output), decidedAt: row.completed_at ?? 0 }
          }
          if (row.done === 0 && row.owner !== owner && row.held_until > now) {
            return { _tag: "Held", owner: row.owner ?? "", heldUntil: row.held_until }
          }
          statements.take.run(owner, heldUntil, key)
          return { _tag: "Claimed" }
        })).pipe(Effect.mapError(fail("claim", key))),
    renew: (key, owner, lease) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        write("renewing an idempotency lease", () => statements.renew.run(leaseEnd(now, lease), key, owner).changes > 0)
      ).pipe(Effect.mapError(fail("renew", key))),
    complete: (key, owner, output) =>
      Effect.gen(function*() {
        const json = yield* encodeOutput(key, output)
        const now = yield* Clock.currentTimeMillis
        yield* write("completing an idempotency key", () => statements.complete.run(key, owner, json, now)).pipe(
          Effect.mapError(fail("complete", key))
        )
      }),
    markDead: (key, owner, sequence, verdict) =>
      Effect.gen(function*() {
        const json = yield* encodeOutput(key, verdict)
        const now = yield* Clock.currentTimeMillis
        yield* write("marking an idempotency key dead", () => statements.markDead.run(key, owner, json, now, sequence)).pipe(
          Effect.mapError(fail("markDead", key))
        )
      }),
    release: (key, owner) =>
      write("releasing an idempotency key", () => {
        statements.release.run(key, owner)
      }).pipe(Effect.mapError(fail("release", key))),
    prune: (at) =>
      Effect.flatMap(at === undefined ? Clock.currentTimeMillis : Effect.succeed(at), (now) =>
        write("pruning idempotency keys", () => statements.prune.run(now - retentionMs, now - retentionMs).changes)
      ).pipe(Effect.mapError(fail("prune", "*")))
  })
})

/**
 * The SQLite store as a layer over the `Database`.
 * @category layers @since 0.1.0
 */
export const layerSqlite = (options: Options): Layer.Layer<Idempotency, never, Database.Database> =>
  Layer.effect(Idempotency, make(options))
