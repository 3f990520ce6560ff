/**
 * The header a pipeline step's message carries: which pipeline, which step, and the whole plan, so
 * the worker that finishes a step enqueues the next one without reading anything (the plan travels
 * with the message, and a dead letter replayed later still knows where it belongs).
 * @since 0.1.0
 */
import { Option, Schema } from "effect"
import * as TaskHeaders from "../task/TaskHeaders.ts"
import { invalidSubject } from "../broker/Subjects.ts"
import { isGather, isPipelineId, Plan, subjectsOf } from "./PipelineRecord.ts"

/** The header's name. @category constants @since 0.1.0 */
export const name = TaskHeaders.Pipeline

/**
 * The longest header value a plan may make: extension headers are read up to 8 KB in all
 * (`Envelope.maxExtraSize`), and a task's own headers need room too.
 * @category constants @since 0.1.0
 */
export const maxSize = 4096

/** @category models @since 0.1.0 */
export const PipelineHeader = Schema.Struct({
  /** The pipeline id. */
  id: Schema.String,
  /** This message's step, from 1. */
  step: Schema.Int,
  /** Its place in a gather step, from 1. */
  child: Schema.optionalKey(Schema.Int),
  plan: Plan,
  priority: Schema.optionalKey(Schema.Literals(["high", "low"]))
})
/** @category models @since 0.1.0 */
export type PipelineHeader = typeof PipelineHeader.Type

/** @category encoding @since 0.1.0 */
export const encode = (header: PipelineHeader): string => JSON.stringify(header)

const decodeHeader = Schema.decodeUnknownOption(PipelineHeader)

/**
 * Reads the header; `None` when it is not one: not JSON, an id that cannot name a pipeline, a
 * subject no task can have, or a step (or a task of a gather) its plan does not have. Any NATS
 * client can send the header, and the worker builds keys and subjects from it.
 * @category decoding @since 0.1.0
 */
export const decode = (value: string): Option.Option<PipelineHeader> => {
  let json: unknown
  try {
    json = JSON.parse(value)
  } catch {
    return Option.none()
  }
  return Option.filter(decodeHeader(json), (h) => {
    const step = h.plan[h.step - 1]
    if (step === undefined || !isPipelineId(h.id)) return false
    if (!h.plan.every((s) => subjectsOf(s).length > 0 && subjectsOf(s).every((subject) => invalidSubject(subject) === undefined))) {
      return false
    }
    return isGather(step) ? h.child !== undefined && h.child >= 1 && h.child <= step.length : h.child === undefined
  })
}
