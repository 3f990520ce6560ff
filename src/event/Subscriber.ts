/**
 * A subscriber: a named group of event handlers. Every group gets every event on its subjects;
 * the instances of one group (workers on any host) share them. Each group is a durable consumer
 * with its own retry policy, concurrency, timeout and dead letters, and the same idempotency (by
 * event id, per group), audit rows and leases as task handlers. An event on the group's subjects
 * that no handler of the group takes is dead-lettered as `unroutable`, never silently acked.
 *
 * ```ts
 * const Welcome = Subscriber.make("welcome", { events: [UserRegistered], retry: Retry.exponential() })
 * const WelcomeLive = Welcome.toLayer({
 *   "events.user.registered": ({ input, envelope }) => mailer.send(input.email, { parent: envelope })
 * })
 * ```
 * With `batch: N` a handler receives up to N events at once (for bulk imports that write in one
 * transaction) and they are acked together.
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Schema } from "effect"
import * as Actor from "../actor/Actor.ts"
import { isName } from "../broker/Subjects.ts"
import type { Envelope } from "../envelope/Envelope.ts"
import * as Retry from "../retry/Retry.ts"
import * as Task from "../task/Task.ts"
import * as Event from "./Event.ts"

/** Where a new group starts reading. @category models @since 0.1.0 */
export type StartAt =
  /** Only events published after the group is created (default). */
  | "new"
  /** Every event the stream still holds. */
  | "all"
  /** Events stored at or after this time. */
  | { readonly since: Date | number }
  /** Events from this stream sequence on. */
  | { readonly sequence: number }

/** One event's handler. @category models @since 0.1.0 */
export type Handler<E extends Event.Any, R = never> = (
  request: Actor.Request<Task.Task<E["subject"], E["payload"]>>
) => Effect.Effect<void, unknown, R>

/** A batch handler: up to `batch` events of one subject at once, acked together. @category models @since 0.1.0 */
export type BatchHandler<E extends Event.Any, R = never> = (
  requests: ReadonlyArray<Actor.Request<Task.Task<E["subject"], E["payload"]>>>
) => Effect.Effect<void, unknown, R>

/** @category models @since 0.1.0 */
export type Handlers<Events extends ReadonlyArray<Event.Any>, Batched extends boolean, R = never> = {
  readonly [E in Events[number] as E["subject"]]: Batched extends true ? BatchHandler<E, R> : Handler<E, R>
}

/** @category models @since 0.1.0 */
export interface Options<Events extends ReadonlyArray<Event.Any>> {
  readonly events: Events
  /**
   * The subjects the group's consumer takes (one filter, e.g. `v1.>`); events on them with no
   * handler here are unroutable. Default: the narrowest one filter that covers the events — the
   * subject of a single event; `academic.course.*` for `academic.course.created` and
   * `academic.course.deleted`; `<prefix>.>` of their common leading tokens when their lengths differ.
   */
  readonly filter?: string
  /** The pool it runs in. Default `fast`. */
  readonly pool?: string
  /** Events handled at once in one worker. Default 8. */
  readonly concurrency?: number
  /** Per-run timeout. Default 5 minutes. */
  readonly timeout?: Duration.Input
  /** Retry policy. Default `Retry.defaultPolicy`. */
  readonly retry?: Retry.Policy
  /** JetStream ack_wait of the group's consumer. Default: the worker's `ackWait`. */
  readonly ackWait?: Duration.Input
  /** Events with the same key run one at a time in arrival order (e.g. by tenant or entity id). */
  readonly partitionBy?: (payload: any, envelope: Envelope) => string
  /** Where a new group starts. Default "new". */
  readonly startAt?: StartAt
  /** Handle up to this many events of one subject per call (batch handlers); at most the concurrency. */
  readonly batch?: number
}

/** @category models @since 0.1.0 */
export interface Subscriber<Group extends string = string, Events extends ReadonlyArray<Event.Any> = ReadonlyArray<Event.Any>, Batched extends boolean = boolean>
  extends Actor.Runnable
{
  readonly _tag: "Subscriber"
  readonly name: Group
  readonly events: Events
  /** The one events domain (first token) its subjects are in: the stream it reads. */
  readonly domain: string
  readonly filter: string
  readonly startAt: StartAt
  readonly batch: number | undefined
  readonly Handlers: Context.Service<Actor.HandlersOf<Group>, Actor.AnyHandlers>
  readonly toLayer: <R = never, E = never, RL = never>(
    build: Handlers<Events, Batched, R> | Effect.Effect<Handlers<Events, Batched, R>, E, RL>
  ) => Layer.Layer<Actor.HandlersOf<Group>, E, Exclude<R | RL, never>>
}

/** Any subscriber. @category models @since 0.1.0 */
export type Any = Subscriber<any, any, any>

/** An event as the dispatcher routes it: a task with the payload as input, no output, no result stored. */
const asTask = (event: Event.Any): Task.Any => ({
  _tag: "Task",
  subject: event.subject,
  input: event.payload,
  output: Schema.Void as unknown as Task.Codec,
  error: undefined,
  permanent: [],
  idempotencyKey: undefined,
  priority: undefined,
  timeout: undefined,
  retry: undefined,
  result: false
})

