/**
 * The one writer of the msgsys SQLite file in a process. Every store (audit, idempotency keys,
 * exhausted letters, a handler's own tables) hands it synchronous operations; it runs everything
 * queued in one `BEGIN IMMEDIATE` transaction, commits, and only then answers each operation.
 *
 * It commits as soon as it is idle — on the turn of the event loop after the first operation
 * arrives, so the operations of one turn (a batch of deliveries) share a transaction — and
 * batches what arrives while it waits, so a quiet process pays no linger and a busy one pays one
 * commit for many operations.
 *
 * Failures: `SQLITE_BUSY` (another process holds the write lock) is retried on a timer, so the
 * event loop — heartbeats included — never blocks for longer than the connection's short
 * `busy_timeout`; after `busyLimitMs` the batch fails. Any other failure rolls the transaction
 * back and runs each operation of the batch again in a transaction of its own, so one bad
 * operation fails alone.
 * @since 0.1.0
 */
import { Context as EffectContext, Effect, Metric } from "effect"
import type { Handle } from "./SqliteFile.ts"
import * as SqliteFile from "./SqliteFile.ts"

/** A failure of one operation (or of the commit that held it). @category models @since 0.1.0 */
export interface WriteFailure {
  /** The operation's label. */
  readonly operation: string
  readonly cause: unknown
}

/** Called once per operation: with its result after the commit, or with the failure. @category models @since 0.1.0 */
export type Done<A> = (result: { readonly ok: true; readonly value: A } | { readonly ok: false; readonly failure: WriteFailure }) => void

/** @category models @since 0.1.0 */
export interface Stats {
  /** Transactions committed. */
  readonly commits: number
  /** Transactions rolled back (each failed batch, then each failed lone operation). */
  readonly failures: number
  /** Operations answered with success. */
  readonly operations: number
  readonly largestBatch: number
  /** Times a commit found the file locked by another process and waited. */
  readonly busyWaits: number
}

/** @category models @since 0.1.0 */
export interface Writer {
  /** Queues `run`; `done` is called after the transaction holding it committed (or failed). */
  readonly submit: <A>(operation: string, run: (db: Handle) => A, done: Done<A>) => void
  /** `submit` as an Effect. */
  readonly write: <A>(operation: string, run: (db: Handle) => A) => Effect.Effect<A, WriteFailure>
  /** Resolves once everything submitted before it has committed. */
  readonly flush: Effect.Effect<void, WriteFailure>
  readonly stats: () => Stats
  /** Commits what is queued, then refuses new operations. */
  readonly close: () => Promise<void>
}

/** @category models @since 0.1.0 */
export interface Options {
  /** How long a batch may wait for another process's lock before it fails. Default 30 seconds. */
  readonly busyLimitMs?: number | undefined
  /** Most operations in one transaction. Default 4096. */
  readonly maxBatch?: number | undefined
  /** Called after each commit with the batch size and the milliseconds the transaction took. */
  readonly onCommit?: ((operations: number, ms: number) => void) | undefined
}

interface Op {
  readonly operation: string
  readonly run: (db: Handle) => unknown
  readonly done: Done<unknown>
}

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly failure: WriteFailure }

const closedFailure = (operation: string): WriteFailure => ({
  operation,
  cause: new Error("the SQLite writer is closed (the process is shutting down)")
})

const answer = (op: Op, outcome: Outcome) => {
  try {
    op.done(outcome)
  } catch {
    // a caller's callback must not break the writer for the rest of the batch
  }
}

/**
 * A writer on an open connection. The caller owns the connection and closes it after `close()`.
 * @category constructors @since 0.1.0
 */
