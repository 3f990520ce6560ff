/**
 * Enqueues one step of a pipeline: a message per task of the step, each with its deterministic
 * task id (also its `Nats-Msg-Id`, so enqueueing the step again is deduplicated by the stream and,
 * past the duplicate window, by the task's idempotency key), the pipeline id as its correlation
 * id, and the pipeline header. Every size is checked before anything is published.
 */
import { Effect } from "effect"
import * as Publish from "../../broker/Publish.ts"
import type * as Subjects from "../../broker/Subjects.ts"
import * as Envelope from "../../envelope/Envelope.ts"
import * as Payload from "../../envelope/Payload.ts"
import * as PipelineHeader from "../PipelineHeader.ts"
import { isGather, type Plan, stepId, subjectsOf } from "../PipelineRecord.ts"

/** What enqueueing needs of the broker. */
export interface Transport {
  readonly publisher: Publish.Publisher
  readonly names: Subjects.Names
  readonly maxPayload: () => number
}

export interface StepRequest {
  readonly pipelineId: string
  readonly plan: Plan
  /** From 1. */
  readonly step: number
  readonly priority: Subjects.Priority
  /** Default: the parent's tenant, else the default tenant. */
  readonly tenant?: string | undefined
  /** The message that caused this step (the step before it): causation and trace follow it. */
  readonly parent?: Envelope.Envelope | undefined
  /** The body of each task of the step, in order. */
  readonly bodies: ReadonlyArray<Uint8Array>
  readonly now: number
}

/** A step's messages, checked, ready to publish. */
export const prepare = (transport: Transport, r: StepRequest) =>
  Effect.forEach(subjectsOf(r.plan[r.step - 1]!), (subject, k) => {
    const gather = isGather(r.plan[r.step - 1]!)
    const child = gather ? k + 1 : undefined
    const id = stepId(r.pipelineId, r.step, child)
    const header = PipelineHeader.encode({
      id: r.pipelineId,
      step: r.step,
      ...(child !== undefined ? { child } : {}),
      plan: r.plan,
      ...(r.priority !== "normal" ? { priority: r.priority } : {})
    })
    const envelope = Envelope.makeUnsafe(subject, r.now, {
      id,
      ...(r.tenant !== undefined ? { tenant: r.tenant } : {}),
      correlationId: r.pipelineId,
      ...(r.parent !== undefined ? { parent: r.parent } : {}),
      extra: { [PipelineHeader.name]: header }
    })
    const headers = Envelope.toHeaders(envelope, { compact: true })
    const data = r.bodies[k]!
    return Effect.as(Payload.checkSize(subject, data, headers, transport.maxPayload()), {
      taskId: id,
      subject,
      message: { subject: transport.names.taskSubject(subject, r.priority), data, headers, msgId: id } satisfies Publish.Message
    })
  })

/** Enqueues a step; returns its task ids. */
export const enqueueStep = (transport: Transport, r: StepRequest) =>
  Effect.flatMap(prepare(transport, r), (messages) =>
    Effect.forEach(messages, (m) => Effect.as(Publish.publish(transport.publisher, m.message), m.taskId), {
      concurrency: "unbounded"
    }))
