/**
 * The audit log in the msgsys SQLite file. Rows go through the file's one group-commit writer
 * (`Database.writer`): the records of every caller queued in one turn of the event loop share a
 * transaction, and `record` resolves only after it committed. A failed commit fails its callers
 * (after the writer has retried each alone), so none of their messages is acked.
 * @since 0.1.0
 */
import { Effect, Layer, Metric } from "effect"
import { AuditError, AuditLog, type AuditRecord, type AuditStep, type PayloadMode } from "./AuditLog.ts"
import * as AuditRows from "./AuditRows.ts"
import * as Database from "../sqlite/Database.ts"
import type * as Writer from "../sqlite/Writer.ts"

/** @category models @since 0.1.0 */
export interface Options {
  /** `"off"` stores no payload, `"redacted"` replaces `redactFields`, `"full"` stores the payload as is. */
  readonly payload: PayloadMode
  /** Keys (any depth, case-insensitive) whose values `"redacted"` mode replaces with `"[redacted]"`. */
  readonly redactFields: ReadonlyArray<string>
}

const committedRows = Metric.counter("msgsys_audit_rows_total", { description: "audit rows committed", incremental: true })
const failedRows = Metric.counter("msgsys_audit_failed_rows_total", {
  description: "audit rows whose transaction failed; their messages were not acked",
  incremental: true
})

/**
 * Builds the audit log on the `Database` and returns it with the writer's counters (shared by
 * every store on the file). The writer commits what is queued when the database closes.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("SqliteAuditLog.make")(function*(options: Options) {
  const db = yield* Database.Database
  const rows = yield* Effect.orDie(db.use("preparing the audit statements", (h) => AuditRows.prepare(h, options)))
  const context = yield* Effect.context<never>()

  const write = (records: ReadonlyArray<AuditRecord>): Effect.Effect<void, AuditError> =>
    Effect.callback<void, AuditError>((resume) => {
      db.writer.submit("recording audit rows", (_) => rows.write(records), (result) => {
        if (result.ok) {
          committedRows.updateUnsafe(records.length, context)
          resume(Effect.void)
        } else {
          failedRows.updateUnsafe(records.length, context)
          resume(Effect.fail(auditError(result.failure, records.length)))
        }
      })
    })

  const auditError = (failure: Writer.WriteFailure, count: number) =>
    new AuditError({
      operation: failure.operation,
      rows: count,
      cause: Database.toError(failure.operation, db.path)(failure.cause)
    })

  const service = AuditLog.of({
    record: (r) => write([r]),
    recordAll: (rs) => (rs.length === 0 ? Effect.void : write(rs)),
    flush: db.writer.flush.pipe(Effect.mapError((f) => auditError(f, 0))),
    hasStep: (messageId: string, step: AuditStep) =>
      db.use("looking up an audit step", () => rows.hasStep(messageId, step)).pipe(
        Effect.mapError((cause) => new AuditError({ operation: "hasStep", rows: 0, cause }))
      )
  })
  return { service, stats: Effect.sync(() => db.writer.stats()) }
})

/**
 * The audit log on the `Database`.
 * @category layers @since 0.1.0
 */
export const layerSqlite = (options: Options): Layer.Layer<AuditLog, never, Database.Database> =>
  Layer.effect(AuditLog, Effect.map(make(options), (m) => m.service))