export const make = (db: Handle, options: Options = {}): Writer => {
  const busyLimitMs = options.busyLimitMs ?? 30_000
  const maxBatch = Math.max(1, options.maxBatch ?? 4096)
  let queue: Array<Op> = []
  let scheduled = false
  let waitingSince: number | undefined
  let busyDelay = 0
  let closed = false
  let closing: Promise<void> | undefined
  let idle: Array<() => void> = []
  let stats: Stats = { commits: 0, failures: 0, operations: 0, largestBatch: 0, busyWaits: 0 }

  const begin = db.prepare("BEGIN IMMEDIATE")
  const commit = db.prepare("COMMIT")
  const rollback = () => {
    if (db.inTransaction) db.run("ROLLBACK")
  }

  /** Runs `ops` in one transaction; throws what SQLite throws (after rolling back). */
  const transact = (ops: ReadonlyArray<Op>): Array<Outcome> => {
    begin.run()
    try {
      const results: Array<Outcome> = []
      for (const op of ops) results.push({ ok: true, value: op.run(db) })
      commit.run()
      return results
    } catch (e) {
      rollback()
      throw e
    }
  }

  const schedule = (delayMs: number) => {
    if (scheduled) return
    scheduled = true
    if (delayMs > 0) setTimeout(drain, delayMs)
    else setImmediate(drain)
  }

  const settleIdle = () => {
    if (queue.length > 0 || scheduled) return
    const waiters = idle
    idle = []
    for (const w of waiters) w()
  }

  function drain() {
    scheduled = false
    if (queue.length === 0) return settleIdle()
    const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch)
    const started = performance.now()
    let outcomes: Array<Outcome>
    try {
      outcomes = transact(batch)
    } catch (e) {
      if (SqliteFile.isBusy(e)) {
        const now = Date.now()
        waitingSince ??= now
        if (now - waitingSince < busyLimitMs) {
          // another process holds the lock: come back later, never block the event loop
          stats = { ...stats, busyWaits: stats.busyWaits + 1 }
          // another process's transaction holds the lock for a few ms at most: look again soon
          busyDelay = Math.min(Math.max(1, busyDelay * 2), 25)
          return schedule(busyDelay)
        }
      }
      stats = { ...stats, failures: stats.failures + 1 }
      // one bad operation (or a file that stays locked) must not take the others down with it:
      // each runs again alone and gets its own answer
      outcomes = batch.map((op) => {
        try {
          return transact([op])[0]!
        } catch (cause) {
          stats = { ...stats, failures: stats.failures + 1 }
          return { ok: false as const, failure: { operation: op.operation, cause } }
        }
      })
    }
    waitingSince = undefined
    busyDelay = 0
    queue = batch === queue ? [] : queue.slice(batch.length)
    const ok = outcomes.reduce((n, o) => n + (o.ok ? 1 : 0), 0)
    stats = {
      ...stats,
      commits: stats.commits + 1,
      operations: stats.operations + ok,
      largestBatch: Math.max(stats.largestBatch, batch.length)
    }
    options.onCommit?.(batch.length, performance.now() - started)
    for (let i = 0; i < batch.length; i++) answer(batch[i]!, outcomes[i]!)
    if (queue.length > 0) schedule(0)
    else settleIdle()
  }

  const submit = <A>(operation: string, run: (db: Handle) => A, done: Done<A>): void => {
    if (closed) return done({ ok: false, failure: closedFailure(operation) })
    queue.push({ operation, run, done: done as Done<unknown> })
    schedule(0)
  }

  const write = <A>(operation: string, run: (db: Handle) => A): Effect.Effect<A, WriteFailure> =>
    Effect.callback<A, WriteFailure>((resume) => {
      submit(operation, run, (r) => resume(r.ok ? Effect.succeed(r.value) : Effect.fail(r.failure)))
    })

  return {
    submit,
    write,
    flush: write("flush", () => undefined),
    stats: () => stats,
    close: () => {
      if (closing) return closing
      closing = new Promise<void>((resolve) => {
        idle.push(resolve)
        settleIdle()
      }).then(() => {
        closed = true
      })
      return closing
    }
  }
}

const commitsTotal = Metric.counter("msgsys_sqlite_commits_total", {
  description: "SQLite group-commit transactions",
  incremental: true
})
const batchSize = Metric.histogram("msgsys_sqlite_batch_operations", {
  description: "Operations per SQLite transaction",
  boundaries: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096]
})
const commitLatency = Metric.histogram("msgsys_sqlite_commit_ms", {
  description: "Time one SQLite transaction took, milliseconds",
  boundaries: [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000]
})

/**
 * An `onCommit` that updates the writer's metrics in `context` (commits, batch sizes, commit latency).
 * @category metrics @since 0.1.0
 */
export const metricsReporter = (context: EffectContext.Context<never>) => (operations: number, ms: number) => {
  commitsTotal.updateUnsafe(1, context)
  batchSize.updateUnsafe(operations, context)
  commitLatency.updateUnsafe(ms, context)
}
