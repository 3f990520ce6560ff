/**
 * The status records a worker writes for a task (`TaskRecord` in the results bucket), built from
 * the job being run. One place builds them, so every writer agrees on their shape.
 * @since 0.1.0
 */
import type { FailedAttempt, StoredError, TaskRecord } from "../task/TaskRecord.ts"
import type { Job } from "./Intake.ts"

const base = (job: Pick<Job, "taskId" | "subject" | "envelope" | "attempt">, now: number) => ({
  id: job.taskId,
  subject: job.subject,
  tenant: job.envelope.tenant,
  attempt: job.attempt,
  updatedAt: now
})

const withHistory = (history: ReadonlyArray<FailedAttempt> | undefined) =>
  history !== undefined && history.length > 0 ? { history } : {}

/** @category records @since 0.1.0 */
export const running = (
  job: Job,
  now: number,
  startedAt: number,
  history: ReadonlyArray<FailedAttempt> | undefined,
  progress?: unknown
): TaskRecord => ({
  ...base(job, now),
  status: "running",
  startedAt,
  ...(progress !== undefined ? { progress: progress as never } : {}),
  ...withHistory(history)
})

/** @category records @since 0.1.0 */
export const succeeded = (
  job: Job,
  now: number,
  output: unknown,
  extra: {
    readonly startedAt?: number | undefined
    readonly history?: ReadonlyArray<FailedAttempt> | undefined
    readonly duplicateOf?: string | undefined
  } = {}
): TaskRecord => ({
  ...base(job, now),
  status: "succeeded",
  output: output as never,
  ...(extra.startedAt !== undefined ? { startedAt: extra.startedAt } : {}),
  endedAt: now,
  ...withHistory(extra.history),
  ...(extra.duplicateOf !== undefined ? { duplicateOf: extra.duplicateOf } : {})
})

/** @category records @since 0.1.0 */
export const failed = (
  job: Job,
  now: number,
  error: StoredError,
  history: ReadonlyArray<FailedAttempt>,
  startedAt: number,
  retryAt: number
): TaskRecord => ({
  ...base(job, now),
  status: "failed",
  error,
  history,
  startedAt,
  endedAt: now,
  retryAt
})

/** @category records @since 0.1.0 */
export const dead = (
  job: Pick<Job, "taskId" | "subject" | "envelope" | "attempt">,
  now: number,
  error: StoredError,
  history: ReadonlyArray<FailedAttempt>
): TaskRecord => ({ ...base(job, now), status: "dead", error, history, endedAt: now })

/** @category records @since 0.1.0 */
export const cancelled = (job: Job, now: number): TaskRecord => ({ ...base(job, now), status: "cancelled", endedAt: now })
