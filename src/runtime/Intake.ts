/**
 * The first step of a delivery: read its envelope, route it by subject to a task of the actor,
 * decode the payload, and compute its partition and idempotency keys. Everything that can go
 * wrong with the message itself — an unknown subject, a payload that does not decode, a
 * `partitionBy` or `idempotencyKey` that throws — makes it poison, with the reason (guarantee 3:
 * poison goes straight to dead letters). Synchronous, and it never throws.
 * @since 0.1.0
 */
import type * as Actor from "../actor/Actor.ts"
import type { Delivery } from "../broker/Delivery.ts"
import type { Names, Priority } from "../broker/Subjects.ts"
import * as Envelope from "../envelope/Envelope.ts"
import * as Payload from "../envelope/Payload.ts"
import type * as Task from "../task/Task.ts"
import * as TaskError from "../task/TaskError.ts"
import * as TaskHeaders from "../task/TaskHeaders.ts"

/** A delivery ready to run. @category models @since 0.1.0 */
export interface Job {
  readonly delivery: Delivery
  readonly priority: Priority | "delayed"
  /** The logical subject (the task's). */
  readonly subject: string
  readonly task: Task.Any
  readonly envelope: Envelope.Envelope
  readonly taskId: string
  /** JetStream's delivery count: 1 on the first delivery. */
  readonly attempt: number
  readonly input: unknown
  /** Same key: one at a time, in arrival order. */
  readonly partition: string | undefined
  /** The idempotency key as stored: scoped by tenant and subject. */
  readonly key: string
  /**
   * Whether the key was given (the enqueue's key or the task's `idempotencyKey`) rather than the
   * message id: different messages may then share it, so a run claims it before it starts.
   */
  readonly keyed: boolean
  /** Whether the run's final status is stored in the results bucket. */
  readonly storeResult: boolean
  readonly receivedAt: number
}

/** A delivery that can never run, and why. @category models @since 0.1.0 */
export interface Poison {
  readonly delivery: Delivery
  readonly subject: string
  readonly envelope: Envelope.Envelope
  readonly error: unknown
}

/** @category models @since 0.1.0 */
export type Intake = { readonly _tag: "Job"; readonly job: Job } | { readonly _tag: "Poison"; readonly poison: Poison }

/**
 * The stored idempotency key. Keys are scoped by tenant and subject, so a publisher cannot
 * complete another tenant's (or another task's) key in advance; without an explicit key the
 * message id is the key.
 * @category keys @since 0.1.0
 */
export const scopedKey = (
  tenant: string,
  subject: string,
  explicit: string | undefined,
  taskId: string,
  scope?: string
): string =>
  (scope === undefined ? "" : `${scope}/`) +
  (explicit === undefined ? `${tenant}/${subject}/id/${taskId}` : `${tenant}/${subject}/key/${explicit}`)

/** `Msgsys-Result: off` on a message: do not store its final status. @category constants @since 0.1.0 */
export const resultOff = "off"

const describeThrow = (what: string, e: unknown) =>
  TaskError.permanent(new Error(`${what} threw: ${TaskError.describe(e)}`))

/**
 * Reads one delivery for `actor`.
 * @category intake @since 0.1.0
 */
export const read = (actor: Actor.Runnable, names: Names, d: Delivery, now: number, keyScope?: string): Intake => {
  const { subject, priority } = names.parseTaskSubject(d.subject)
  const envelope = Envelope.fromHeaders(subject, d.headers, {
    // a message without a creation time was created when it was stored
    now: d.storedAt > 0 ? d.storedAt : now,
    fallbackId: `${d.stream}-${d.streamSequence}`,
    deliveryCount: d.deliveryCount
  })
  const poison = (error: unknown): Intake => ({ _tag: "Poison", poison: { delivery: d, subject, envelope, error } })
  const task = actor.tasks.get(subject)
  if (task === undefined) {
    return poison(new TaskError.UnknownSubject({ subject, actor: actor.name, known: [...actor.tasks.keys()] }))
  }
  const decoded = Payload.decodeSync(task.input, subject, d.data)
  if (decoded._tag === "Failure") return poison(decoded.failure)
  const input = decoded.success
  let partition: string | undefined
  if (actor.partitionBy !== undefined) {
    try {
      partition = String(actor.partitionBy(input, envelope))
    } catch (e) {
      return poison(describeThrow(`partitionBy of actor ${actor.name}`, e))
    }
  }
  let explicit = envelope.extra[TaskHeaders.IdempotencyKey]
  if (explicit === undefined && task.idempotencyKey !== undefined) {
    try {
      explicit = String(task.idempotencyKey(input))
    } catch (e) {
      return poison(describeThrow(`idempotencyKey of task ${subject}`, e))
    }
  }
  return {
    _tag: "Job",
    job: {
      delivery: d,
      priority,
      subject,
      task,
      envelope,
      taskId: envelope.id,
      attempt: d.deliveryCount,
      input,
      partition,
      key: scopedKey(envelope.tenant, subject, explicit, envelope.id, keyScope),
      keyed: explicit !== undefined,
      storeResult: task.result !== false && envelope.extra[TaskHeaders.Result] !== resultOff,
      receivedAt: now
    }
  }
}
