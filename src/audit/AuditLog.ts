/**
 * The audit trail: one row per step of every message (enqueued, started, succeeded, …). A
 * message is acked only after its row is committed (guarantee 1), so `record` resolves only once
 * the row's transaction has committed.
 * @since 0.1.0
 */
import { Context, Data, Effect, Layer } from "effect"

/** What happened to a message. @category models @since 0.1.0 */
export type AuditStep =
  | "enqueued"
  | "started"
  | "succeeded"
  | "failed"
  | "retry_scheduled"
  | "dead_lettered"
  | "skipped_duplicate"
  | "cancelled"
  /** The DLQ worker gave up on the dead letter (or does not retry its reason) and stored it as exhausted. */
  | "exhausted"

/** Every step, in lifecycle order. @category constants @since 0.1.0 */
export const steps: ReadonlyArray<AuditStep> = [
  "enqueued",
  "started",
  "succeeded",
  "failed",
  "retry_scheduled",
  "dead_lettered",
  "skipped_duplicate",
  "cancelled",
  "exhausted"
]

/** One step of one message. @category models @since 0.1.0 */
export interface AuditRecord {
  readonly messageId: string
  readonly subject: string
  readonly actor: string
  readonly pool: string
  readonly tenant: string
  readonly correlationId: string
  readonly attempt: number
  readonly step: AuditStep
  /** Epoch milliseconds. */
  readonly at: number
  readonly durationMs?: number | undefined
  readonly error?: string | undefined
  readonly delayMs?: number | undefined
  /** The decoded input; stored, redacted or dropped as the payload mode says. */
  readonly payload?: unknown
  /** Default `"task"`. */
  readonly kind?: "task" | "event" | undefined
}

/** How much of the payload the audit log keeps. @category models @since 0.1.0 */
export type PayloadMode = "off" | "redacted" | "full"

/**
 * Audit rows could not be committed; the messages they describe must not be acked and will be
 * redelivered.
 * @category errors @since 0.1.0
 */
export class AuditError extends Data.TaggedError("AuditError")<{
  readonly operation: string
  readonly rows: number
  readonly cause: unknown
}> {
  override get message(): string {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `audit log: ${this.operation} (${this.rows} row(s)) failed: ${why}. ` +
      "The messages stay unacknowledged and will be redelivered once the audit database accepts writes again."
  }
}

/** @category services @since 0.1.0 */
export class AuditLog extends Context.Service<AuditLog, {
  /** Resolves after the row's transaction has committed (rows are group-committed). */
  readonly record: (r: AuditRecord) => Effect.Effect<void, AuditError>
  /** All rows in the same transaction; resolves after it committed. */
  readonly recordAll: (rs: ReadonlyArray<AuditRecord>) => Effect.Effect<void, AuditError>
  /** Resolves once everything recorded before it has committed. */
  readonly flush: Effect.Effect<void, AuditError>
  /** Whether a committed row of `step` exists for the message. */
  readonly hasStep: (messageId: string, step: AuditStep) => Effect.Effect<boolean, AuditError>
}>()("msgsys/AuditLog") {}

/**
 * Audit off: records nothing and resolves at once (and `hasStep` is always false). For programs
 * that want no audit trail and for measuring its cost.
 * @category layers @since 0.1.0
 */
export const layerNoop: Layer.Layer<AuditLog> = Layer.succeed(
  AuditLog,
  AuditLog.of({
    record: () => Effect.void,
    recordAll: () => Effect.void,
    flush: Effect.void,
    hasStep: () => Effect.succeed(false)
  })
)

/**
 * The audit log in memory: every row kept in order, for unit tests and the in-memory broker.
 * `rows` reads what was recorded.
 * @category constructors @since 0.1.0
 */
export const makeMemory = Effect.sync(() => {
  // appended in place: a copy per row would make a long test quadratic
  const rows: Array<AuditRecord> = []
  const service = AuditLog.of({
    record: (r) => Effect.sync(() => void rows.push(r)),
    recordAll: (rs) => Effect.sync(() => void rows.push(...rs)),
    flush: Effect.void,
    hasStep: (messageId, step) => Effect.sync(() => rows.some((r) => r.messageId === messageId && r.step === step))
  })
  return { service, rows: Effect.sync((): ReadonlyArray<AuditRecord> => [...rows]) }
})

/** The audit log in memory, a fresh one per layer. @category layers @since 0.1.0 */
export const layerMemory = (): Layer.Layer<AuditLog> => Layer.effect(AuditLog, Effect.map(makeMemory, (m) => m.service))
