/**
 * A task-queue backend in the shape of OmniQ's NATS storage (seed 002), built from msgsys parts.
 * The seed's four storage roles, and what holds each here:
 *
 * | role | OmniQ on NATS | here |
 * | --- | --- | --- |
 * | task queue with priority | a work-queue stream | the `omniq` actor's work-queue stream: `omniq.run` with high, normal and low consumers |
 * | results with TTL (7 days) | KV `omniq_results` | msgsys's results bucket (`MSGSYS_RESULT_TTL`, 7 days by default) |
 * | task lifecycle events, 30 days / 10M | stream `OMNIQ_EVENTS` | the `omniq-events` domain's stream, retention declared on its events; the `omniq-history` group indexes them by task in SQLite |
 * | schedules with pause and "ready" listing | KV `omniq_schedules` | msgsys schedules (KV `<prefix>_schedules`) and its scheduler replicas; `ready` lists what is due |
 *
 * A task names a function of the registry and its arguments (`func`, `args`), as in OmniQ.
 */
import { Database } from "bun:sqlite"
import { Clock, Context, Duration, Effect, Layer, Option, Schema } from "effect"
import { Actor, App, Client, Event, Retry, Schedules, Subscriber, Task } from "msgsys"
import type { Envelope } from "msgsys"
import { DataDir } from "../shared/DataDir.ts"

// ---------------------------------------------------------------------------------------------
// the functions a task may name

