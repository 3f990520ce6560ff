/**
 * The msgsys SQLite file (audit log, idempotency keys, exhausted dead letters) as a service: one
 * `bun:sqlite` connection in WAL mode and its one group-commit `Writer`, shared by the stores of
 * this process; other processes on the host may open the same file.
 * @since 0.1.0
 */
import { Clock, Context, Data, Duration, Effect, Layer, Schedule } from "effect"
import { migrations } from "./internal/migrations.ts"
import * as SqliteFile from "./SqliteFile.ts"
import * as Checkpointer from "./Checkpointer.ts"
import * as Writer from "./Writer.ts"

/** An open `bun:sqlite` connection. @category models @since 0.1.0 */
export type Handle = SqliteFile.Handle

/**
 * `PRAGMA synchronous`. In WAL mode, `"normal"` syncs the WAL only at checkpoints: a power loss
 * or OS crash can lose the last commits (the file stays consistent), a process crash cannot.
 * `"full"` syncs the WAL on every commit and survives power loss, at about half the write rate.
 * @category models @since 0.1.0
 */
export type Synchronous = SqliteFile.Synchronous

/**
 * A SQLite operation failed. `code` is SQLite's result code when there is one (`SQLITE_BUSY`, …).
 * @category errors @since 0.1.0
 */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly operation: string
  readonly path: string
  readonly code: string | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `${this.operation} failed on SQLite file ${this.path}: ${why}; ${fixFor(this.code, this.path)}`
  }
}

const fixFor = (code: string | undefined, path: string): string => {
  if (code === undefined) return `check the SQLite file at ${path}`
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return "another process held the write lock for too long: raise busyTimeoutMs (opening) or lockWaitMs (writes), " +
      "or find the process that keeps the file locked"
  }
  if (code.startsWith("SQLITE_FULL")) return "the disk is full: free space or prune the audit log"
  if (code.startsWith("SQLITE_READONLY") || code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_PERM")) {
    return `make sure ${path} and its directory exist and are writable by this user`
  }
  if (code.startsWith("SQLITE_CORRUPT") || code.startsWith("SQLITE_NOTADB")) {
    return `${path} is not a healthy SQLite file: move it aside and restore from a backup or start a new one`
  }
  return `check the SQLite file at ${path}`
}

/** @category models @since 0.1.0 */
export interface Options {
  /** File path; its directory is created if missing. `":memory:"` for a private in-memory database. */
  readonly path: string
  /** Default `"normal"`; see {@link Synchronous} for the trade-off. */
  readonly synchronous?: Synchronous | undefined
  /**
   * How long one statement waits for another process's lock (`PRAGMA busy_timeout`). Kept short,
   * default 20 ms, because a waiting statement blocks the event loop (heartbeats included); the
   * writer retries a locked commit on a timer instead, for up to `lockWaitMs`.
   */
  readonly busyTimeoutMs?: number | undefined
  /** How long a write may wait for another process's lock, in all, before it fails. Default 30000 ms. */
  readonly lockWaitMs?: number | undefined
  /** The log's checkpoints, which run on a thread of their own. */
  readonly checkpoints?: Checkpointer.Options | undefined
}

/** @category services @since 0.1.0 */
export class Database extends Context.Service<Database, {
  readonly path: string
  readonly synchronous: Synchronous
  /** The raw connection, for the `Sqlite*` stores. Calls on it are synchronous and may throw. */
  readonly handle: Handle
  /** Runs `f` on the connection; a throw becomes a `DatabaseError` naming `operation`. */
  readonly use: <A>(operation: string, f: (db: Handle) => A) => Effect.Effect<A, DatabaseError>
  /**
   * Runs `f` in the writer's next group transaction and resolves after it committed; a throw rolls
   * back `f`'s writes only. `f` may run twice (after a rollback), so it must only touch the database.
   */
  readonly write: <A>(operation: string, f: (db: Handle) => A) => Effect.Effect<A, DatabaseError>
  /** The group-commit writer, for stores that batch on the hot path without an Effect per call. */
  readonly writer: Writer.Writer
}>()("msgsys/Database") {}

/** Wraps a thrown SQLite error. @category errors @since 0.1.0 */
export const toError = (operation: string, path: string) => (cause: unknown): DatabaseError =>
  new DatabaseError({ operation, path, code: SqliteFile.errorCode(cause), cause })

// Two processes switching a NEW file to WAL at once get SQLITE_BUSY even with busy_timeout
// (PITFALLS §6): the loser closes and tries again shortly, by then the file is in WAL mode.
const openRetry = Schedule.exponential("10 millis", 2).pipe(
  Schedule.jittered,
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.millis(500)))),
  Schedule.upTo({ times: 12 })
)

/**
 * Opens the file (retrying SQLITE_BUSY during open, WAL switch and migrations) and returns the
 * service; the connection closes when the scope does.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("Database.make")(function*(options: Options) {
  const path = options.path
  const synchronous = options.synchronous ?? "normal"
  const busyTimeoutMs = options.busyTimeoutMs ?? 20
  const now = yield* Clock.currentTimeMillis
  const handle = yield* Effect.acquireRelease(
    Effect.try({
      try: () => SqliteFile.open({ path, synchronous, busyTimeoutMs, migrations, now }),
      catch: toError("opening and migrating", path)
    }).pipe(
      Effect.retry({ schedule: openRetry, while: (e) => SqliteFile.isBusy(e.cause) }),
      // the open happens once at start-up; back off on the real clock even under a TestClock
      Effect.provideService(Clock.Clock, Clock.Clock.defaultValue())
    ),
    (db) => Effect.sync(() => SqliteFile.close(db))
  )
  // the log's checkpoints (and their fsync) off the thread that dispatches
  yield* Checkpointer.start(handle, path, options.checkpoints)
  const context = yield* Effect.context<never>()
  const writer = Writer.make(handle, {
    busyLimitMs: options.lockWaitMs ?? 30_000,
    onCommit: Writer.metricsReporter(context)
  })
  // released before the connection closes (finalizers run in reverse): what is queued commits
  yield* Effect.addFinalizer(() => Effect.promise(() => writer.close()))
  const use = <A>(operation: string, f: (db: Handle) => A): Effect.Effect<A, DatabaseError> =>
    Effect.try({ try: () => f(handle), catch: toError(operation, path) })
  const write = <A>(operation: string, f: (db: Handle) => A): Effect.Effect<A, DatabaseError> =>
    writer.write(operation, f).pipe(Effect.mapError((e) => toError(e.operation, path)(e.cause)))
  return Database.of({ path, synchronous, handle, use, write, writer })
})

/**
 * The database as a scoped layer: opened and migrated when built, closed on release.
 * @category layers @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<Database, DatabaseError> => Layer.effect(Database, make(options))
