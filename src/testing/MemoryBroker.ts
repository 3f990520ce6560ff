/**
 * An in-memory broker for unit-testing actors, no nats-server needed: a `Client` and `Pipelines`
 * with the same API, and the actors' real dispatchers — the same intake, claims, retries, timeouts, dead letters
 * and statuses as a worker on NATS — over work queues kept in memory. Time comes from the Effect
 * `Clock`, so a test drives retries, delays, timeouts and redeliveries with `TestClock.adjust`.
 *
 * ```ts
 * const TestLayer = MemoryBroker.layer([Etl]).pipe(Layer.provide(EtlLive))
 * test("a failing extract is retried and succeeds", () =>
 *   Effect.gen(function*() {
 *     const client = yield* Client.Client
 *     const handle = yield* client.enqueue(Extract, { tenant: "acme", source: "crm" })
 *     yield* TestClock.adjust("10 seconds")           // the retry's delay passes
 *     expect(yield* client.result(handle, "1 minute")).toEqual({ rows: 42 })
 *   }).pipe(Effect.provide(TestLayer), Effect.provide(TestClock.layer()), Effect.scoped, Effect.runPromise))
 * ```
 *
 * Event groups (`Subscriber`) run the same way: pass them beside the actors
 * (`MemoryBroker.layer([Etl, Welcome])`), and each group gets its own copy of every event published
 * on its filter, as its durable consumer would; `client.publish` and `publishMany` work as on NATS.
 *
 * What it models: one work queue per actor with its high, normal and low consumers, one per event
 * group; acks, naks with delays, in-progress acks and `ack_wait` redelivery; `max_deliver` (a
 * message whose deliveries run out goes to dead letters, as the max-deliveries sweeper does);
 * deduplication by `Nats-Msg-Id` within two minutes; delayed tasks (held until their run-at). What
 * it does not: several processes, broker failures, storage limits, a group's `startAt` (every group
 * exists before the first event).
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Layer, type Scope } from "effect"
import type * as Actor from "../actor/Actor.ts"
import type { AuditRecord } from "../audit/AuditLog.ts"
import { BrokerError } from "../broker/BrokerError.ts"
import type { Delivery } from "../broker/Delivery.ts"
import * as Publish from "../broker/Publish.ts"
import type * as Pull from "../broker/Pull.ts"
import * as Subjects from "../broker/Subjects.ts"
import type { Reason } from "../dlq/DeadLetter.ts"
import type * as Event from "../event/Event.ts"
import * as Subscriber from "../event/Subscriber.ts"
import type { Ledger } from "../ledger/Ledger.ts"
import * as MemoryLedger from "../ledger/MemoryLedger.ts"
import * as Pool from "../pool/Pool.ts"
import * as Retry from "../retry/Retry.ts"
import * as Continuation from "../pipeline/Continuation.ts"
import * as Pipelines from "../pipeline/Pipelines.ts"
import * as PipelineStore from "../pipeline/PipelineStore.ts"
import * as Dispatcher from "../runtime/Dispatcher.ts"
import * as Client from "../client/Client.ts"
import * as CancelRequests from "../task/CancelRequests.ts"
import * as EnqueueKeys from "../task/EnqueueKeys.ts"
import { makeMemory as makeMemoryResults, type Results } from "../task/Results.ts"
import type * as Task from "../task/Task.ts"
import * as TaskHeaders from "../task/TaskHeaders.ts"
import type { FailedAttempt, StoredError } from "../task/TaskRecord.ts"

/** A dead letter as the in-memory broker keeps it. @category models @since 0.1.0 */
export interface Letter {
  readonly taskId: string
  readonly subject: string
  readonly actor: string
  readonly tenant: string
  readonly reason: Reason
  readonly error: StoredError
  readonly attempts: number
  readonly history: ReadonlyArray<FailedAttempt>
  readonly body: Uint8Array
  readonly headers: Readonly<Record<string, string>>
}