const filterOf = (events: ReadonlyArray<Event.Any>, filter: string | undefined, group: string): { domain: string; filter: string } => {
  const domains = new Set(events.map((e) => Event.domainOf(e.subject)))
  if (filter !== undefined) {
    const domain = Event.domainOf(filter)
    if (domain === "*" || domain === ">" || [...domains].some((d) => d !== domain)) {
      throw new Task.InvalidDefinition(
        `subscriber ${group}: filter ${JSON.stringify(filter)} must start with the events' domain (${[...domains].join(", ")})`
      )
    }
    return { domain, filter }
  }
  if (domains.size !== 1) {
    throw new Task.InvalidDefinition(
      `subscriber ${group} takes events of several domains (${[...domains].join(", ")}): one group reads one ` +
        "events stream; make a group per domain"
    )
  }
  const domain = [...domains][0]!
  return { domain, filter: narrowestFilter(events.map((e) => e.subject)) }
}

/**
 * The narrowest single subject filter that matches every subject (of one domain): a consumer on
 * nats-server 2.9 has one filter, and a group should not get (and dead-letter as unroutable) the
 * events of its domain that it never asked for.
 */
const narrowestFilter = (subjects: ReadonlyArray<string>): string => {
  const split = subjects.map((s) => s.split("."))
  const length = split[0]!.length
  if (split.every((t) => t.length === length)) {
    return split[0]!.map((token, i) => split.every((t) => t[i] === token) ? token : "*").join(".")
  }
  // lengths differ: the common leading tokens, then `>` (which needs at least one token after them)
  const shortest = Math.min(...split.map((t) => t.length))
  let common = 0
  while (common < shortest - 1 && split.every((t) => t[common] === split[0]![common])) common++
  return [...split[0]!.slice(0, Math.max(1, common)), ">"].join(".")
}

/**
 * Defines a group of event handlers.
 * @category constructors @since 0.1.0
 */
export const make = <const Group extends string, const Events extends ReadonlyArray<Event.Any>, const O extends Options<Events>>(
  group: Group,
  options: O & Options<Events>
): Subscriber<Group, Events, O extends { readonly batch: number } ? true : false> => {
  type Batched = O extends { readonly batch: number } ? true : false
  if (!isName(group)) throw new Task.InvalidDefinition(`subscriber name ${JSON.stringify(group)} may hold only letters, digits, _ and -`)
  if (options.events.length === 0) throw new Task.InvalidDefinition(`subscriber ${group} takes no events`)
  const tasks = new Map<string, Task.Any>()
  for (const event of options.events) {
    if (tasks.has(event.subject)) throw new Task.InvalidDefinition(`event ${event.subject} is listed twice in subscriber ${group}`)
    tasks.set(event.subject, asTask(event))
  }
  const concurrency = options.concurrency ?? (options.batch ?? 8)
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new Task.InvalidDefinition(`subscriber ${group}: concurrency must be a whole number >= 1, got ${concurrency}`)
  }
  const batch = options.batch
  if (batch !== undefined && (!Number.isInteger(batch) || batch < 1 || batch > concurrency)) {
    throw new Task.InvalidDefinition(`subscriber ${group}: batch must be a whole number from 1 to its concurrency (${concurrency})`)
  }
  const { domain, filter } = filterOf(options.events, options.filter, group)
  const Handlers = Context.Service<Actor.HandlersOf<Group>, Actor.AnyHandlers>(`msgsys/Subscriber/${group}`)
  const toLayer = <R, E, RL>(build: Handlers<Events, Batched, R> | Effect.Effect<Handlers<Events, Batched, R>, E, RL>) =>
    Layer.effect(
      Handlers,
      Effect.gen(function*() {
        const handlers = (Effect.isEffect(build) ? yield* build : build) as unknown as Record<string, (r: unknown) => Effect.Effect<unknown, unknown, R>>
        const missing = [...tasks.keys()].filter((s) => typeof handlers[s] !== "function")
        if (missing.length > 0) {
          return yield* Effect.die(new Task.InvalidDefinition(`subscriber ${group} has no handler for ${missing.join(", ")}`))
        }
        return Actor.provideHandlers(handlers as never, yield* Effect.context<R>())
      })
    ) as unknown as Layer.Layer<Actor.HandlersOf<Group>, E, Exclude<R | RL, never>>
  return {
    _tag: "Subscriber",
    name: group,
    events: options.events,
    domain,
    filter,
    startAt: options.startAt ?? "new",
    batch,
    tasks,
    pool: options.pool ?? "fast",
    concurrency,
    timeout: Duration.fromInputUnsafe(options.timeout ?? "5 minutes"),
    retry: options.retry ?? Retry.defaultPolicy,
    partitionBy: options.partitionBy,
    ackWait: options.ackWait === undefined ? undefined : Duration.fromInputUnsafe(options.ackWait),
    Handlers,
    toLayer
  }
}

/** @category guards @since 0.1.0 */
export const isSubscriber = (u: unknown): u is Any =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Subscriber"
