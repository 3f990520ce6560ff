/**
 * An actor: a subject domain (`etl` owns `etl.>`) with its protocol (the tasks it handles, routed
 * by subject), a concurrency bound, a retry policy, a timeout and the pool it runs in. The
 * definition is data; `toLayer` provides its handlers to a worker.
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer } from "effect"
import { domainOf, isName } from "../broker/Subjects.ts"
import type { Envelope } from "../envelope/Envelope.ts"
import type { Sql } from "../ledger/Ledger.ts"
import * as Retry from "../retry/Retry.ts"
import * as Task from "../task/Task.ts"
import type { Permanent } from "../task/TaskError.ts"

/** What a handler receives. @category models @since 0.1.0 */
export interface Request<T extends Task.Any> {
  readonly input: Task.Input<T>
  readonly envelope: Envelope
  readonly taskId: string
  /** 1 on the first delivery. */
  readonly attempt: number
  /** Attempts the retry policy allows, or undefined when it retries forever. */
  readonly maxAttempts: number | undefined
  /** Reports progress (any JSON value); readable with the task's status. */
  readonly progress: (value: unknown) => Effect.Effect<void>
  /** Aborted when the run is cancelled, times out or the worker shuts down: pass it to fetch() and friends. */
  readonly signal: AbortSignal
  /**
   * The run's idempotency key (scoped by tenant and subject): pass it to external APIs that
   * accept one (payments, e-mail), so a rerun after a crash is deduplicated on their side too.
   */
  readonly idempotencyKey: string
  /**
   * Registers writes to the msgsys SQLite file that commit in the same transaction as this run's
   * outcome and audit row — all or nothing, and once per key: the way to make a local side
   * effect exactly-once. `write` runs synchronously inside that transaction (keep it short; it
   * must only touch the database) and only if the handler succeeds. Needs the SQLite ledger (the
   * default, `MSGSYS_IDEMPOTENCY_STORE=sqlite`); with another store it fails the run.
   */
  readonly atCommit: (write: (sql: Sql) => void) => Effect.Effect<void>
}

/** One task's handler. @category models @since 0.1.0 */
export type Handler<T extends Task.Any, R = never> = (
  request: Request<T>
) => Effect.Effect<Task.Output<T>, Task.Failure<T> | Permanent, R>

/** The handlers of a protocol, keyed by subject. @category models @since 0.1.0 */
export type Handlers<Tasks extends ReadonlyArray<Task.Any>, R = never> = {
  readonly [T in Tasks[number] as T["subject"]]: Handler<T, R>
}

/** The service under which a worker finds an actor's handlers. @category models @since 0.1.0 */
export interface HandlersOf<Name extends string> {
  readonly _: unique symbol
  readonly actor: Name
}

/** Handlers as the runtime sees them. @category models @since 0.1.0 */
export type AnyHandlers = Readonly<Record<string, (request: Request<Task.Any>) => Effect.Effect<unknown, unknown>>>

/**
 * Where `toLayer` also keeps the handlers as written with the services they were built with,
 * for the dispatcher: it adds those services to its handler fibers once, instead of providing
 * them per call (each `provideContext` copies the fiber's whole context). The handlers under the
 * subjects provide them per call, for anyone else who runs one.
 * @category models @since 0.1.0
 */
export const unprovided: unique symbol = Symbol.for("msgsys/Actor/unprovided")

/** What `toLayer` keeps under `unprovided`. @category models @since 0.1.0 */
export interface Unprovided {
  readonly handlers: AnyHandlers
  readonly context: Context.Context<never>
}

/** The handlers as written and their services, when `handlers` came from a `toLayer`. @category models @since 0.1.0 */
export const unprovidedOf = (handlers: AnyHandlers): Unprovided | undefined =>
  (handlers as unknown as { readonly [unprovided]?: Unprovided })[unprovided]

/** Handlers that provide `context` per call, with the handlers as written kept under `unprovided`. @category constructors @since 0.1.0 */
export const provideHandlers = (
  handlers: Readonly<Record<string, (request: never) => Effect.Effect<unknown, unknown, any>>>,
  context: Context.Context<any>
): AnyHandlers => {
  const provided: Record<string, (request: never) => Effect.Effect<unknown, unknown>> = {}
  for (const [subject, handler] of Object.entries(handlers)) {
    provided[subject] = (request) => Effect.provideContext(handler(request), context)
  }
  const kept: Unprovided = { handlers: handlers as unknown as AnyHandlers, context: context as Context.Context<never> }
  Object.defineProperty(provided, unprovided, { value: kept })
  return provided as unknown as AnyHandlers
}

/** @category models @since 0.1.0 */
export interface Options<Tasks extends ReadonlyArray<Task.Any>> {
  readonly protocol: Tasks
  /** The pool it runs in. Default `fast`. */
  readonly pool?: string
  /** Messages of this actor running at once in one worker. Default 8. */
  readonly concurrency?: number
  /** Per-run timeout; a timeout is retried. Default 5 minutes. */
  readonly timeout?: Duration.Input
  /** Retry policy. Default `Retry.defaultPolicy` (5 attempts, exponential with jitter). */
  readonly retry?: Retry.Policy
  /** Messages with the same key run one at a time in arrival order; different keys in parallel. */
  readonly partitionBy?: (input: any, envelope: Envelope) => string
  /** JetStream ack_wait of its consumers. Default: the worker's `ackWait` (30 s). */
  readonly ackWait?: Duration.Input
}

