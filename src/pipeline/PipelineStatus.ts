/**
 * A pipeline's status, read like a task's: running, succeeded (with the output of its last step),
 * failed (with the step that failed and why) or cancelled, and each step with its task id and
 * status. It is derived from the plan and the steps' task records, never stored apart, so it
 * cannot disagree with them: a dead step replayed from dead letters shows the pipeline running
 * again, and going on once the step succeeds.
 * @since 0.1.0
 */
import { Schema } from "effect"
import { StoredError, type TaskRecord } from "../task/TaskRecord.ts"
import { isGather, type PipelineRecord, stepsOf } from "./PipelineRecord.ts"

/**
 * A step task's status: a task status, or `waiting` (an earlier step has not finished) or
 * `queued` (the step before finished, the task has no status record yet). `failed` means an
 * attempt failed and a retry is scheduled; `dead` is final.
 * @category models @since 0.1.0
 */
export const StepState = Schema.Literals(["waiting", "queued", "running", "failed", "succeeded", "dead", "cancelled"])
/** @category models @since 0.1.0 */
export type StepState = typeof StepState.Type

/** Whether a step task's status is final (succeeded, dead, cancelled). @category predicates @since 0.1.0 */
export const hasEnded = (status: StepState): boolean => status === "succeeded" || status === "dead" || status === "cancelled"

/** One task of a pipeline. @category models @since 0.1.0 */
export const StepStatus = Schema.Struct({
  /** From 1. */
  step: Schema.Number,
  /** Its place in a gather step, from 1. */
  child: Schema.optionalKey(Schema.Number),
  subject: Schema.String,
  taskId: Schema.String,
  status: StepState,
  attempt: Schema.optionalKey(Schema.Number),
  startedAt: Schema.optionalKey(Schema.Number),
  endedAt: Schema.optionalKey(Schema.Number),
  output: Schema.optionalKey(Schema.Json),
  error: Schema.optionalKey(StoredError)
})
/** @category models @since 0.1.0 */
export type StepStatus = typeof StepStatus.Type

/** @category models @since 0.1.0 */
export const Status = Schema.Literals(["running", "succeeded", "failed", "cancelled"])
/** `succeeded`, `failed` and `cancelled` are final (a failed step replayed makes it run again). @category models @since 0.1.0 */
export type Status = typeof Status.Type

/** @category models @since 0.1.0 */
export const PipelineStatus = Schema.Struct({
  id: Schema.String,
  tenant: Schema.String,
  createdAt: Schema.Number,
  status: Status,
  /** The step it is at; for a failed or cancelled pipeline, the step that failed. */
  current: Schema.optionalKey(Schema.Number),
  /** Steps it has. */
  length: Schema.Number,
  steps: Schema.Array(StepStatus),
  /** The last step's output (a gather's: its tasks' outputs in order), once it succeeded. */
  output: Schema.optionalKey(Schema.Json),
  /** The task that failed the pipeline: dead (its error says why) or cancelled. */
  failure: Schema.optionalKey(StepStatus)
})
/** @category models @since 0.1.0 */
export type PipelineStatus = typeof PipelineStatus.Type

/** @category predicates @since 0.1.0 */
export const isFinal = (status: Status): boolean => status !== "running"

/**
 * The status of the pipeline `record` describes, from the task records of its steps (absent
 * ones: not taken by a worker yet, or never enqueued).
 * @category deriving @since 0.1.0
 */
export const derive = (record: PipelineRecord, tasks: ReadonlyMap<string, TaskRecord>): PipelineStatus => {
  const steps: Array<StepStatus> = []
  // every step before this one succeeded: its tasks are enqueued, or about to be
  let reached = true
  let current: number | undefined
  const all = stepsOf(record.id, record.plan)
  for (let i = 0; i < record.plan.length; i++) {
    const refs = all.filter((s) => s.step === i + 1)
    let allSucceeded = true
    for (const ref of refs) {
      const r = tasks.get(ref.taskId)
      const status: StepState = r?.status ?? (reached ? "queued" : "waiting")
      if (status !== "succeeded") allSucceeded = false
      steps.push({
        step: ref.step,
        ...(ref.child !== undefined ? { child: ref.child } : {}),
        subject: ref.subject,
        taskId: ref.taskId,
        status,
        ...(r !== undefined && r.attempt > 0 ? { attempt: r.attempt } : {}),
        ...(r?.startedAt !== undefined ? { startedAt: r.startedAt } : {}),
        ...(r?.endedAt !== undefined ? { endedAt: r.endedAt } : {}),
        ...(r?.output !== undefined ? { output: r.output } : {}),
        ...(r?.error !== undefined ? { error: r.error } : {})
      })
    }
    if (!allSucceeded && current === undefined) current = i + 1
    reached = reached && allSucceeded
  }
  const base = { id: record.id, tenant: record.tenant, createdAt: record.createdAt, length: record.plan.length, steps }
  const failure = steps.find((s) => s.status === "dead" || s.status === "cancelled")
  if (failure !== undefined) {
    return { ...base, status: failure.status === "dead" ? "failed" : "cancelled", current: failure.step, failure }
  }
  if (current !== undefined) return { ...base, status: "running", current }
  const last = steps.filter((s) => s.step === record.plan.length)
  const output = isGather(record.plan[record.plan.length - 1]!) ? last.map((s) => s.output ?? null) : last[0]!.output ?? null
  return { ...base, status: "succeeded", output }
}
