/**
 * The audit log in SQLite, with group commit: callers of `record` queue their rows; one writer
 * fiber takes everything queued, inserts it in one `BEGIN IMMEDIATE` transaction with a prepared
 * statement, commits, and only then completes each caller. A failed commit fails every caller of
 * that batch, so none of their messages is acked.
 * @since 0.1.0
 */
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, Layer, Metric, Queue } from "effect"
import { AuditLog, AuditError, type AuditRecord, type AuditStep, type PayloadMode } from "./AuditLog.ts"
import * as Database from "../sqlite/Database.ts"
import { fieldSet, payloadText } from "./internal/redact.ts"

/** @category models @since 0.1.0 */
export interface Options {
  /** `"off"` stores NULL, `"redacted"` replaces `redactFields`, `"full"` stores the payload as is. */
  readonly payload: PayloadMode
  /** Keys (any depth, case-insensitive) whose values `"redacted"` mode replaces with `"[redacted]"`. */
  readonly redactFields: ReadonlyArray<string>
  /** Most `record`/`recordAll` calls in one transaction. Default 512. */
  readonly maxBatch?: number | undefined
  /**
   * After the first row of a batch arrives, how long the writer waits for more before it commits
   * (unless the batch is already full). Default 2 millis; 0 commits at once. Timed on the real
   * clock, so a TestClock does not stall commits.
   */
  readonly maxDelay?: Duration.Input | undefined
}

/** Counters of the writer, for tests and benchmarks. @category models @since 0.1.0 */
export interface Stats {
  /** Transactions attempted (committed or not). */
  readonly transactions: number
  readonly failedTransactions: number
  /** Rows committed. */
  readonly rows: number
  readonly largestBatch: number
}

type Row = [
  messageId: string,
  subject: string,
  actor: string,
  pool: string,
  tenant: string,
  correlationId: string,
  attempt: number,
  step: string,
  at: number,
  durationMs: number | null,
  error: string | null,
  delayMs: number | null,
  payload: string | null,
  kind: string
]

interface Pending {
  readonly rows: ReadonlyArray<Row>
  readonly done: Deferred.Deferred<void, AuditError>
}