/** @category models @since 0.1.0 */
export interface Options {
  /** Stream prefix of the names. Default "MSGSYS". */
  readonly prefix?: string
  /** Default: each actor's own `ackWait`, else 30 seconds. */
  readonly ackWait?: Duration.Input
  /** Concurrency of each pool the actors name. Default: each actor's concurrency summed. */
  readonly poolSize?: number
  /** The largest body plus headers accepted. Default 1 MB, as nats-server. */
  readonly maxPayload?: number
  /** Results to use instead of a fresh in-memory store (e.g. one that fails, to test failures). */
  readonly results?: Results["Service"]
  /** Events published that no group given here reads (publishing them is then accepted, as on NATS once their stream exists). */
  readonly events?: ReadonlyArray<Event.Any>
  /** Wraps the in-memory ledger the dispatchers use (e.g. to count its writes, or to make one fail). */
  readonly ledger?: (ledger: Ledger["Service"]) => Ledger["Service"]
}

/** What the in-memory broker runs: actors and event groups. @category models @since 0.1.0 */
export type Runnable = Actor.Any | Subscriber.Any

/** What a test can look at and control besides the `Client`. @category services @since 0.1.0 */
export class MemoryBroker extends Context.Service<MemoryBroker, {
  /** Dead letters, oldest first. */
  readonly deadLetters: Effect.Effect<ReadonlyArray<Letter>>
  /** Every audit row recorded, in order. */
  readonly audit: Effect.Effect<ReadonlyArray<AuditRecord>>
  /** Messages of an actor (or event group) not acked yet (waiting, running or waiting for a retry). */
  readonly pending: (actor: string) => Effect.Effect<number>
  /** Messages of an actor (or event group) delivered and not yet acked: what its worker holds. */
  readonly held: (actor: string) => Effect.Effect<number>
  /**
   * Publishes a raw message, as any NATS client could (no envelope unless the headers carry one):
   * for tests of foreign publishers and of garbage.
   */
  readonly publish: (subject: string, body: Uint8Array | string, headers?: Readonly<Record<string, string>>) => Effect.Effect<void, Publish.PublishError>
  /** Pauses or resumes an actor (it stops taking messages; they wait). */
  readonly setPaused: (actor: string, paused: boolean) => Effect.Effect<void>
}>()("msgsys/MemoryBroker") {}

interface Message {
  readonly seq: number
  readonly subject: string
  readonly headers: Record<string, string>
  readonly data: Uint8Array
  readonly storedAt: number
  deliveries: number
  state: "ready" | "inflight" | "done"
  /** Deliverable from this time (a nak delay, a run-at). */
  dueAt: number
  ackDeadline: number
}

interface Waiter {
  left: number
  readonly listener: Pull.Listener
}

interface Queue {
  readonly stream: string
  readonly consumer: string
  /** The actor or event group it feeds: dead letters name it. */
  readonly owner: string
  readonly ackWaitMs: number
  readonly maxDeliver: number
  /** Never delivered, in stream order, from `head` on. */
  fresh: Array<Message>
  head: number
  /** To be delivered (again) from their `dueAt`: nak'ed, timed out, or delayed. */
  readonly again: Set<Message>
  readonly inflight: Set<Message>
  waiter: Waiter | undefined
  listener: Pull.Listener | undefined
}

const dedupWindowMs = 120_000
const defaultAckWaitMs = 30_000

/**
 * The in-memory broker for `actors` (and event groups): provides `Client`, `Pipelines` and
 * `MemoryBroker`; needs their handler layers. Runs until its scope closes.
 * @category layers @since 0.1.0
 */
export const layer = <const Actors extends ReadonlyArray<Runnable>>(
  actors: Actors,
  options: Options = {}
): Layer.Layer<Client.Client | Pipelines.Pipelines | MemoryBroker, never, Actor.HandlersOf<Actors[number]["name"]>> =>
  Layer.effectContext(Effect.gen(function*() {
    const built = yield* make(actors, options)
    return Context.make(Client.Client, built.client).pipe(
      Context.add(Pipelines.Pipelines, built.pipelines),
      Context.add(MemoryBroker, built.broker)
    )
  }))

/**
 * The in-memory broker for a whole app, as `App.layer` runs it on NATS: its actors, event groups
 * and events, its handlers built with this broker's `Client` (so handlers that enqueue or publish
 * work). Provides `Client`, `Pipelines` and `MemoryBroker`.
 *
 * ```ts
 * const TestLayer = MemoryBroker.layerApp(app)
 * ```
 * @category layers @since 0.1.0
 */
