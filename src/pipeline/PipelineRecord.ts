/**
 * What a pipeline is once started: its id, its plan (the subjects of its steps, a gather step as
 * the list of its tasks' subjects) and the ids of its step tasks. The record is written once, at
 * start, to the pipelines bucket; a pipeline's progress is read from its steps' task records.
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Subjects from "../broker/Subjects.ts"

/**
 * The subjects of a pipeline's steps, in order: a subject for a one-task step, a list of subjects
 * for a gather step (even a gather of one task).
 * @category models @since 0.1.0
 */
export const Plan = Schema.Array(Schema.Union([Schema.String, Schema.Array(Schema.String)]))
/** @category models @since 0.1.0 */
export type Plan = typeof Plan.Type

/** @category models @since 0.1.0 */
export const PipelineRecord = Schema.Struct({
  id: Schema.String,
  tenant: Schema.String,
  plan: Plan,
  createdAt: Schema.Number,
  /** The priority its steps are enqueued with; normal when absent. */
  priority: Schema.optionalKey(Schema.Literals(["high", "low"]))
})
/** @category models @since 0.1.0 */
export type PipelineRecord = typeof PipelineRecord.Type

// Pipeline ids become part of task ids (`<id>.<step>`), KV keys and subject tokens: no dots, so
// the step ids of two pipelines never meet.
const ID = /^[A-Za-z0-9_=-]{1,100}$/

/** Whether `id` can name a pipeline. @category validation @since 0.1.0 */
export const isPipelineId = (id: string): boolean => ID.test(id)

/** A pipeline id that cannot be one. @category errors @since 0.1.0 */
export class InvalidPipelineId extends Schema.TaggedError<InvalidPipelineId>()("InvalidPipelineId", {
  pipelineId: Schema.String
}) {
  override get message() {
    const shown = this.pipelineId.length > 80 ? `${JSON.stringify(this.pipelineId.slice(0, 80))}...` : JSON.stringify(this.pipelineId)
    return `invalid pipeline id ${shown}: use the id start returned, or choose 1 to 100 characters of A-Z, a-z, 0-9, ` +
      "'_', '-' and '=' (no dots: a step's task id is the pipeline id, a dot and the step number)"
  }
}

/** Whether a step of the plan is a gather (its tasks run side by side). @category plan @since 0.1.0 */
export const isGather = (step: Plan[number]): step is ReadonlyArray<string> => typeof step !== "string"

/** The subjects of one step (one, or a gather's). @category plan @since 0.1.0 */
export const subjectsOf = (step: Plan[number]): ReadonlyArray<string> => isGather(step) ? step : [step]

/**
 * The task id of a step (numbered from 1), or of one task of a gather step (`child`, from 1):
 * `<pipeline id>.<step>` and `<pipeline id>.<step>.<child>`. Deterministic, so a step enqueued
 * again after a crash is the same task, deduplicated by the stream and by its idempotency key.
 * @category ids @since 0.1.0
 */
export const stepId = (pipelineId: string, step: number, child?: number): string =>
  child === undefined ? `${pipelineId}.${step}` : `${pipelineId}.${step}.${child}`

/** One task of a pipeline: its step (from 1), its place in a gather (from 1), subject and task id. @category plan @since 0.1.0 */
export interface StepRef {
  readonly step: number
  readonly child: number | undefined
  readonly subject: string
  readonly taskId: string
}

/** Every task of a pipeline, step by step. @category plan @since 0.1.0 */
export const stepsOf = (pipelineId: string, plan: Plan): ReadonlyArray<StepRef> =>
  plan.flatMap((s, i): Array<StepRef> =>
    isGather(s)
      ? s.map((subject, k) => ({ step: i + 1, child: k + 1, subject, taskId: stepId(pipelineId, i + 1, k + 1) }))
      : [{ step: i + 1, child: undefined, subject: s, taskId: stepId(pipelineId, i + 1) }]
  )

/** The priority steps are enqueued with. @category plan @since 0.1.0 */
export const priorityOf = (record: Pick<PipelineRecord, "priority">): Subjects.Priority => record.priority ?? "normal"