const insertSql = `INSERT INTO audit_log
  (message_id, subject, actor, pool, tenant, correlation_id, attempt, step, at, duration_ms, error, delay_ms, payload, kind)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const commits = Metric.counter("msgsys_audit_commits_total", {
  description: "audit group-commit transactions",
  incremental: true
})
const commitFailures = Metric.counter("msgsys_audit_commit_failures_total", {
  description: "audit transactions that failed; their messages were not acked",
  incremental: true
})
const committedRows = Metric.counter("msgsys_audit_rows_total", { description: "audit rows committed", incremental: true })

/**
 * Builds the group-committing audit log and its counters. The writer fiber lives in the scope: on
 * close it commits everything already queued, then stops; `record` after that fails.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("SqliteAuditLog.make")(function*(options: Options) {
  const db = yield* Database.Database
  const fields = fieldSet(options.redactFields)
  const maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 512))
  const maxDelay = Duration.fromInputUnsafe(options.maxDelay ?? "2 millis")
  const lingers = Duration.toMillis(maxDelay) > 0

  const insert = yield* Effect.orDie(db.use("preparing the audit insert", (h) => h.prepare(insertSql)))
  const insertAll = (rows: ReadonlyArray<Row>) => {
    for (const row of rows) insert.run(...row)
  }
  const hasStepQuery = yield* Effect.orDie(db.use("preparing the audit lookup", (h) =>
    h.prepare<{ one: number }, [string, string]>(
      "SELECT 1 AS one FROM audit_log WHERE message_id = ? AND step = ? LIMIT 1"
    )))

  let stats: Stats = { transactions: 0, failedTransactions: 0, rows: 0, largestBatch: 0 }
  const queue = yield* Queue.unbounded<Pending, Cause.Done>()

  const toRow = (r: AuditRecord): Row => [
    r.messageId,
    r.subject,
    r.actor,
    r.pool,
    r.tenant,
    r.correlationId,
    r.attempt,
    r.step,
    r.at,
    r.durationMs ?? null,
    r.error ?? null,
    r.delayMs ?? null,
    payloadText(r.payload, options.payload, fields),
    r.kind ?? "task"
  ]

  const closed = (rows: number) =>
    new AuditError({ operation: "record after shutdown", rows, cause: new Error("the audit log is closed") })

  // Rows are built by the caller (redaction and JSON spread over the callers' fibers); the
  // writer only inserts.
  const enqueue = (rows: ReadonlyArray<Row>): Effect.Effect<void, AuditError> => {
    const done = Deferred.makeUnsafe<void, AuditError>()
    return Queue.offerUnsafe(queue, { rows, done }) ? Deferred.await(done) : Effect.fail(closed(rows.length))
  }

  const takeBatch = Effect.gen(function*() {
    const first = yield* Queue.takeBetween(queue, 1, maxBatch)
    if (first.length >= maxBatch || !lingers) return first
    yield* Effect.sleep(maxDelay)
    const waiting = yield* Queue.size(queue)
    if (waiting <= 0) return first
    const more = yield* Queue.takeBetween(queue, 1, Math.min(waiting, maxBatch - first.length))
    return [...first, ...more]
  })

  const writeBatch = (batch: ReadonlyArray<Pending>) =>
    Effect.gen(function*() {
      const rows = batch.flatMap((p) => p.rows)
      let exit: Exit.Exit<void, AuditError> = Exit.void
      if (rows.length > 0) {
        // through the file's one writer: it waits out another process's lock without blocking
        exit = yield* Effect.exit(db.writer.write("committing audit rows", () => insertAll(rows)).pipe(
          Effect.mapError((failure) =>
            new AuditError({
              operation: "group commit",
              rows: rows.length,
              cause: Database.toError("committing audit rows", db.path)(failure.cause)
            })
          )
        ))
        const ok = Exit.isSuccess(exit)
        stats = {
          transactions: stats.transactions + 1,
          failedTransactions: stats.failedTransactions + (ok ? 0 : 1),
          rows: stats.rows + (ok ? rows.length : 0),
          largestBatch: Math.max(stats.largestBatch, rows.length)
        }
        yield* Metric.update(commits, 1)
        if (ok) yield* Metric.update(committedRows, rows.length)
        else yield* Metric.update(commitFailures, 1)
      }
      for (const p of batch) yield* Deferred.done(p.done, exit)
    })

  // Each taken batch is written and answered even if the writer is interrupted meanwhile.
  const writer = Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      while (true) {
        const batch = yield* restore(takeBatch)
        yield* writeBatch(batch)
      }
    })
  ).pipe(
    Effect.catchIf(Cause.isDone, () => Effect.void),
    Effect.provideService(Clock.Clock, Clock.Clock.defaultValue())
  )
  const fiber = yield* Effect.forkScoped(writer, { startImmediately: true })
  // Runs before the fork's own interruption (finalizers run in reverse): drain, then stop.
  yield* Effect.addFinalizer(() => Effect.andThen(Queue.end(queue), Effect.asVoid(Fiber.await(fiber))))

  const service = AuditLog.of({
    record: (r) => Effect.suspend(() => enqueue([toRow(r)])),
    recordAll: (rs) => Effect.suspend(() => (rs.length === 0 ? Effect.void : enqueue(rs.map(toRow)))),
    flush: Effect.suspend(() => enqueue([])),
    hasStep: (messageId: string, step: AuditStep) =>
      db.use("looking up an audit step", () => hasStepQuery.get(messageId, step) !== null).pipe(
        Effect.mapError((cause) => new AuditError({ operation: "hasStep", rows: 0, cause }))
      )
  })
  return { service, stats: Effect.sync(() => stats) }
})

/**
 * The group-committing audit log on the `Database`.
 * @category layers @since 0.1.0
 */
export const layerSqlite = (options: Options): Layer.Layer<AuditLog, never, Database.Database> =>
  Layer.effect(AuditLog, Effect.map(make(options), (m) => m.service))
