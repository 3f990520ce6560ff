/**
 * The client side of tasks: enqueue with checked types (one or many at once), read a task's
 * status, wait for its result, cancel it. Effect-first; `PromiseClient` wraps the same calls for
 * code without Effect.
 *
 * An enqueue is one JetStream publish, acknowledged by the stream (guarantee 1), deduplicated by
 * `Nats-Msg-Id` on retries. Nothing else is written on the way: the worker records "enqueued" in
 * the audit from the message's creation time, and the status record appears when a worker takes
 * the task. Until then the client that enqueued it answers "queued" from the stream's ack (it
 * remembers its recent tasks); `track: true` writes a "queued" record so every client sees it.
 * @since 0.1.0
 */
import { Cause, Clock, Context, Data, Duration, Effect, Exit, Layer, Option, Schema, Tracer } from "effect"
import type { BrokerError } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Publish from "../broker/Publish.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as Envelope from "../envelope/Envelope.ts"
import type * as Event from "../event/Event.ts"
import * as Payload from "../envelope/Payload.ts"
import { CurrentMessage } from "../trace/CurrentMessage.ts"
import * as Tracing from "../trace/Tracing.ts"
import { CancelRequests } from "../task/CancelRequests.ts"
import * as EnqueueKeys from "../task/EnqueueKeys.ts"
import { Results, type ResultTimeout, TaskNotFound } from "../task/Results.ts"
import type * as Task from "../task/Task.ts"
import * as TaskHeaders from "../task/TaskHeaders.ts"
import type { TaskRecord } from "../task/TaskRecord.ts"

/** @category models @since 0.1.0 */
export interface EnqueueOptions {
  /** Default "default". */
  readonly tenant?: string
  readonly correlationId?: string
  /**
   * The message that caused this one: its correlation, causation, tenant and trace are inherited.
   * Inside a handler the message it runs for is the parent by default, tenant excepted: the
   * trace, correlation and causation follow it without this option.
   */
  readonly parent?: Envelope.Envelope
  /**
   * W3C trace context of the caller (an incoming HTTP request's `traceparent` header, say): the
   * message joins that trace. Default: the parent's trace; with tracing on, the publish span's
   * (a child of the fiber's span); else a new trace. A value that is not a W3C `traceparent` is ignored.
   */
  readonly traceparent?: string
  /** W3C `tracestate` that goes with `traceparent`. Default: the parent's. */
  readonly tracestate?: string
  /**
   * Idempotency and dedup key, scoped by tenant and subject: a second enqueue with the same key
   * returns the first task's handle, and the key is recorded done once a run succeeds, so a
   * redelivery or a late duplicate returns the stored outcome instead of running again.
   */
  readonly key?: string
  /** Default: the task's priority, else normal. */
  readonly priority?: Subjects.Priority
  /** Run no earlier than this long from now. */
  readonly delay?: Duration.Input
  /** Run no earlier than this time. */
  readonly runAt?: Date | number
  /**
   * Store the final status and output for `result()` (default: the task's `result`, true). False
   * saves a broker write per task nobody waits for.
   */
  readonly result?: boolean
  /** Write a "queued" status record now, so `status()` answers before a worker takes the task. Default false (delayed tasks always get one). */
  readonly track?: boolean
  /**
   * The task id, for producers that derive it (the scheduler: schedule name and tick time).
   * Default: a new sortable id. It is also the `Nats-Msg-Id` (unless `key` is given), so a second
   * enqueue with the same id within the stream's duplicate window stores nothing new and answers
   * `duplicate: true`; and it is the run's idempotency key unless `key` or the task defines one.
   */
  readonly id?: string
  /**
   * More `Msgsys-*` headers, read by the handler in `envelope.extra`. Names without the prefix,
   * and the headers msgsys sets itself (envelope fields, run-at, priority, idempotency key, result,
   * pipeline), are dropped: use the options for those.
   */
  readonly headers?: Readonly<Record<string, string>>
}

/** Options of `enqueueMany`: the same for every task, except an idempotency key per input. @category models @since 0.1.0 */
export interface EnqueueManyOptions extends Omit<EnqueueOptions, "key" | "id"> {
  readonly key?: (input: any, index: number) => string
}

