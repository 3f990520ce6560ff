/**
 * The status record of one task, as stored in the results bucket: what a client reads to learn
 * whether its task is queued, running or done, and the output or error when it is.
 * @since 0.1.0
 */
import { Schema } from "effect"

/** @category models @since 0.1.0 */
export const Status = Schema.Literals(["queued", "running", "failed", "succeeded", "dead", "cancelled"])
/**
 * `queued` waits to run (or for its run-at time); `running` is being handled; `failed` means the
 * last attempt failed and a retry is scheduled; `succeeded`, `dead` (moved to dead letters) and
 * `cancelled` are final.
 * @category models @since 0.1.0
 */
export type Status = typeof Status.Type

/** @category predicates @since 0.1.0 */
export const isFinal = (s: Status): boolean => s === "succeeded" || s === "dead" || s === "cancelled"

/** An error as stored: its tag, message and (when the task declares an error schema) its encoded form. @category models @since 0.1.0 */
export const StoredError = Schema.Struct({
  tag: Schema.String,
  message: Schema.String,
  encoded: Schema.optionalKey(Schema.Json)
})
/** @category models @since 0.1.0 */
export type StoredError = typeof StoredError.Type

/** One failed attempt. @category models @since 0.1.0 */
export const FailedAttempt = Schema.Struct({
  attempt: Schema.Number,
  at: Schema.Number,
  error: StoredError,
  retryDelayMs: Schema.optionalKey(Schema.Number)
})
/** @category models @since 0.1.0 */
export type FailedAttempt = typeof FailedAttempt.Type

/** @category models @since 0.1.0 */
export const TaskRecord = Schema.Struct({
  id: Schema.String,
  subject: Schema.String,
  tenant: Schema.String,
  status: Status,
  attempt: Schema.Number,
  updatedAt: Schema.Number,
  enqueuedAt: Schema.optionalKey(Schema.Number),
  runAt: Schema.optionalKey(Schema.Number),
  startedAt: Schema.optionalKey(Schema.Number),
  endedAt: Schema.optionalKey(Schema.Number),
  retryAt: Schema.optionalKey(Schema.Number),
  output: Schema.optionalKey(Schema.Json),
  error: Schema.optionalKey(StoredError),
  progress: Schema.optionalKey(Schema.Json),
  history: Schema.optionalKey(Schema.Array(FailedAttempt)),
  /** Set when the outcome was returned from the idempotency store instead of running again. */
  duplicateOf: Schema.optionalKey(Schema.String)
})
/** @category models @since 0.1.0 */
export type TaskRecord = typeof TaskRecord.Type
