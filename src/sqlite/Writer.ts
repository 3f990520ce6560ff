/**
 * The one writer of the msgsys SQLite file in a process (on the thread that dispatches): the
 * group commit of `GroupCommit`, with its operations as Effects and its commits as metrics. Every
 * store (audit, idempotency keys, exhausted letters, a handler's own tables) hands it synchronous
 * operations; the ledger's claims and outcomes go to the ledger's own thread when it runs
 * (src/ledger/LedgerThread.ts).
 * @since 0.1.0
 */
import { Context as EffectContext, Effect, Metric } from "effect"
import * as GroupCommit from "./GroupCommit.ts"
import type { Handle } from "./SqliteFile.ts"

export type { Done, Options, Stats, WriteFailure } from "./GroupCommit.ts"

/** @category models @since 0.1.0 */
export interface Writer extends GroupCommit.GroupCommit {
  /** `submit` as an Effect. */
  readonly write: <A>(operation: string, run: (db: Handle) => A) => Effect.Effect<A, GroupCommit.WriteFailure>
  /** Resolves once everything submitted before it has committed. */
  readonly flush: Effect.Effect<void, GroupCommit.WriteFailure>
}

/**
 * A writer on an open connection. The caller owns the connection and closes it after `close()`.
 * @category constructors @since 0.1.0
 */
export const make = (db: Handle, options: GroupCommit.Options = {}): Writer => {
  const core = GroupCommit.make(db, options)
  const write = <A>(operation: string, run: (db: Handle) => A): Effect.Effect<A, GroupCommit.WriteFailure> =>
    Effect.callback<A, GroupCommit.WriteFailure>((resume) => {
      core.submit(operation, run, (r) => resume(r.ok ? Effect.succeed(r.value) : Effect.fail(r.failure)))
    })
  return { ...core, write, flush: write("flush", () => undefined) }
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