/** @category models @since 0.1.0 */
export interface PublishOptions {
  /** The event id: publishing the same id again within two minutes stores it once. Default: a new id. */
  readonly id?: string
  /** Default "default" (or the parent's). */
  readonly tenant?: string
  readonly correlationId?: string
  /**
   * The message that caused this event: correlation, causation, tenant and trace follow it. Inside
   * a handler the message it runs for is the parent by default, tenant excepted.
   */
  readonly parent?: Envelope.Envelope
  /**
   * More `Msgsys-*` headers (e.g. `Msgsys-Source`), read by handlers in `envelope.extra`. Names
   * without the prefix, and the envelope's own headers, are dropped: use the options for those.
   */
  readonly headers?: Readonly<Record<string, string>>
  /**
   * W3C trace context of the caller (an incoming HTTP request's `traceparent` header, say): the
   * message joins that trace. Default: the parent's trace; with tracing on, the publish span's
   * (a child of the fiber's span); else a new trace. A value that is not a W3C `traceparent` is ignored.
   */
  readonly traceparent?: string
  /** W3C `tracestate` that goes with `traceparent`. Default: the parent's. */
  readonly tracestate?: string
}

/** Options of `publishJson`: those of `publish`, and the payload's schema version. @category models @since 0.1.0 */
export interface PublishJsonOptions extends PublishOptions {
  /** `Msgsys-Version` of the payload. Default 1. */
  readonly version?: number
}

/** Options of `publishMany`: the same for every event, except an id per payload. @category models @since 0.1.0 */
export interface PublishManyOptions extends Omit<PublishOptions, "id"> {
  readonly id?: (payload: any, index: number) => string
}

/** An event the stream stored. @category models @since 0.1.0 */
export interface Published {
  readonly id: string
  /** The stream sequence (replay a group from it with `msgsys events replay`). */
  readonly sequence: number
  /** The id was seen within the dedup window: nothing new was stored. */
  readonly duplicate: boolean
}

/** A task that was enqueued. @category models @since 0.1.0 */
export interface Handle<T extends Task.Any = Task.Any> {
  readonly id: string
  readonly task: T
  /** True when an earlier enqueue with the same key already created this task. */
  readonly duplicate: boolean
  /** False when the task stores no result (`result: false`): `result()` fails at once. */
  readonly result?: boolean
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

/** The task was enqueued with `result: false`: nothing will be stored to wait for. @category errors @since 0.1.0 */
export class NoResultStored extends Data.TaggedError("NoResultStored")<{ readonly taskId: string; readonly subject: string }> {
  override get message() {
    return `task ${this.taskId} (${this.subject}) stores no result (result: false): wait on its status with ` +
      "`client.wait` only for failures, or enqueue it with `result: true`"
  }
}

/** @category models @since 0.1.0 */
export type EnqueueError =
  | Payload.PayloadEncodeError
  | Payload.PayloadTooLarge
  | Publish.NoStreamForSubject
  | BrokerError
  | Envelope.InvalidTenant
  | Envelope.InvalidTaskId
  | Subjects.InvalidSubject

/**
 * Some tasks of an `enqueueMany` could not be enqueued: `handles[i]` is the task made from
 * `inputs[i]`, or undefined where `errors` says why not. The others ARE enqueued.
 * @category errors @since 0.1.0
 */
export class EnqueueManyFailed extends Data.TaggedError("EnqueueManyFailed")<{
  readonly handles: ReadonlyArray<Handle | undefined>
  readonly errors: ReadonlyArray<{ readonly index: number; readonly error: EnqueueError }>
}> {
  override get message() {
    const first = this.errors[0]
    return `${this.errors.length} of ${this.handles.length} tasks were not enqueued (the others were)` +
      (first ? `; the first, #${first.index}: ${first.error.message}` : "")
  }
}

/** @category services @since 0.1.0 */
export class Client extends Context.Service<Client, {
  readonly enqueue: <T extends Task.Any>(
    task: T,
    input: Task.Input<T>,
    options?: EnqueueOptions
  ) => Effect.Effect<Handle<T>, EnqueueError>
  /**
   * Enqueues many tasks in one call: the publishes are pipelined (all in flight at once), each
   * acknowledged by the stream. One handle per input, in order.
   */
  readonly enqueueMany: <T extends Task.Any>(
    task: T,
    inputs: ReadonlyArray<Task.Input<T>>,
    options?: EnqueueManyOptions
  ) => Effect.Effect<ReadonlyArray<Handle<T>>, EnqueueError | EnqueueManyFailed>
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
  ) => Effect.Effect<Task.Output<T>, TaskFailed | OutputMismatch | NoResultStored | ResultTimeout | BrokerError>
  /** A queued task is skipped when it arrives; a running one is interrupted. */
  readonly cancel: (taskId: string) => Effect.Effect<void, BrokerError | Envelope.InvalidTaskId>
  /** Publishes an event to every group that subscribes to it; waits for the stream's ack. */
  readonly publish: <E extends Event.Any>(
    event: E,
    payload: Event.Payload<E>,
    options?: PublishOptions
  ) => Effect.Effect<Published, EnqueueError | Envelope.InvalidTaskId>
  /** Publishes many events of one kind in one call, pipelined; one answer per payload, in order. */
  readonly publishMany: <E extends Event.Any>(
    event: E,
    payloads: ReadonlyArray<Event.Payload<E>>,
    options?: PublishManyOptions
  ) => Effect.Effect<ReadonlyArray<Published>, EnqueueError | Envelope.InvalidTaskId | EnqueueManyFailed>
  /**
   * Publishes a JSON value as an event on `subject`, without a local schema (the groups' handlers
   * decode it); its domain's stream must exist (a worker of a group, or `msgsys events publish`,
   * declares it).
   */
  readonly publishJson: (
    subject: string,
    json: unknown,
    options?: PublishJsonOptions
  ) => Effect.Effect<Published, EnqueueError | Envelope.InvalidTaskId | Envelope.InvalidVersion>
}>()("msgsys/Client") {}

