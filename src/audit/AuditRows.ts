/**
 * Writing audit rows inside a transaction someone else holds: the hot path fuses them with the
 * idempotency claim and the outcome, so a task's outcome and its audit row commit together.
 * @since 0.1.0
 */
import type { Handle } from "../sqlite/Database.ts"
import type { AuditRecord, AuditStep, PayloadMode } from "./AuditLog.ts"
import { fieldSet, payloadText } from "./internal/redact.ts"

/** @category models @since 0.1.0 */
export interface AuditRows {
  /**
   * Inserts the step rows (and keeps each message's summary current). Synchronous; must run
   * inside a transaction the caller holds (the SQLite Writer's). Throws what SQLite throws.
   */
  readonly write: (records: ReadonlyArray<AuditRecord>) => void
  /** Whether a committed row of `step` exists for the message. */
  readonly hasStep: (messageId: string, step: AuditStep) => boolean
}

/** @category models @since 0.1.0 */
export interface Options {
  readonly payload: PayloadMode
  readonly redactFields: ReadonlyArray<string>
}

/**
 * Prepares the statements on `db`.
 * @category constructors @since 0.1.0
 */
export const prepare = (db: Handle, options: Options): AuditRows => {
  const fields = fieldSet(options.redactFields)
  const insert = db.prepare(
    `INSERT INTO audit_log
      (message_id, subject, actor, pool, tenant, correlation_id, attempt, step, at, duration_ms, error, delay_ms, payload, kind)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
  )
  const lookup = db.prepare<{ one: number }, [string, string]>(
    "SELECT 1 AS one FROM audit_log WHERE message_id = ? AND step = ? LIMIT 1"
  )
  return {
    write: (records) => {
      for (const r of records) {
        insert.run(
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
        )
      }
    },
    hasStep: (messageId, step) => lookup.get(messageId, step) !== null
  }
}