/**
 * What a worker's dispatcher needs of an actor or an event group: the messages it routes (by
 * subject), its budget, its policies and its handlers.
 * @category models @since 0.1.0
 */
export interface Runnable {
  readonly _tag: "Actor" | "Subscriber"
  readonly name: string
  readonly tasks: ReadonlyMap<string, Task.Any>
  readonly pool: string
  readonly concurrency: number
  readonly timeout: Duration.Duration
  readonly retry: Retry.Policy
  readonly partitionBy: ((input: any, envelope: Envelope) => string) | undefined
  readonly ackWait: Duration.Duration | undefined
  readonly Handlers: Context.Service<any, AnyHandlers>
  /** For event groups with batch handlers: up to this many messages per handler call. */
  readonly batch?: number | undefined
}

/** @category models @since 0.1.0 */
export interface Actor<Name extends string = string, Tasks extends ReadonlyArray<Task.Any> = ReadonlyArray<Task.Any>>
  extends Runnable
{
  readonly _tag: "Actor"
  readonly name: Name
  readonly protocol: Tasks
  readonly tasks: ReadonlyMap<string, Task.Any>
  readonly pool: string
  readonly concurrency: number
  readonly timeout: Duration.Duration
  readonly retry: Retry.Policy
  readonly partitionBy: ((input: any, envelope: Envelope) => string) | undefined
  readonly ackWait: Duration.Duration | undefined
  readonly Handlers: Context.Service<HandlersOf<Name>, AnyHandlers>
  /** Identity, for type inference of handlers. */
  readonly of: <R = never>(handlers: Handlers<Tasks, R>) => Handlers<Tasks, R>
  /** A layer providing this actor's handlers, built by an Effect that may use services. */
  readonly toLayer: <R = never, E = never, RL = never>(
    build: Handlers<Tasks, R> | Effect.Effect<Handlers<Tasks, R>, E, RL>
  ) => Layer.Layer<HandlersOf<Name>, E, Exclude<R | RL, never>>
}

/** Any actor. @category models @since 0.1.0 */
export type Any = Actor<any, any>

/**
 * Defines an actor. Every task subject must start with the actor's name.
 * @category constructors @since 0.1.0
 */
export const make = <const Name extends string, const Tasks extends ReadonlyArray<Task.Any>>(
  name: Name,
  options: Options<Tasks>
): Actor<Name, Tasks> => {
  if (!isName(name)) {
    throw new Task.InvalidDefinition(`actor name ${JSON.stringify(name)} may hold only letters, digits, _ and -`)
  }
  const tasks = new Map<string, Task.Any>()
  for (const task of options.protocol) {
    if (domainOf(task.subject) !== name) {
      throw new Task.InvalidDefinition(
        `task ${task.subject} cannot belong to actor ${name}: an actor owns the subjects under its name ` +
          `(rename the task to ${name}.${task.subject.split(".").slice(1).join(".")} or move it to actor ` +
          `${domainOf(task.subject)})`
      )
    }
    if (tasks.has(task.subject)) throw new Task.InvalidDefinition(`task ${task.subject} is listed twice in actor ${name}`)
    tasks.set(task.subject, task)
  }
  const concurrency = options.concurrency ?? 8
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new Task.InvalidDefinition(`actor ${name}: concurrency must be a whole number >= 1, got ${concurrency}`)
  }
  const Handlers = Context.Service<HandlersOf<Name>, AnyHandlers>(`msgsys/Actor/${name}`)
  const toLayer = <R, E, RL>(build: Handlers<Tasks, R> | Effect.Effect<Handlers<Tasks, R>, E, RL>) =>
    Layer.effect(
      Handlers,
      Effect.gen(function*() {
        const handlers = Effect.isEffect(build) ? yield* build : build
        const missing = [...tasks.keys()].filter((s) => typeof (handlers as Record<string, unknown>)[s] !== "function")
        if (missing.length > 0) {
          return yield* Effect.die(new Task.InvalidDefinition(`actor ${name} has no handler for ${missing.join(", ")}`))
        }
        // Handlers may need services: capture them now so the runtime can run handlers as-is.
        return provideHandlers(handlers as never, yield* Effect.context<R>())
      })
    ) as unknown as Layer.Layer<HandlersOf<Name>, E, Exclude<R | RL, never>>
  return {
    _tag: "Actor",
    name,
    protocol: options.protocol,
    tasks,
    pool: options.pool ?? "fast",
    concurrency,
    timeout: Duration.fromInputUnsafe(options.timeout ?? "5 minutes"),
    retry: options.retry ?? Retry.defaultPolicy,
    partitionBy: options.partitionBy,
    ackWait: options.ackWait === undefined ? undefined : Duration.fromInputUnsafe(options.ackWait),
    Handlers,
    of: (handlers) => handlers,
    toLayer
  }
}

/** @category guards @since 0.1.0 */
export const isActor = (u: unknown): u is Any =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Actor"

/** The retry policy and timeout that apply to one task of an actor. @category utils @since 0.1.0 */
export const policyFor = (actor: Runnable, task: Task.Any) => ({
  retry: task.retry ?? actor.retry,
  timeout: task.timeout ?? actor.timeout
})