/** The function is not in the registry: no retry can help. */
export class UnknownFunction extends Schema.TaggedError<UnknownFunction>()("UnknownFunction", {
  func: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message() {
    return `no function ${JSON.stringify(this.func)} in the registry (known: ${this.known.join(", ")}): enqueue one of those`
  }
}

/** The function failed; retried by the actor's policy. */
export class FunctionFailed extends Schema.TaggedError<FunctionFailed>()("FunctionFailed", {
  func: Schema.String,
  reason: Schema.String
}) {}

type Json = typeof Schema.Json.Type
type Fn = (args: ReadonlyArray<Json>, attempt: number) => Json | Promise<Json>

/** The registry: small real functions (arithmetic, text, a CPU-bound one, one that fails once). */
export const registry: Readonly<Record<string, Fn>> = {
  add: (args) => args.reduce<number>((a, b) => a + Number(b), 0),
  multiply: (args) => args.reduce<number>((a, b) => a * Number(b), 1),
  fibonacci: ([n]) => {
    let [a, b] = [0, 1]
    for (let i = 0; i < Number(n); i++) [a, b] = [b, a + b]
    return a
  },
  word_count: ([text]) => {
    const counts: Record<string, number> = {}
    for (const w of String(text).toLowerCase().match(/[a-z']+/g) ?? []) counts[w] = (counts[w] ?? 0) + 1
    return counts
  },
  slugify: ([text]) => String(text).toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, ""),
  /** Waits `ms` (at most 10 s): a stand-in for a job that takes a while. */
  sleep: ([ms]) => new Promise((resolve) => setTimeout(() => resolve(Number(ms)), Math.min(10_000, Number(ms)))),
  /** Fails on its first attempt: shows a retry in the lifecycle. */
  flaky: ([value], attempt) => {
    if (attempt === 1) throw new Error("transient failure on the first attempt")
    return value ?? null
  }
}

// ---------------------------------------------------------------------------------------------
// the queue

export const Run = Task.make("omniq.run", {
  input: { func: Schema.String, args: Schema.Array(Schema.Json), queue: Schema.optional(Schema.String) },
  output: { value: Schema.Json },
  error: Schema.Union([UnknownFunction, FunctionFailed]),
  permanent: ["UnknownFunction"]
})

/** The queue's actor (tests run it with one slot, to watch the priority order). */
export const queueActor = (concurrency = 4) =>
  Actor.make("omniq", {
    protocol: [Run],
    pool: "fast",
    concurrency,
    timeout: "1 minute",
    retry: Retry.exponential({ base: "100 millis", maxAttempts: 3, cap: "5 seconds" })
  })

export const Queue = queueActor()

// ---------------------------------------------------------------------------------------------
// lifecycle events: kept 30 days, at most 10 million, like OMNIQ_EVENTS

const retention = { maxAge: "30 days", maxMessages: 10_000_000 } as const

const lifecycle = {
  taskId: Schema.String,
  func: Schema.String,
  queue: Schema.String,
  attempt: Schema.Int,
  /** The error of a failed attempt. */
  error: Schema.optional(Schema.String)
}

export const Enqueued = Event.make("omniq-events.enqueued", { payload: lifecycle, retention })
export const Started = Event.make("omniq-events.started", { payload: lifecycle, retention })
export const Completed = Event.make("omniq-events.completed", { payload: lifecycle, retention })
export const Failed = Event.make("omniq-events.failed", { payload: lifecycle, retention })
export const lifecycleEvents = [Enqueued, Started, Completed, Failed] as const

export const QueueLive = Queue.toLayer(Effect.gen(function*() {
  const client = yield* Client.Client
  return Queue.of({
    "omniq.run": ({ input, taskId, attempt, envelope }) =>
      Effect.gen(function*() {
        const info = { taskId, func: input.func, queue: input.queue ?? "default", attempt }
        const emit = (event: (typeof lifecycleEvents)[number], suffix: string, extra: { error?: string } = {}) =>
          Effect.orDie(client.publish(event, { ...info, ...extra }, { parent: envelope, id: `${taskId}.${suffix}` }))
        const fn = registry[input.func]
        if (fn === undefined) {
          const error = new UnknownFunction({ func: input.func, known: Object.keys(registry) })
          yield* emit(Failed, `failed.${attempt}`, { error: error.message })
          return yield* error
        }
        yield* emit(Started, `started.${attempt}`)
        const value = yield* Effect.tryPromise({
          try: async () => fn(input.args, attempt),
          catch: (e) => new FunctionFailed({ func: input.func, reason: e instanceof Error ? e.message : String(e) })
        }).pipe(Effect.tapError((e) => emit(Failed, `failed.${attempt}`, { error: e.reason })))
        yield* emit(Completed, "completed")
        return { value }
      })
  })
}))

// ---------------------------------------------------------------------------------------------
// the event log: every lifecycle event, by task, for `events(taskId)`

export interface LifecycleEvent {
  readonly eventId: string
  readonly taskId: string
  readonly type: string
  readonly attempt: number
  readonly at: number
  readonly error: string | null
}

export class EventLog extends Context.Service<EventLog, {
  readonly record: (e: LifecycleEvent) => Effect.Effect<void>
  readonly forTask: (taskId: string) => Effect.Effect<ReadonlyArray<LifecycleEvent>>
}>()("actors/taskq/EventLog") {}

export const EventLogLive: Layer.Layer<EventLog, never, DataDir> = Layer.effect(
  EventLog,
  Effect.gen(function*() {
    const path = (yield* DataDir).file("omniq", "events.sqlite")
    const db = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const db = new Database(path, { create: true })
        db.exec(`PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;
          CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, task_id TEXT NOT NULL, type TEXT NOT NULL,
            attempt INTEGER NOT NULL, at INTEGER NOT NULL, error TEXT);
          CREATE INDEX IF NOT EXISTS events_task ON events (task_id, at)`)
        return db
      }),
      (db) => Effect.sync(() => db.close())
    )
    const insert = db.prepare("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)")
    const select = db.prepare<any, [string]>("SELECT * FROM events WHERE task_id = ? ORDER BY at, rowid")
    return EventLog.of({
      record: (e) => Effect.sync(() => void insert.run(e.eventId, e.taskId, e.type, e.attempt, e.at, e.error)),
      forTask: (taskId) =>
        Effect.sync(() =>
          select.all(taskId).map((r) => ({ eventId: r.event_id, taskId: r.task_id, type: r.type, attempt: r.attempt, at: r.at, error: r.error }))
        )
    })
  })
)

export const History = Subscriber.make("omniq-history", {
  events: lifecycleEvents,
  concurrency: 16,
  retry: Retry.exponential({ base: "200 millis", maxAttempts: 5 })
})

export const HistoryLive = History.toLayer(Effect.gen(function*() {
  const log = yield* EventLog
  const record = (r: { input: typeof Enqueued.payload.Type; envelope: Envelope.Envelope }) =>
    log.record({
      eventId: r.envelope.id,
      taskId: r.input.taskId,
      type: r.envelope.type.split(".")[1]!,
      attempt: r.input.attempt,
      at: r.envelope.createdAt,
      error: r.input.error ?? null
    })
  return Object.fromEntries(lifecycleEvents.map((e) => [e.subject, record])) as never
}))

// ---------------------------------------------------------------------------------------------
// the backend: OmniQ's NATSBackend facade over the four roles

/** A task's result as the backend reports it. */
export type Result =
  | { readonly state: "pending" | "running" | "retrying" }
  | { readonly state: "completed"; readonly value: Json }
  | { readonly state: "failed"; readonly error: string }
  | { readonly state: "expired" }