/** A failure that says the message was certainly not stored (so its key may be freed). */
const notStored = (e: Publish.PublishError) =>
  e._tag === "NoStreamForSubject" || !/no ack from the stream|closing/.test(e.reason)

const rememberedTasks = 100_000

/** Headers only the client sets from its options: `headers` cannot smuggle them in. */
const reservedHeaders = new Set(
  [TaskHeaders.RunAt, TaskHeaders.Priority, TaskHeaders.IdempotencyKey, TaskHeaders.Result, TaskHeaders.Pipeline].map((h) =>
    h.toLowerCase()
  )
)

/** The caller's extra headers that may travel: `Msgsys-*`, none msgsys sets from options. */
const extraHeaders = (headers: Readonly<Record<string, string>>): Record<string, string> => {
  const extra: Record<string, string> = {}
  for (const name in headers) {
    const lower = name.toLowerCase()
    if (lower.startsWith("msgsys-") && !reservedHeaders.has(lower)) extra[name] = headers[name]!
  }
  return extra
}

/**
 * Where a send comes from: the message it follows (the `parent` option, else the message the
 * handler runs for), and, with tracing on, the `traceparent` of its publish span.
 */
interface Origin {
  readonly parent: Envelope.Envelope | undefined
  /** The caller's `traceparent`, or the publish span's (tracing on); undefined: the parent's trace or a new one. */
  readonly traceparent: string | undefined
  readonly tracestate: string | undefined
  readonly span: Tracer.Span | undefined
}

/** What a send's options say about where it comes from. */
interface OriginOptions {
  readonly parent?: Envelope.Envelope | undefined
  readonly traceparent?: string | undefined
  readonly tracestate?: string | undefined
}

/** The envelope options an origin gives: its parent, and the publish span's trace context when tracing is on. */
const originOptions = (origin: Origin): Envelope.MakeOptions => {
  const { parent, traceparent, tracestate } = origin
  if (traceparent === undefined) return parent !== undefined ? { parent } : {}
  return {
    ...(parent !== undefined ? { parent } : {}),
    traceparent,
    ...(tracestate !== undefined ? { tracestate } : {})
  }
}

/** What one enqueue sends. */
interface Prepared {
  readonly subject: string
  readonly publishSubject: string
  readonly data: Uint8Array
  readonly envelope: Envelope.Envelope
  readonly headers: Record<string, string>
  readonly msgId: string
  readonly key: string | undefined
  readonly tenant: string
  readonly record: TaskRecord | undefined
  readonly result: boolean
}

/** What a client sends through and reads from. @category models @since 0.1.0 */
export interface Transport {
  readonly publisher: Publish.Publisher
  /** The largest message the broker accepts, headers included. */
  readonly maxPayload: () => number
  readonly results: Results["Service"]
  readonly keys: EnqueueKeys.EnqueueKeys["Service"]
  readonly cancels: CancelRequests["Service"]
  readonly names: Subjects.Names
}