export const layerApp = <E>(
  app: {
    readonly actors: ReadonlyArray<Actor.Any>
    readonly subscribers: ReadonlyArray<Subscriber.Any>
    readonly events: ReadonlyArray<Event.Any>
    readonly handlers: Layer.Layer<any, E, any>
  },
  options: Omit<Options, "events"> = {}
): Layer.Layer<Client.Client | Pipelines.Pipelines | MemoryBroker, E> =>
  Layer.effectContext(Effect.gen(function*() {
    const built = yield* makeWith(
      [...app.actors, ...app.subscribers],
      app.handlers as Layer.Layer<Actor.HandlersOf<any>, E, Client.Client>,
      { ...options, events: app.events }
    )
    return Context.make(Client.Client, built.client).pipe(
      Context.add(Pipelines.Pipelines, built.pipelines),
      Context.add(MemoryBroker, built.broker)
    )
  }))

/**
 * Builds the broker, its client and the actors' dispatchers in the current scope.
 * @category constructors @since 0.1.0
 */
export const make = <const Actors extends ReadonlyArray<Runnable>>(
  runnables: Actors,
  options: Options = {}
): Effect.Effect<
  {
    readonly client: Client.Client["Service"]
    readonly pipelines: Pipelines.Pipelines["Service"]
    readonly broker: MemoryBroker["Service"]
  },
  never,
  Actor.HandlersOf<Actors[number]["name"]> | Scope.Scope
> => build(runnables, undefined, options) as never

/**
 * `make` with the handlers given as a layer, built once the broker's client exists: handlers that
 * enqueue tasks or publish events (`Client.Client`) get this broker's client.
 * @category constructors @since 0.1.0
 */
export const makeWith = <const Actors extends ReadonlyArray<Runnable>, E>(
  runnables: Actors,
  handlers: Layer.Layer<Actor.HandlersOf<Actors[number]["name"]>, E, Client.Client> | undefined,
  options: Options = {}
): Effect.Effect<
  {
    readonly client: Client.Client["Service"]
    readonly pipelines: Pipelines.Pipelines["Service"]
    readonly broker: MemoryBroker["Service"]
  },
  E,
  Scope.Scope
> => build(runnables, handlers, options) as never

