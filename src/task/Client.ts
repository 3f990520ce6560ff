/**
 * The client side of tasks: enqueue with checked types, read a task's status, wait for its
 * result, cancel it. Effect-first; `Client.promise` wraps the same calls for code without Effect.
 * @since 0.1.0
 */
import { Cause, Clock, Context, Data, Duration, Effect, Exit, Layer, Option, Schema } from "effect"
import { createHash } from "node:crypto"
import { AuditLog } from "../audit/AuditLog.ts"
import type { BrokerError } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Publish from "../broker/Publish.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as Envelope from "../envelope/Envelope.ts"
import * as Payload from "../envelope/Payload.ts"
import { Results, type ResultTimeout, TaskNotFound } from "./Results.ts"
import type * as Task from "./Task.ts"
import * as TaskHeaders from "./TaskHeaders.ts"
import type { TaskRecord } from "./TaskRecord.ts"

/** @category models @since 0.1.0 */
export interface EnqueueOptions {
  /** Default "default". */
  readonly tenant?: string
  readonly correlationId?: string
  /** The message that caused this one: its correlation and trace are inherited. */
  readonly parent?: Envelope.Envelope
  /**
   * Idempotency and dedup key: a second enqueue with the same key returns the first task's
   * handle, and the task's handler runs once for the key even after the dedup window.
   */
  readonly key?: string
  /** Default: the task's priority, else normal. */
  readonly priority?: Subjects.Priority
  /** Run no earlier than this long from now. */
  readonly delay?: Duration.Input
  /** Run no earlier than this time. */
  readonly runAt?: Date | number
}

/** A task that was enqueued. @category models @since 0.1.0 */
export interface Handle<T extends Task.Any = Task.Any> {
  readonly id: string
  readonly task: T
  /** True when an earlier enqueue with the same key already created this task. */
  readonly duplicate: boolean
}

/** The task ended without a result: dead-lettered or cancelled. @category errors @since 0.1.0 */
export class TaskFailed extends Data.TaggedError("TaskFailed")<{
  readonly taskId: string
  readonly status: TaskRecord["status"]
  readonly record: TaskRecord
}> {
  override get message() {
    return `task ${this.taskId} ended ${this.status}` +
      (this.record.error ? `: ${this.record.error.message}` : "") +
      (this.status === "dead" ? " — inspect and replay it with `msgsys dlq`" : "")
  }
}

/** The stored output does not match the task's output schema (the worker runs other code). @category errors @since 0.1.0 */
export class OutputMismatch extends Data.TaggedError("OutputMismatch")<{ readonly taskId: string; readonly reason: string }> {
  override get message() {
    return `the result of task ${this.taskId} does not match its output schema (${this.reason}): ` +
      "the worker and this client run different versions of the task definition"
  }
}

/** @category models @since 0.1.0 */
export type EnqueueError =
  | Payload.PayloadEncodeError
  | Payload.PayloadTooLarge
  | Publish.NoStreamForSubject
  | BrokerError
  | Envelope.InvalidTenant
  | Subjects.InvalidSubject

/** @category services @since 0.1.0 */
export class Client extends Context.Service<Client, {
  readonly enqueue: <T extends Task.Any>(
    task: T,
    input: Task.Input<T>,
    options?: EnqueueOptions
  ) => Effect.Effect<Handle<T>, EnqueueError>
  /** Enqueues a JSON value without a local schema (the worker still checks it). */
  readonly enqueueJson: (
    subject: string,
    json: unknown,
    options?: EnqueueOptions
  ) => Effect.Effect<{ readonly id: string; readonly duplicate: boolean }, EnqueueError>
  readonly status: (taskId: string) => Effect.Effect<TaskRecord, TaskNotFound | BrokerError | Envelope.InvalidTaskId>
  /** Waits for a final status and returns the record. */
  readonly wait: (
    taskId: string,
    timeout: Duration.Input
  ) => Effect.Effect<TaskRecord, ResultTimeout | BrokerError | Envelope.InvalidTaskId>
  /** Waits for the typed output. */
  readonly result: <T extends Task.Any>(
    handle: Handle<T>,
    timeout: Duration.Input
  ) => Effect.Effect<Task.Output<T>, TaskFailed | OutputMismatch | ResultTimeout | BrokerError>
  /** A queued task is skipped when it arrives; a running one is interrupted. */
  readonly cancel: (taskId: string) => Effect.Effect<void, BrokerError | Envelope.InvalidTaskId>
}>()("msgsys/Client") {}

const keyIndex = (subject: string, key: string) =>
  `key.${createHash("sha256").update(`${subject}\u0000${key}`).digest("hex")}`