export class Backend extends Context.Service<Backend, {
  /** Enqueues `func(args)` at a priority; records the `enqueued` event. Returns the task id. */
  readonly enqueue: (
    func: string,
    args: ReadonlyArray<Json>,
    options?: { readonly priority?: Task.Priority; readonly queue?: string; readonly tenant?: string }
  ) => Effect.Effect<string, unknown>
  /** The stored result (kept `MSGSYS_RESULT_TTL`); `expired` once the TTL has passed, or for an unknown id. */
  readonly result: (taskId: string) => Effect.Effect<Result, unknown>
  /** Waits for the task's outcome. */
  readonly waitResult: (taskId: string, timeout: Duration.Input) => Effect.Effect<Result, unknown>
  /** The task's lifecycle events, oldest first. */
  readonly events: (taskId: string) => Effect.Effect<ReadonlyArray<LifecycleEvent>>
  /** Adds a schedule that enqueues `func(args)` on a cron expression or every interval. */
  readonly schedule: (
    name: string,
    trigger: { readonly cron: string; readonly timeZone?: string } | { readonly every: Duration.Input },
    func: string,
    args: ReadonlyArray<Json>
  ) => Effect.Effect<void, unknown>
  readonly pause: (name: string) => Effect.Effect<void, unknown>
  readonly resume: (name: string) => Effect.Effect<void, unknown>
  /** Schedules that are not paused and due within `within` (default: now), soonest first. */
  readonly ready: (within?: Duration.Input) => Effect.Effect<ReadonlyArray<{ readonly name: string; readonly next: number }>, unknown>
}>()("actors/taskq/Backend") {}

const resultOf = (record: { readonly status: string; readonly output?: unknown; readonly error?: { readonly message: string } | undefined }): Result => {
  switch (record.status) {
    case "succeeded":
      return { state: "completed", value: (record.output as { value: Json }).value }
    case "dead":
    case "cancelled":
      return { state: "failed", error: record.error?.message ?? record.status }
    case "failed":
      return { state: "retrying" }
    case "running":
      return { state: "running" }
    default:
      return { state: "pending" }
  }
}

export const BackendLive: Layer.Layer<Backend, never, Client.Client | Schedules.Schedules | EventLog> = Layer.effect(
  Backend,
  Effect.gen(function*() {
    const client = yield* Client.Client
    const schedules = yield* Schedules.Schedules
    const log = yield* EventLog
    const result = (taskId: string) =>
      client.status(taskId).pipe(
        Effect.map(resultOf),
        Effect.catchTag("TaskNotFound", () => Effect.succeed<Result>({ state: "expired" }))
      )
    return Backend.of({
      enqueue: (func, args, options = {}) =>
        Effect.gen(function*() {
          const queue = options.queue ?? "default"
          const handle = yield* client.enqueue(Run, { func, args, queue }, {
            ...(options.priority ? { priority: options.priority } : {}),
            ...(options.tenant ? { tenant: options.tenant } : {})
          })
          yield* client.publish(Enqueued, { taskId: handle.id, func, queue, attempt: 0 }, { id: `${handle.id}.enqueued` })
          return handle.id
        }),
      result,
      waitResult: (taskId, timeout) =>
        client.wait(taskId, timeout).pipe(
          Effect.map(resultOf),
          Effect.catchTag("ResultTimeout", () => result(taskId))
        ),
      events: log.forTask,
      schedule: (name, trigger, func, args) =>
        Effect.asVoid(schedules.add({ name, ...trigger, task: Run, payload: { func, args, queue: "scheduled" }, missed: "skip" }, { replace: true })),
      pause: (name) => Effect.asVoid(schedules.pause(name)),
      resume: (name) => Effect.asVoid(schedules.resume(name)),
      ready: (within = 0) =>
        Effect.gen(function*() {
          const views = yield* schedules.list
          // "now" is read after the listing: a tick that fired while it was read moved `next` on by
          // an interval, from a later now than one read before (`msgsys dev --once` failed so, 1 in 25)
          const horizon = (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.fromInputUnsafe(within))
          return views
            .flatMap((v) => Option.isSome(v.next) && v.next.value <= horizon ? [{ name: v.schedule.name, next: v.next.value }] : [])
            .sort((a, b) => a.next - b.next)
        })
    })
  })
)

/** The task queue's actor, event group, events and handlers (which need the data directory). */
export const parts = {
  actors: [Queue],
  subscribers: [History],
  events: lifecycleEvents,
  handlers: Layer.mergeAll(QueueLive, HistoryLive).pipe(Layer.provide(EventLogLive))
}

/** The task queue as an app of its own. */
export const app = (data: Layer.Layer<DataDir>, options: { readonly concurrency?: number } = {}) =>
  App.make({
    actors: [queueActor(options.concurrency)],
    subscribers: parts.subscribers,
    events: parts.events,
    handlers: Layer.provide(parts.handlers, data)
  })