/**
 * A client on the given transport: NATS (`make`) or the in-memory broker of `msgsys/testing`.
 * @category constructors @since 0.1.0
 */
export const makeWith = (transport: Transport) => Effect.gen(function*() {
  const { publisher, maxPayload, results, keys, cancels, names } = transport
  const clock = yield* Clock.Clock
  // the tracer of the layer that made the client: its sends are spans wherever it is called from
  const ownTracer = Tracing.tracerOf(yield* Effect.context<never>())

  // Tasks this client enqueued, acknowledged by the stream: "queued" until a worker writes a
  // status. Bounded: the oldest are forgotten first (by then a worker has long written one).
  const enqueued = new Map<string, TaskRecord>()
  const remember = (p: Prepared, id: string) => {
    if (p.record !== undefined) return
    enqueued.set(id, {
      id,
      subject: p.subject,
      tenant: p.tenant,
      status: "queued",
      attempt: 0,
      updatedAt: p.envelope.createdAt,
      enqueuedAt: p.envelope.createdAt
    })
    if (enqueued.size > rememberedTasks) enqueued.delete(enqueued.keys().next().value!)
  }

  /**
   * Runs a send with its origin. Outside a handler and with tracing off this reads two references
   * of the fiber and makes nothing; with a tracer installed, the send is a `publish` span (a child
   * of the fiber's span, else of the parent's trace) whose ids the messages carry.
   */
  const traced = <A, E>(
    subject: string,
    options: OriginOptions,
    send: (origin: Origin) => Effect.Effect<A, E>
  ): Effect.Effect<A, E> =>
    Effect.withFiber((fiber) => {
      const current = fiber.getRef(CurrentMessage)
      const parent = options.parent ?? current
      const caller = options.traceparent !== undefined && Envelope.isTraceparent(options.traceparent) ? options.traceparent : undefined
      const tracestate = options.tracestate ?? (caller === undefined ? parent?.tracestate : undefined)
      const fiberTracer = Tracing.tracerOf(fiber.context)
      const tracer = fiberTracer ?? ownTracer
      if (tracer === undefined) return send({ parent, traceparent: caller, tracestate, span: undefined })
      // what the caller names wins (a traceparent, a parent); else the fiber's span (a handler's
      // run, the program's own), else the trace of the message the handler runs for
      const explicit = caller !== undefined
        ? Tracing.parentOf(caller)
        : options.parent !== undefined && options.parent !== current
        ? Tracing.parentOf(options.parent.traceparent)
        : undefined
      const inSpan = Option.isSome(Context.getOption(fiber.context, Tracer.ParentSpan))
      const spanParent = explicit ?? (inSpan ? undefined : Tracing.parentOf(current?.traceparent))
      const spanned = Effect.useSpan(
        `publish ${subject}`,
        {
          kind: "producer",
          ...(spanParent !== undefined ? { parent: spanParent } : {}),
          attributes: { "messaging.system": "msgsys", "messaging.operation.type": "send", "messaging.destination.name": subject }
        },
        (span) => send({ parent, traceparent: Tracing.traceparentOf(span) ?? caller, tracestate, span })
      )
      return fiberTracer === undefined ? Effect.withTracer(spanned, tracer) : spanned
    })

  const prepare = (
    subject: string,
    data: Uint8Array,
    options: EnqueueOptions,
    task: Pick<Task.Any, "priority" | "result"> | undefined,
    origin: Origin
  ): Effect.Effect<Prepared, Envelope.InvalidTenant | Envelope.InvalidTaskId | Payload.PayloadTooLarge> =>
    Effect.suspend((): Effect.Effect<Prepared, Envelope.InvalidTenant | Envelope.InvalidTaskId | Payload.PayloadTooLarge> => {
      const now = clock.currentTimeMillisUnsafe()
      const tenant = options.tenant ?? options.parent?.tenant ?? Envelope.defaultTenant
      if (!Envelope.isValidTenant(tenant)) return Effect.fail(new Envelope.InvalidTenant({ tenant }))
      if (options.id !== undefined && !Envelope.isTaskId(options.id)) return Effect.fail(new Envelope.InvalidTaskId({ taskId: options.id }))
      const priority = options.priority ?? task?.priority ?? "normal"
      const runAt = options.runAt !== undefined
        ? (typeof options.runAt === "number" ? options.runAt : options.runAt.getTime())
        : options.delay !== undefined
        ? now + Duration.toMillis(Duration.fromInputUnsafe(options.delay))
        : undefined
      const delayed = runAt !== undefined && runAt > now
      const result = options.result ?? task?.result ?? true
      const extra: Record<string, string> = options.headers !== undefined ? extraHeaders(options.headers) : {}
      if (options.key !== undefined) extra[TaskHeaders.IdempotencyKey] = options.key
      if (!result) extra[TaskHeaders.Result] = "off"
      if (delayed) {
        extra[TaskHeaders.RunAt] = String(runAt)
        extra[TaskHeaders.Priority] = priority
      }
      const id = options.id ?? Envelope.newId(now)
      origin.span?.attribute("messaging.message.id", id)
      const envelope = Envelope.makeUnsafe(subject, now, {
        id,
        tenant,
        ...(options.correlationId !== undefined ? { correlationId: options.correlationId } : {}),
        ...originOptions(origin),
        ...(options.key !== undefined ? { dedupKey: `key:${tenant}:${subject}:${options.key}` } : {}),
        extra
      })
      const record: TaskRecord | undefined = delayed || options.track
        ? {
          id,
          subject,
          tenant,
          status: "queued",
          attempt: 0,
          updatedAt: now,
          enqueuedAt: now,
          ...(delayed ? { runAt } : {})
        }
        : undefined
      // a delayed task is released later: it carries its creation time with it
      const headers = Envelope.toHeaders(envelope, { compact: !delayed })
      // the server counts headers with the body against max_payload
      return Effect.as(Payload.checkSize(subject, data, { ...headers, "Nats-Msg-Id": envelope.dedupKey ?? envelope.id }, maxPayload()), {
        subject,
        publishSubject: delayed ? names.delayedSubject(subject) : names.taskSubject(subject, priority),
        data,
        envelope,
        headers,
        msgId: envelope.dedupKey ?? envelope.id,
        key: options.key,
        tenant,
        record,
        result
      })
    })

  const publish = (p: Prepared, id: string) =>
    Publish.publish(publisher, {
      subject: p.publishSubject,
      data: p.data,
      headers: id === p.envelope.id ? p.headers : { ...p.headers, [Envelope.Headers.Id]: id },
      msgId: p.msgId
    })

  const track = (p: Prepared, id: string) =>
    p.record === undefined ? Effect.sync(() => remember(p, id)) : Effect.ignore(results.create({ ...p.record, id }))

  /**
   * With a key: reserve it first, then publish, so an id is returned only once its message is
   * stored (issue: a key pointing at a task that never was). A reservation whose publish was not
   * confirmed is completed by the next enqueue with the key — same id, same dedup id, so the
   * stream stores it once.
   */
  const sendKeyed = (p: Prepared, key: string) =>
    Effect.gen(function*() {
      const index = EnqueueKeys.indexOf(p.tenant, p.subject, key)
      const held = yield* keys.reserve(index, p.envelope.id)
      if (held.taskId !== p.envelope.id && held.confirmed) return { id: held.taskId, duplicate: true }
      const ack = yield* publish(p, held.taskId).pipe(
        Effect.tapError((e) =>
          // free the key only when this enqueue reserved it and its message was certainly not stored
          held.taskId === p.envelope.id && notStored(e) ? Effect.ignore(keys.unreserve(index, held.taskId)) : Effect.void
        )
      )
      yield* Effect.ignore(keys.confirm(index, held.taskId))
      yield* track(p, held.taskId)
      return { id: held.taskId, duplicate: ack.duplicate || held.taskId !== p.envelope.id }
    })

  const send = (p: Prepared): Effect.Effect<{ readonly id: string; readonly duplicate: boolean }, EnqueueError> =>
    p.key !== undefined
      ? sendKeyed(p, p.key)
      : Effect.flatMap(publish(p, p.envelope.id), (ack) =>
        Effect.as(track(p, p.envelope.id), { id: p.envelope.id, duplicate: ack.duplicate }))


  const enqueueMany = <T extends Task.Any>(task: T, inputs: ReadonlyArray<Task.Input<T>>, options: EnqueueManyOptions = {}) =>
    traced(task.subject, options, (traceOrigin) => Effect.gen(function*() {
      const { key, ...shared } = options
      traceOrigin.span?.attribute("messaging.batch.message_count", inputs.length)
      // one span for the call: the messages' ids are not each an attribute of it
      const origin: Origin = { ...traceOrigin, span: undefined }
      const handles: Array<Handle<T> | undefined> = new Array(inputs.length)
      const errors: Array<{ readonly index: number; readonly error: EnqueueError }> = []
      const keyed: Array<readonly [number, Prepared]> = []
      const plain: Array<readonly [number, Prepared]> = []
      for (let i = 0; i < inputs.length; i++) {
        const prepared = yield* Payload.encode(task.input, task.subject, inputs[i], maxPayload()).pipe(
          Effect.flatMap((data) => prepare(task.subject, data, key ? { ...shared, key: key(inputs[i], i) } : shared, task, origin)),
          Effect.result
        )
        if (prepared._tag === "Failure") errors.push({ index: i, error: prepared.failure })
        else (prepared.success.key !== undefined ? keyed : plain).push([i, prepared.success])
      }
      // the plain ones straight onto the pipeline, no Effect per message
      yield* Effect.callback<void>((resume) => {
        let left = plain.length
        if (left === 0) return resume(Effect.void)
        for (const [i, p] of plain) {
          publisher.submit({ subject: p.publishSubject, data: p.data, headers: p.headers, msgId: p.msgId }, (o) => {
            if (o.ok) {
              handles[i] = { id: p.envelope.id, task, duplicate: o.ack.duplicate, result: p.result }
              remember(p, p.envelope.id)
            }
            else errors.push({ index: i, error: o.error })
            if (--left === 0) resume(Effect.void)
          })
        }
      })
      yield* Effect.forEach(plain, ([i, p]) => handles[i] && p.record !== undefined ? track(p, p.envelope.id) : Effect.void, {
        concurrency: 64,
        discard: true
      })
      yield* Effect.forEach(keyed, ([i, p]) =>
        Effect.result(sendKeyed(p, p.key!)).pipe(Effect.map((r) => {
          if (r._tag === "Success") handles[i] = { ...r.success, task, result: p.result }
          else errors.push({ index: i, error: r.failure })
        })), { concurrency: 64, discard: true })
      if (errors.length > 0) {
        return yield* new EnqueueManyFailed({ handles, errors: errors.sort((a, b) => a.index - b.index) })
      }
      return handles as ReadonlyArray<Handle<T>>
    }))

  const status = (taskId: string) =>
    Effect.andThen(Envelope.validateTaskId(taskId), results.get(taskId)).pipe(
      Effect.flatMap(Option.match({
        onNone: () => {
          const queued = enqueued.get(taskId)
          return queued ? Effect.succeed(queued) : Effect.fail(new TaskNotFound({ taskId }))
        },
        onSome: (record) => {
          enqueued.delete(taskId)
          return Effect.succeed(record)
        }
      }))
    )

  /** An event's message: its envelope in compact headers, its id as the dedup id. */
  const prepareEvent = (event: Event.Any, payload: unknown, options: PublishOptions, origin: Origin) =>
    Effect.gen(function*() {
      const data = yield* Payload.encode(event.payload, event.subject, payload, maxPayload())
      const now = clock.currentTimeMillisUnsafe()
      const tenant = options.tenant ?? options.parent?.tenant ?? Envelope.defaultTenant
      if (!Envelope.isValidTenant(tenant)) return yield* new Envelope.InvalidTenant({ tenant })
      if (options.id !== undefined) yield* Envelope.validateTaskId(options.id)
      const envelope = Envelope.makeUnsafe(event.subject, now, {
        ...(options.id !== undefined ? { id: options.id } : {}),
        tenant,
        version: event.version,
        ...(options.headers !== undefined ? { extra: extraHeaders(options.headers) } : {}),
        ...(options.correlationId !== undefined ? { correlationId: options.correlationId } : {}),
        ...originOptions(origin)
      })
      origin.span?.attribute("messaging.message.id", envelope.id)
      const headers = Envelope.toHeaders(envelope, { compact: true })
      yield* Payload.checkSize(event.subject, data, { ...headers, "Nats-Msg-Id": envelope.id }, maxPayload())
      return { subject: event.subject, data, headers, msgId: envelope.id }
    })

  const publishEvent = (event: Event.Any, payload: unknown, options: PublishOptions = {}) =>
    traced(event.subject, options, (origin) =>
      Effect.flatMap(prepareEvent(event, payload, options, origin), (m) =>
        Effect.map(Publish.publish(publisher, m), (ack): Published => ({ id: m.msgId, sequence: ack.sequence, duplicate: ack.duplicate }))))

  const publishMany = (event: Event.Any, payloads: ReadonlyArray<unknown>, options: PublishManyOptions = {}) =>
    traced(event.subject, options, (traceOrigin) => Effect.gen(function*() {
      const { id, ...shared } = options
      traceOrigin.span?.attribute("messaging.batch.message_count", payloads.length)
      const origin: Origin = { ...traceOrigin, span: undefined }
      const out: Array<Published | undefined> = new Array(payloads.length)
      const errors: Array<{ readonly index: number; readonly error: EnqueueError }> = []
      const messages: Array<readonly [number, Publish.Message & { readonly msgId: string }]> = []
      for (let i = 0; i < payloads.length; i++) {
        const m = yield* Effect.result(prepareEvent(event, payloads[i], id ? { ...shared, id: id(payloads[i], i) } : shared, origin))
        if (m._tag === "Failure") errors.push({ index: i, error: m.failure as EnqueueError })
        else messages.push([i, m.success])
      }
      yield* Effect.callback<void>((resume) => {
        let left = messages.length
        if (left === 0) return resume(Effect.void)
        for (const [i, m] of messages) {
          publisher.submit(m, (o) => {
            if (o.ok) out[i] = { id: m.msgId, sequence: o.ack.sequence, duplicate: o.ack.duplicate }
            else errors.push({ index: i, error: o.error })
            if (--left === 0) resume(Effect.void)
          })
        }
      })
      if (errors.length > 0) {
        return yield* new EnqueueManyFailed({ handles: out as never, errors: errors.sort((a, b) => a.index - b.index) })
      }
      return out as ReadonlyArray<Published>
    }))

  const publishJson = (subject: string, json: unknown, options: PublishJsonOptions = {}) =>
    Subjects.validateSubject(subject, names.prefix, "event").pipe(
      Effect.andThen(Envelope.validateVersion(options.version ?? 1)),
      Effect.flatMap((version) =>
        publishEvent({ _tag: "Event", subject, payload: Schema.Json as unknown as Task.Codec, version, retention: undefined }, json, options)
      )
    )

  return Client.of({
    publish: publishEvent,
    publishMany,
    publishJson,
    enqueue: (task, input, options = {}) =>
      traced(task.subject, options, (origin) =>
        Payload.encode(task.input, task.subject, input, maxPayload()).pipe(
          Effect.flatMap((data) => prepare(task.subject, data, options, task, origin)),
          Effect.flatMap((p) => Effect.map(send(p), ({ id, duplicate }) => ({ id, task, duplicate, result: p.result })))
        )),
    enqueueMany,
    enqueueJson: (subject, json, options = {}) =>
      traced(subject, options, (origin) =>
        Subjects.validateSubject(subject, names.prefix).pipe(
          Effect.andThen(Payload.encode(Schema.Json, subject, json as Schema.Json, maxPayload())),
          Effect.flatMap((data) => prepare(subject, data, options, undefined, origin)),
          Effect.flatMap(send)
        )),
    status,
    wait: (taskId, timeout) => Effect.andThen(Envelope.validateTaskId(taskId), results.awaitFinal(taskId, timeout)),
    result: (handle, timeout) =>
      Effect.gen(function*() {
        if (handle.result === false) return yield* new NoResultStored({ taskId: handle.id, subject: handle.task.subject })
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
    cancel: (taskId) => Effect.andThen(Envelope.validateTaskId(taskId), cancels.request(taskId))
  })
})

/** @category constructors @since 0.1.0 */
export const make = Effect.gen(function*() {
  const config = yield* MsgsysConfig
  const nats = yield* Nats
  return yield* makeWith({
    publisher: nats.publisher,
    maxPayload: () => nats.server.maxPayload,
    results: yield* Results,
    keys: yield* EnqueueKeys.EnqueueKeys,
    cancels: yield* CancelRequests,
    names: Subjects.make(config.streamPrefix)
  })
})

/** @category layers @since 0.1.0 */
export const layer: Layer.Layer<Client, never, Nats | MsgsysConfig | Results | EnqueueKeys.EnqueueKeys | CancelRequests> =
  Layer.effect(Client, make)