/** @category constructors @since 0.1.0 */
export const make = Effect.gen(function*() {
  const config = yield* MsgsysConfig
  const nats = yield* Nats
  const results = yield* Results
  const audit = yield* Effect.serviceOption(AuditLog)
  const names = Subjects.make(config.streamPrefix)

  const send = Effect.fnUntraced(function*(
    subject: string,
    data: Uint8Array,
    options: EnqueueOptions,
    defaultPriority: Subjects.Priority | undefined
  ) {
    const now = yield* Clock.currentTimeMillis
    const tenant = options.tenant ?? options.parent?.tenant ?? "default"
    yield* Envelope.validateTenant(tenant)
    const priority = options.priority ?? defaultPriority ?? "normal"
    const runAt = options.runAt !== undefined
      ? (typeof options.runAt === "number" ? options.runAt : options.runAt.getTime())
      : options.delay !== undefined
      ? now + Duration.toMillis(Duration.fromInputUnsafe(options.delay))
      : undefined
    const delayed = runAt !== undefined && runAt > now
    const extra: Record<string, string> = {}
    if (options.key !== undefined) extra[TaskHeaders.IdempotencyKey] = options.key
    if (delayed) {
      extra[TaskHeaders.RunAt] = String(runAt)
      extra[TaskHeaders.Priority] = priority
    }
    const envelope = yield* Envelope.make(subject, {
      tenant,
      ...(options.correlationId !== undefined ? { correlationId: options.correlationId } : {}),
      ...(options.parent !== undefined ? { parent: options.parent } : {}),
      ...(options.key !== undefined ? { dedupKey: `key:${subject}:${options.key}` } : {}),
      extra
    })
    const record: TaskRecord = {
      id: envelope.id,
      subject,
      tenant,
      status: "queued",
      attempt: 0,
      updatedAt: now,
      enqueuedAt: now,
      ...(delayed ? { runAt } : {})
    }
    const headers = Envelope.toHeaders(envelope)
    yield* Payload.checkSize(subject, data, headers, nats.server.maxPayload)
    // the status record and the key index go out beside the message, not after it
    const [ack, , owner] = yield* Effect.all([
      Publish.publish(nats.jetstream, {
        subject: delayed ? names.delayedSubject(subject) : names.taskSubject(subject, priority),
        data,
        headers,
        msgId: envelope.dedupKey ?? envelope.id
      }),
      results.create(record).pipe(Effect.ignore),
      options.key !== undefined
        ? results.reserve(keyIndex(subject, options.key), envelope.id)
        : Effect.succeed(envelope.id)
    ], { concurrency: "unbounded" }).pipe(
      // not stored: free the key, or the next enqueue with it would point at a task that never was
      Effect.tapError(() =>
        options.key !== undefined ? Effect.ignore(results.unreserve(keyIndex(subject, options.key), envelope.id)) : Effect.void
      )
    )
    // Within the dedup window JetStream dropped the copy; after it, the worker finds the key done.
    if (ack.duplicate || owner !== envelope.id) return { id: owner, duplicate: true }
    if (Option.isSome(audit)) {
      yield* audit.value.record({
        messageId: envelope.id,
        subject,
        actor: Subjects.domainOf(subject),
        pool: "",
        tenant,
        correlationId: envelope.correlationId,
        attempt: 0,
        step: "enqueued",
        at: now
      }).pipe(Effect.ignore)
    }
    return { id: envelope.id, duplicate: false }
  })

  const status = (taskId: string) =>
    Envelope.validateTaskId(taskId).pipe(
      Effect.andThen(results.get(taskId)),
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail(new TaskNotFound({ taskId })),
        onSome: Effect.succeed
      }))
    )

  return Client.of({
    enqueue: (task, input, options = {}) =>
      Payload.encode(task.input, task.subject, input, nats.server.maxPayload).pipe(
        Effect.flatMap((data) => send(task.subject, data, options, task.priority)),
        Effect.map(({ id, duplicate }) => ({ id, task, duplicate }))
      ),
    enqueueJson: (subject, json, options = {}) =>
      Subjects.validateSubject(subject, names.prefix).pipe(
        Effect.andThen(Payload.encode(Schema.Json, subject, json as Schema.Json, nats.server.maxPayload)),
        Effect.flatMap((data) => send(subject, data, options, undefined))
      ),
    status,
    wait: (taskId, timeout) => Effect.andThen(Envelope.validateTaskId(taskId), results.awaitFinal(taskId, timeout)),
    result: (handle, timeout) =>
      Effect.gen(function*() {
        const record = yield* results.awaitFinal(handle.id, timeout)
        if (record.status !== "succeeded") {
          return yield* new TaskFailed({ taskId: handle.id, status: record.status, record })
        }
        const output = Payload.fromJson(handle.task.output, record.output) as Exit.Exit<
          Task.Output<typeof handle.task>,
          Schema.SchemaError
        >
        return yield* Exit.isSuccess(output)
          ? Effect.succeed(output.value)
          : Effect.fail(new OutputMismatch({ taskId: handle.id, reason: String((Cause.squash(output.cause) as Error).message) }))
      }),
    cancel: (taskId) => Effect.andThen(Envelope.validateTaskId(taskId), results.requestCancel(taskId))
  })
})

/** @category layers @since 0.1.0 */
export const layer: Layer.Layer<Client, never, Nats | MsgsysConfig | Results> = Layer.effect(Client, make)