const build = <const Actors extends ReadonlyArray<Runnable>, E>(
  runnables: Actors,
  handlers: Layer.Layer<Actor.HandlersOf<Actors[number]["name"]>, E, Client.Client> | undefined,
  options: Options
) =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const names = Subjects.make(options.prefix ?? "MSGSYS")
    const maxPayload = options.maxPayload ?? 1024 * 1024
    const results = options.results ?? (yield* makeMemoryResults)
    const keys = yield* EnqueueKeys.makeMemory
    const cancels = yield* CancelRequests.makeMemory
    const memoryLedger = yield* MemoryLedger.make
    const auditRows = memoryLedger.rows
    const ledger = options.ledger?.(memoryLedger.service) ?? memoryLedger.service
    const letters: Array<Letter> = []
    const actors = runnables.filter((r): r is Actor.Any => !Subscriber.isSubscriber(r))
    const groups = runnables.filter(Subscriber.isSubscriber)

    // ------------------------------------------------------------------------------------------
    // the work queues: three per actor (its priorities), one per event group

    const queues = new Map<string, Queue>()
    const byActor = new Map<string, Actor.Any>()
    /** Event domains a publish is accepted on, and the queues of the groups reading each. */
    const eventDomains = new Map<string, Array<{ readonly filter: string; readonly queue: Queue }>>()
    const queue = (r: Runnable, stream: string, consumer: string): Queue => {
      const longest = Math.max(...[r.retry, ...[...r.tasks.values()].map((t: Task.Any) => t.retry ?? r.retry)].map((p) =>
        Retry.maxAttempts(p) ?? Infinity
      ))
      return {
        stream,
        consumer,
        owner: r.name,
        ackWaitMs: Duration.toMillis(Duration.fromInputUnsafe(options.ackWait ?? r.ackWait ?? defaultAckWaitMs)),
        maxDeliver: Number.isFinite(longest) ? longest + 2 : Infinity,
        fresh: [],
        head: 0,
        again: new Set(),
        inflight: new Set(),
        waiter: undefined,
        listener: undefined
      }
    }
    for (const actor of actors) {
      byActor.set(actor.name, actor)
      for (const p of Subjects.priorities) {
        queues.set(`${actor.name}:${p}`, queue(actor, names.taskStream(actor.name), names.taskConsumer(actor.name, p)))
      }
    }
    for (const event of options.events ?? []) {
      if (!eventDomains.has(Subjects.domainOf(event.subject))) eventDomains.set(Subjects.domainOf(event.subject), [])
    }
    for (const group of groups) {
      const q = queue(group, names.eventStream(group.domain), group.name)
      queues.set(`group:${group.name}`, q)
      eventDomains.set(group.domain, [...(eventDomains.get(group.domain) ?? []), { filter: group.filter, queue: q }])
    }
    const queuesOf = (name: string): ReadonlyArray<Queue> => {
      const group = queues.get(`group:${name}`)
      if (group !== undefined) return [group]
      return Subjects.priorities.flatMap((p) => queues.get(`${name}:${p}`) ?? [])
    }
    let seq = 0
    const dedup = new Map<string, { readonly seq: number; readonly stream: string; readonly at: number }>()

    const delivery = (q: Queue, m: Message, pendingAfter: number): Delivery => {
      const { ackWaitMs } = q
      const count = m.deliveries
      return {
        subject: m.subject,
        headers: { ...m.headers },
        data: m.data,
        stream: q.stream,
        consumer: q.consumer,
        deliveryCount: count,
        streamSequence: m.seq,
        storedAt: m.storedAt,
        pending: pendingAfter,
        ack: () => {
          m.state = "done"
          q.inflight.delete(m)
          q.again.delete(m)
        },
        term: () => {
          m.state = "done"
          q.inflight.delete(m)
          q.again.delete(m)
        },
        nak: (delayMs = 0) => {
          if (m.state !== "inflight") return
          m.state = "ready"
          m.dueAt = now() + Math.max(0, delayMs)
          q.inflight.delete(m)
          q.again.add(m)
          notifySoon()
        },
        working: () => {
          if (m.state === "inflight") m.ackDeadline = now() + ackWaitMs
        }
      }
    }

    /** Hands the next ready message of `q` out (redeliveries first, as JetStream), or undefined. */
    const take = (q: Queue): Delivery | undefined => {
      const t = now()
      let m: Message | undefined
      for (const x of q.again) if (x.dueAt <= t && (m === undefined || x.seq < m.seq)) m = x
      if (m !== undefined) q.again.delete(m)
      else if (q.head < q.fresh.length) {
        m = q.fresh[q.head++]!
        if (q.head > 4096 && q.head * 2 > q.fresh.length) {
          q.fresh = q.fresh.slice(q.head)
          q.head = 0
        }
      } else return undefined
      m.state = "inflight"
      m.deliveries += 1
      q.inflight.add(m)
      m.ackDeadline = t + q.ackWaitMs
      // as JetStream's num_pending: the messages not delivered yet
      return delivery(q, m, q.fresh.length - q.head)
    }

    const serveWaiters = () => {
      for (const q of queues.values()) {
        const w = q.waiter
        if (w === undefined) continue
        while (w.left > 0) {
          const d = take(q)
          if (d === undefined) break
          w.left -= 1
          w.listener.onMessage(d)
        }
        if (w.left <= 0 && q.waiter === w) {
          q.waiter = undefined
          w.listener.onEnd("filled")
        }
      }
    }
    let notifyScheduled = false
    const notifySoon = () => {
      if (notifyScheduled) return
      notifyScheduled = true
      queueMicrotask(() => {
        notifyScheduled = false
        serveWaiters()
      })
    }

    const feed = (q: Queue, listener: Pull.Listener): Pull.Feed => {
      q.listener = listener
      let fetching = 0
      return {
        stream: q.stream,
        consumer: q.consumer,
        fetch: (n) => {
          if (n <= 0 || fetching > 0 || q.waiter !== undefined) return
          fetching = n
          // answered on the next turn, as a real pull is
          queueMicrotask(() => {
            let given = 0
            while (given < n) {
              const d = take(q)
              if (d === undefined) break
              given += 1
              fetching -= 1
              listener.onMessage(d)
            }
            fetching = 0
            listener.onEnd(given >= n ? "filled" : "drained")
          })
        },
        wait: (n) => {
          if (n <= 0 || fetching > 0 || q.waiter !== undefined) return
          q.waiter = { left: n, listener }
          notifySoon()
        },
        outstanding: () => fetching + (q.waiter?.left ?? 0),
        check: () => {},
        reset: () => {
          if (q.waiter !== undefined) {
            q.waiter = undefined
            listener.onEnd("lost")
          }
        }
      }
    }

    // ------------------------------------------------------------------------------------------
    // time: ack_wait redeliveries, delays coming due, deliveries running out

    const dueWork = Effect.sync(() => {
      const t = now()
      for (const q of queues.values()) {
        for (const m of q.inflight) {
          if (t < m.ackDeadline) continue
          if (m.deliveries >= q.maxDeliver) {
            // out of deliveries without being settled: dead letters, as the sweeper does on NATS
            m.state = "done"
            q.inflight.delete(m)
            const { subject } = names.parseTaskSubject(m.subject)
            const error = { tag: "MaxDeliveries", message: `delivered ${m.deliveries} times without being settled` }
            letters.push({
              taskId: m.headers["Msgsys-Id"] ?? `${q.stream}-${m.seq}`,
              subject,
              actor: q.owner,
              tenant: m.headers["Msgsys-Tenant"] ?? "default",
              reason: "max_deliveries",
              error,
              attempts: m.deliveries,
              history: [],
              body: m.data,
              headers: m.headers
            })
            continue
          }
          m.state = "ready"
          m.dueAt = t
          q.inflight.delete(m)
          q.again.add(m)
        }
      }
      serveWaiters()
      for (const [id, d] of dedup) if (t - d.at > dedupWindowMs) dedup.delete(id)
    })

    // ------------------------------------------------------------------------------------------
    // publishing

    /** An event: stored once, a copy in the queue of every group whose filter takes its subject. */
    const publishEvent = (
      message: Publish.Message,
      readers: ReadonlyArray<{ readonly filter: string; readonly queue: Queue }>,
      stream: string
    ) => {
      const t = now()
      const stored = ++seq
      const headers = { ...message.headers, ...(message.msgId !== undefined ? { "Nats-Msg-Id": message.msgId } : {}) }
      for (const { filter, queue: q } of readers) {
        if (!Subjects.matchesFilter(message.subject, filter)) continue
        q.fresh.push({
          seq: stored,
          subject: message.subject,
          headers,
          data: message.data,
          storedAt: t,
          deliveries: 0,
          state: "ready",
          dueAt: t,
          ackDeadline: 0
        })
      }
      if (message.msgId !== undefined) dedup.set(message.msgId, { seq: stored, stream, at: t })
      return { stream, sequence: stored, duplicate: false }
    }

    const publisher: Publish.Publisher = {
      submit: (message, done) => {
        const { subject, priority } = names.parseTaskSubject(message.subject)
        const actor = byActor.get(Subjects.domainOf(subject))
        const readers = actor === undefined ? eventDomains.get(Subjects.domainOf(message.subject)) : undefined
        if (actor === undefined && readers === undefined) {
          return done({ ok: false, error: new Publish.NoStreamForSubject({ subject: message.subject }) })
        }
        const stream = actor !== undefined ? names.taskStream(actor.name) : names.eventStream(Subjects.domainOf(message.subject))
        const headers = { ...message.headers }
        const size = message.data.length + Publish.headersSize(headers, message.msgId)
        if (size > maxPayload) {
          return done({
            ok: false,
            error: new BrokerError({ operation: `publish to ${message.subject}`, reason: `${size} bytes: max_payload size exceeded` })
          })
        }
        if (message.msgId !== undefined) {
          const seen = dedup.get(message.msgId)
          if (seen !== undefined) return done({ ok: true, ack: { stream: seen.stream, sequence: seen.seq, duplicate: true } })
        }
        if (actor === undefined) {
          done({ ok: true, ack: publishEvent(message, readers!, stream) })
          return notifySoon()
        }
        const t = now()
        // a delayed task waits on its consumer until its run-at, then runs at its priority
        const runAt = priority === "delayed" ? Number(headers[TaskHeaders.RunAt]) : Number.NaN
        const target = priority === "delayed"
          ? (headers[TaskHeaders.Priority] as Subjects.Priority | undefined) ?? "normal"
          : priority
        const q = queues.get(`${actor.name}:${target}`)!
        const m: Message = {
          seq: ++seq,
          subject: priority === "delayed" ? names.taskSubject(subject, target) : message.subject,
          headers: { ...headers, ...(message.msgId !== undefined ? { "Nats-Msg-Id": message.msgId } : {}) },
          data: message.data,
          storedAt: t,
          deliveries: 0,
          state: "ready",
          dueAt: Number.isFinite(runAt) ? runAt : t,
          ackDeadline: 0
        }
        // a delayed task waits with the redeliveries until its run-at
        if (m.dueAt > t) q.again.add(m)
        else q.fresh.push(m)
        if (message.msgId !== undefined) dedup.set(message.msgId, { seq: m.seq, stream, at: t })
        done({ ok: true, ack: { stream, sequence: m.seq, duplicate: false } })
        notifySoon()
      },
      inFlight: () => 0,
      // never disconnected: nothing to send again
      disconnected: () => {},
      reconnected: () => {},
      close: () => {}
    }

    // ------------------------------------------------------------------------------------------
    // the actors

    const poolSizes = new Map<string, number>()
    for (const a of runnables) poolSizes.set(a.pool, (poolSizes.get(a.pool) ?? 0) + a.concurrency)
    const pools = new Map<string, Pool.Pool>()
    for (const [name, size] of poolSizes) pools.set(name, yield* Pool.make(name, options.poolSize ?? size))

    // the client exists before the handlers: handlers that enqueue or publish get it
    const client = yield* Client.makeWith({ publisher, maxPayload: () => maxPayload, results, keys, cancels, names })
    const provided = handlers === undefined
      ? yield* Effect.context<Actor.HandlersOf<Actors[number]["name"]>>()
      : yield* Layer.build(Layer.provide(handlers, Layer.succeed(Client.Client, client)))
    const pipelineStore = yield* PipelineStore.makeMemory
    const continuation = yield* Continuation.make({ publisher, names, maxPayload: () => maxPayload, results, store: pipelineStore })
    const dispatchers = new Map<string, Dispatcher.Dispatcher>()
    for (const actor of runnables) {
      const handlers = Context.get(provided as Context.Context<any>, actor.Handlers) as Actor.AnyHandlers
      const group = Subscriber.isSubscriber(actor)
      const d = yield* Dispatcher.make({
        workerId: "memory",
        actor,
        handlers,
        names,
        poolName: actor.pool,
        poolSlots: pools.get(actor.pool)!.slots,
        ledger,
        results,
        ackWaitMs: queuesOf(actor.name)[0]!.ackWaitMs,
        afterSucceeded: continuation,
        // an event group, as on a worker: its one consumer, its own keys, no task statuses
        ...(group ? { priorities: ["normal"] as const, keyScope: () => `group/${actor.name}`, statuses: false } : {}),
        moveToDeadLetters: (r) =>
          Effect.sync(() => {
            letters.push({
              taskId: r.envelope.id,
              subject: r.subject,
              actor: r.actor,
              tenant: r.envelope.tenant,
              reason: r.reason,
              error: r.error,
              attempts: r.attempts,
              history: r.history,
              body: r.delivery.data,
              headers: r.delivery.headers ?? {}
            })
          })
      })
      dispatchers.set(actor.name, d)
      yield* Effect.forkScoped(d.connect((priority, listener) =>
        Effect.succeed(feed(queues.get(group ? `group:${actor.name}` : `${actor.name}:${priority}`)!, listener))
      ))
    }
    yield* Effect.orDie(cancels.watch((taskId) => {
      for (const d of dispatchers.values()) d.cancel(taskId)
    }))
    // one ticker for the dispatchers and the queues, on the Clock (a TestClock drives it)
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(
      Effect.sleep(Duration.millis(100)),
      Effect.andThen(dueWork, Effect.sync(() => {
        for (const d of dispatchers.values()) d.tick()
      }))
    )))

    const pipelines = yield* Pipelines.makeWith({ publisher, names, maxPayload: () => maxPayload, results, cancels, store: pipelineStore })
    const broker = MemoryBroker.of({
      deadLetters: Effect.sync(() => [...letters]),
      audit: auditRows,
      pending: (actor) =>
        Effect.sync(() => {
          let n = 0
          for (const q of queuesOf(actor)) n += q.fresh.length - q.head + q.again.size + q.inflight.size
          return n
        }),
      publish: (subject, body, headers) =>
        Effect.asVoid(Publish.publish(publisher, {
          subject,
          data: typeof body === "string" ? new TextEncoder().encode(body) : body,
          headers
        })),
      held: (actor) =>
        Effect.sync(() => {
          let n = 0
          for (const q of queuesOf(actor)) n += q.inflight.size
          return n
        }),
      setPaused: (actor, paused) => Effect.sync(() => dispatchers.get(actor)?.setPaused(paused))
    })
    return { client, pipelines, broker }
  })
