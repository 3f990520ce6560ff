/**
 * A worker: one `Dispatcher` per selected actor, each pulling from its consumers in a supervised
 * loop, with the delay mover and the max-deliveries sweeper beside them; one ticker for every
 * heartbeat, lease renewal and timeout; the pauses and cancels every worker shares, loaded before
 * the first pull; and a graceful shutdown when its scope closes (guarantee 7): stop pulling, hand
 * back what has not started, let in-flight work finish within the grace period, then interrupt
 * the rest and hand it back for immediate redelivery. The ledger and the NATS connection, layers
 * below this one, flush and drain after it.
 * @since 0.1.0
 */
import { Clock, Context, Data, Duration, Effect, Fiber, Layer, Metric, Option, Schedule, type Scope } from "effect"
import { hostname } from "node:os"
import type * as Actor from "../actor/Actor.ts"
import * as Supervisor from "../actor/Supervisor.ts"
import type { BrokerError } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Pull from "../broker/Pull.ts"
import * as Subjects from "../broker/Subjects.ts"
import * as Topology from "../broker/Topology.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as DeadLetters from "../dlq/DeadLetters.ts"
import * as MaxDeliveries from "../dlq/MaxDeliveries.ts"
import * as MessageId from "../envelope/MessageId.ts"
import { Ledger } from "../ledger/Ledger.ts"
import * as Pool from "../pool/Pool.ts"
import { CancelRequests } from "../task/CancelRequests.ts"
import { Results } from "../task/Results.ts"
import * as ActorTopology from "../actor/ActorTopology.ts"
import * as Control from "../control/Control.ts"
import * as DelayMover from "./DelayMover.ts"
import * as Event from "../event/Event.ts"
import * as EventTopology from "../event/EventTopology.ts"
import * as ReplayEpochs from "../control/ReplayEpochs.ts"
import * as Subscriber from "../event/Subscriber.ts"
import * as Continuation from "../pipeline/Continuation.ts"
import * as KvPipelineStore from "../pipeline/KvPipelineStore.ts"
import * as Dispatcher from "./Dispatcher.ts"
import * as StreamSweeper from "./StreamSweeper.ts"

/** Which of the given actors this worker runs. Empty lists mean "all". @category models @since 0.1.0 */
export interface Selection {
  readonly pools?: ReadonlyArray<string>
  readonly actors?: ReadonlyArray<string>
  /** Subject patterns (`etl.*`, `reports.>`, `webapp.*`): an actor runs when its domain matches one. */
  readonly subjects?: ReadonlyArray<string>
}

/** The selection matched no actor. @category errors @since 0.1.0 */
export class NothingToRun extends Data.TaggedError("NothingToRun")<{
  readonly selection: Selection
  readonly available: ReadonlyArray<string>
}> {
  override get message() {
    return `no actor matches the selection ${JSON.stringify(this.selection)} (actors: ${this.available.join(", ") || "none"}): ` +
      "check --pools, --actors and --subjects"
  }
}

/** @category models @since 0.1.0 */
export interface ActorState {
  readonly name: string
  readonly pool: string
  readonly paused: boolean
  /** Handlers running now. */
  readonly inFlight: number
  /** Messages held: running, waiting to start, being settled. */
  readonly held: number
  readonly concurrency: number
  readonly restarts: number
  /** Its consume loop is running (pulling from its consumers); false while the supervisor restarts it. */
  readonly consuming: boolean
}

/** One pool of this worker. @category models @since 0.1.0 */
export interface PoolState {
  readonly name: string
  /** Its concurrency budget. */
  readonly size: number
  /** Slots taken by running handlers now. */
  readonly inFlight: number
}

/** The running worker. @category services @since 0.1.0 */
export class Worker extends Context.Service<Worker, {
  readonly id: string
  readonly actors: ReadonlyArray<string>
  /** When it started, epoch ms. */
  readonly startedAt: number
  readonly state: Effect.Effect<ReadonlyArray<ActorState>>
  readonly pools: Effect.Effect<ReadonlyArray<PoolState>>
  /** Handlers running now, across all actors. */
  readonly inFlight: Effect.Effect<number>
  /** Pauses or resumes an actor or pool in THIS worker only; use `Control` for every worker. */
  readonly setPaused: (target: Control.Target, paused: boolean) => Effect.Effect<void>
}>()("msgsys/Worker") {}

/** @category metrics @since 0.1.0 */
export const inFlightGauge = Metric.gauge("msgsys_worker_in_flight", {
  description: "Handlers running, by actor"
})

const matches = (pattern: string, domain: string) => {
  const first = pattern.split(".", 1)[0]!
  return first === "*" || first === ">" || first === domain
}

/** The subject domain of an actor (its name) or of an event group (its events' first token). */
const domainOfRunnable = (r: Actor.Runnable): string => (Subscriber.isSubscriber(r) ? r.domain : r.name)

/**
 * The actors and event groups a selection picks: by pool, by name (`--actors`, group names
 * included), by subject domain (`--subjects`).
 * @category selection @since 0.1.0
 */
export const select = <R extends Actor.Runnable>(runnables: ReadonlyArray<R>, selection: Selection): ReadonlyArray<R> =>
  runnables.filter((a) =>
    (!selection.pools?.length || selection.pools.includes(a.pool)) &&
    (!selection.actors?.length || selection.actors.includes(a.name)) &&
    (!selection.subjects?.length || selection.subjects.some((p) => matches(p, domainOfRunnable(a))))
  )

/** @category models @since 0.1.0 */
export interface Options<Actors extends ReadonlyArray<Actor.Any>, Groups extends ReadonlyArray<Subscriber.Any> = readonly []> {
  readonly actors: Actors
  /** Event groups this program handles. */
  readonly subscribers?: Groups
  /** Events this program publishes: their streams are declared at start even if no group of its own reads them. */
  readonly events?: ReadonlyArray<Event.Any>
  readonly selection?: Selection
  /** Messages held beyond an actor's free slots. Default a quarter of its concurrency, at most 64. */
  readonly prefetch?: number
}

/** @category models @since 0.1.0 */
export type Requirements<Actors extends ReadonlyArray<Actor.Any>, Groups extends ReadonlyArray<Subscriber.Any> = readonly []> =
  | Nats
  | MsgsysConfig
  | Results
  | CancelRequests
  | Ledger
  | Control.Control
  | Actor.HandlersOf<Actors[number]["name"]>
  | Actor.HandlersOf<Groups[number]["name"]>

/** How long a stopping worker keeps listening after handing messages back. */
const handBackSettle = Duration.millis(150)

/** How often the ticker runs: the resolution of timeouts and "running" statuses. */
const tickEvery = Duration.millis(100)

/**
 * Starts a worker for the selected actors; it stops gracefully when the scope closes.
 * @category constructors @since 0.1.0
 */
export const make = <const Actors extends ReadonlyArray<Actor.Any>, const Groups extends ReadonlyArray<Subscriber.Any> = readonly []>(
  options: Options<Actors, Groups>
) =>
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    const nats = yield* Nats
    const results = yield* Results
    const cancels = yield* CancelRequests
    const ledger = yield* Ledger
    const control = yield* Control.Control
    const names = Subjects.make(config.streamPrefix)
    const id = `${hostname()}-${process.pid}-${(yield* MessageId.make).slice(-6)}`
    const startedAt = yield* Clock.currentTimeMillis

    const selection = options.selection ?? {}
    const actors = select(options.actors, selection)
    const groups = select(options.subscribers ?? [], selection)
    const all: ReadonlyArray<Actor.Runnable> = [...actors, ...groups]
    if (all.length === 0) {
      return yield* new NothingToRun({
        selection,
        available: [...options.actors, ...(options.subscribers ?? [])].map((a) => a.name)
      })
    }
    const taken = new Set<string>()
    for (const r of all) {
      if (taken.has(r.name)) {
        return yield* Effect.die(new Error(`an actor and an event group are both named ${r.name}: rename one (they share pauses and metrics)`))
      }
      taken.add(r.name)
    }
    const pools = yield* Pool.makeAll(config.pools, all)
    for (const g of groups) {
      const size = pools.get(g.pool)!.slots.size
      if (g.batch !== undefined && g.batch > size) {
        yield* Effect.logWarning(
          `event group ${g.name} asks for batches of ${g.batch} but its pool ${g.pool} has ${size} slots: its batches ` +
            `hold at most ${size} events; raise the pool (MSGSYS_POOLS="${g.pool}=${g.batch}") or lower the batch`
        )
      }
    }
    // one stream per events domain: its limits come from every event definition the program has
    const limits = yield* Effect.try({
      try: () => EventTopology.retentions([...(options.subscribers ?? []).flatMap((g) => g.events), ...(options.events ?? [])]),
      catch: (e) => e
    }).pipe(Effect.orDie)
    const declare = (r: Actor.Runnable) =>
      Topology.apply(
        Subscriber.isSubscriber(r) ? EventTopology.forSubscriber(names, r, config, limits) : ActorTopology.forActor(names, r as Actor.Any, config)
      )
    yield* Topology.apply(ActorTopology.shared(names, config))
    if (options.events !== undefined && options.events.length > 0) {
      yield* Topology.apply(EventTopology.forEvents(names, options.events, config, limits))
    }
    for (const r of all) yield* declare(r)

    const consumerExists = (stream: string, consumer: string) => () =>
      nats.manager.consumers.info(stream, consumer).then(() => true, () => false)
    // the ack_wait the server really uses (another worker may have declared it): heartbeats follow it
    const consumerOf = (r: Actor.Runnable) =>
      Subscriber.isSubscriber(r)
        ? { stream: names.eventStream(r.domain), consumer: r.name }
        : { stream: names.taskStream(r.name), consumer: names.taskConsumer(r.name, "normal") }
    const realAckWait = (actor: Actor.Runnable) =>
      Effect.tryPromise(() => nats.manager.consumers.info(consumerOf(actor).stream, consumerOf(actor).consumer)).pipe(
        Effect.map((info) => Math.round(Number(info.config.ack_wait ?? 0) / 1e6)),
        Effect.orElseSucceed(() => 0),
        Effect.map((ms) => ms > 0 ? ms : Duration.toMillis(actor.ackWait ?? config.ackWait))
      )

    const moveToDeadLetters = (r: Dispatcher.DeadLetterRequest) =>
      DeadLetters.move(nats, names, {
        stream: r.delivery.stream,
        sequence: r.delivery.streamSequence,
        storedSubject: r.delivery.subject,
        headers: r.delivery.headers,
        body: r.delivery.data,
        storedAt: r.delivery.storedAt
      }, {
        taskId: r.envelope.id,
        subject: r.subject,
        actor: r.actor,
        tenant: r.envelope.tenant,
        reason: r.reason,
        error: r.error,
        attempts: r.attempts,
        history: r.history,
        deadLetteredAt: Date.now()
      })

    // pipeline steps enqueue their next step before their ack (the bucket opens on first use)
    const continuation = yield* Continuation.make({
      publisher: nats.publisher,
      names,
      maxPayload: () => nats.server.maxPayload,
      results,
      store: yield* KvPipelineStore.make(names, config.resultTtl)
    })

    const dispatchers = new Map<string, Dispatcher.Dispatcher>()
    // an event group's key scope by stream sequence, replaced when a replay changes its epochs
    const scopes = new Map<string, { scopeOf: (streamSequence: number) => string }>()
    const restarts = new Map<string, number>()
    const consuming = new Set<string>()
    const loops: Array<Fiber.Fiber<never>> = []
    for (const actor of all) {
      const handlers = (yield* actor.Handlers) as Actor.AnyHandlers
      const group = Subscriber.isSubscriber(actor)
      const scope = { scopeOf: ReplayEpochs.scopeOf(actor.name, ReplayEpochs.initial) }
      if (group) scopes.set(actor.name, scope)
      dispatchers.set(actor.name, yield* Dispatcher.make({
        workerId: id,
        actor,
        handlers,
        names,
        poolName: actor.pool,
        poolSlots: pools.get(actor.pool)!.slots,
        ledger,
        results,
        moveToDeadLetters,
        ackWaitMs: yield* realAckWait(actor),
        prefetch: options.prefetch,
        // an event group: its one consumer, its own keys (one event, many groups), no task statuses
        ...(group
          ? { priorities: ["normal"] as const, keyScope: (sequence: number) => scope.scopeOf(sequence), statuses: false }
          : { afterSucceeded: continuation })
      }))
      restarts.set(actor.name, 0)
    }

    // Pauses, replays and cancels every worker shares, loaded BEFORE the first pull: a paused
    // actor must not take a batch, a replayed event must not be taken for a duplicate, a cancelled
    // task must not start (the watches replay the current state before they return).
    const actorPaused = new Map<string, boolean>()
    const poolPaused = new Map<string, boolean>()
    const setPaused = (target: Control.Target, paused: boolean) =>
      Effect.suspend(() => {
        const known = target.kind === "actor" ? dispatchers.has(target.name) : pools.has(target.name)
        if (!known) return Effect.void
        ;(target.kind === "actor" ? actorPaused : poolPaused).set(target.name, paused)
        for (const d of dispatchers.values()) {
          d.setPaused((actorPaused.get(d.actor.name) ?? false) || (poolPaused.get(d.actor.pool) ?? false))
        }
        return Effect.logInfo(`${target.kind} ${target.name} ${paused ? "paused" : "resumed"}`)
      })
    const context = yield* Effect.context<never>()
    const setEpochs = (group: string, epochs: ReplayEpochs.Epochs) =>
      Effect.suspend(() => {
        const scope = scopes.get(group)
        if (scope === undefined) return Effect.void
        scope.scopeOf = ReplayEpochs.scopeOf(group, epochs)
        const last = epochs.replays.at(-1)
        return last === undefined
          ? Effect.void
          : Effect.logInfo(`event group ${group}: events from stream sequence ${last.from} on run under replay epoch ${last.epoch}`)
      })
    const onControl = (change: Control.Change) =>
      change._tag === "Pause"
        ? setPaused(change.target, change.paused)
        : change._tag === "Replay"
        ? setEpochs(change.group, change.epochs)
        : Effect.logWarning(`control key ${change.key} does not read: ignored (remove it with \`nats kv del\`)`)
    // in order: a replay's resume must not overtake its epoch
    yield* control.watch((change) => void Effect.runSyncWith(context)(onControl(change)))
    yield* cancels.watch((taskId) => {
      for (const d of dispatchers.values()) d.cancel(taskId)
    })

    // pulls in flight when the connection dropped are gone with it: ask again at once
    yield* nats.onReconnect(() => {
      for (const d of dispatchers.values()) d.reconnected()
    })

    // one ticker for every heartbeat, lease renewal, timeout and "running" status
    loops.push(yield* Effect.forkScoped(
      Effect.sync(() => {
        for (const d of dispatchers.values()) {
          d.tick()
          Metric.withAttributes(inFlightGauge, { actor: d.actor.name }).updateUnsafe(d.state().running, context)
        }
      }).pipe(Effect.repeat(Schedule.spaced(tickEvery)), Effect.andThen(Effect.never))
    ))

    const supervised = <E>(actor: Actor.Runnable, what: string, loop: Effect.Effect<never, E, Scope.Scope>) =>
      Supervisor.supervise(`${what} of ${actor.name}`, Effect.scoped(loop), {
        // the usual cause is a consumer deleted from under the loop: declare it again
        beforeRestart: Effect.ignore(declare(actor)).pipe(Effect.provideService(Nats, nats)),
        attributes: { actor: actor.name },
        onRestart: () => restarts.set(actor.name, (restarts.get(actor.name) ?? 0) + 1)
      }).pipe(Effect.forkScoped)

    for (const actor of actors) {
      const dispatcher = dispatchers.get(actor.name)!
      const stream = names.taskStream(actor.name)
      const consume = dispatcher.connect((priority, listener) => {
        const consumer = names.taskConsumer(actor.name, priority)
        return Pull.make(nats.connection, stream, consumer, listener, { consumerExists: consumerExists(stream, consumer) })
      })
      // what readiness reports as "consumers bound": the loop runs, it is not waiting for a restart
      loops.push(yield* supervised(actor, "consume loop", Effect.sync(() => consuming.add(actor.name)).pipe(
        Effect.andThen(consume),
        Effect.ensuring(Effect.sync(() => consuming.delete(actor.name)))
      )))
      const delayed = names.taskConsumer(actor.name, "delayed")
      loops.push(yield* supervised(actor, "delay mover", DelayMover.run({
        nc: nats.connection,
        publisher: nats.publisher,
        names,
        stream,
        consumer: delayed,
        consumerExists: consumerExists(stream, delayed)
      })))
      const advisories = ActorTopology.advisoryStream(names, actor.name)
      loops.push(yield* supervised(actor, "max-deliveries sweeper", MaxDeliveries.run({
        nats,
        names,
        actor: actor.name,
        pool: actor.pool,
        stream: advisories,
        consumer: ActorTopology.advisoryConsumer,
        results,
        ledger,
        consumerExists: consumerExists(advisories, ActorTopology.advisoryConsumer)
      })))
      loops.push(yield* supervised(actor, "stream sweeper", StreamSweeper.run({
        jsm: nats.manager,
        names,
        stream,
        results,
        interval: config.sweepInterval
      })))
    }
    for (const group of groups) {
      const { stream, consumer } = consumerOf(group)
      const consume = dispatchers.get(group.name)!.connect((_, listener) =>
        Pull.make(nats.connection, stream, consumer, listener, { consumerExists: consumerExists(stream, consumer) })
      )
      loops.push(yield* supervised(group, "consume loop", Effect.sync(() => consuming.add(group.name)).pipe(
        Effect.andThen(consume),
        Effect.ensuring(Effect.sync(() => consuming.delete(group.name)))
      )))
    }
    // one sweeper per events domain: it dead-letters the events any of its groups gave up on
    for (const domain of new Set(groups.map((g) => g.domain))) {
      const first = groups.find((g) => g.domain === domain)!
      const advisories = names.eventAdvisoryStream(domain)
      loops.push(yield* supervised(first, "max-deliveries sweeper", MaxDeliveries.run({
        nats,
        names,
        actor: domain,
        pool: first.pool,
        events: true,
        stream: advisories,
        consumer: EventTopology.advisoryConsumer,
        results,
        ledger,
        consumerExists: consumerExists(advisories, EventTopology.advisoryConsumer)
      })))
    }

    // Graceful shutdown. Finalizers run in reverse order, so this runs before the loops' scope
    // is torn down: stop pulling and hand back what has not started, wait for in-flight work,
    // then interrupt what is left and hand it back too.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        for (const d of dispatchers.values()) d.stop()
        const unfinished = [...dispatchers.values()].reduce((n, d) => n + d.state().held, 0)
        const allIdle = Effect.forEach(dispatchers.values(), (d) => d.idle, { discard: true })
        if (unfinished > 0) {
          yield* Effect.logInfo(`shutting down: waiting up to ${Duration.format(config.shutdownGrace)} for ${unfinished} task(s)`)
          const finished = yield* allIdle.pipe(Effect.timeoutOption(config.shutdownGrace))
          if (Option.isNone(finished)) {
            const left = [...dispatchers.values()].reduce((n, d) => n + d.state().held, 0)
            yield* Effect.logWarning(`grace period over: handing ${left} task(s) back for redelivery`)
            for (const d of dispatchers.values()) d.abandon()
            // settling what was interrupted: bounded too (an unsettled message comes back after ack_wait)
            yield* allIdle.pipe(Effect.timeoutOption(config.shutdownGrace))
          }
        }
        // A message handed back may be given at once to one of this worker's own long polls: keep
        // listening until the server has seen every nak, so such a message is handed back again
        // rather than stranded in a closed inbox until ack_wait. Without a server there is nobody
        // to tell: what is held comes back after ack_wait.
        if (nats.connected()) {
          yield* Effect.ignore(Effect.tryPromise(() => nats.connection.flush()))
          yield* Effect.sleep(handBackSettle)
          yield* Effect.ignore(Effect.tryPromise(() => nats.connection.flush()))
        }
        yield* Effect.forEach(loops, Fiber.interrupt, { discard: true })
        yield* Effect.logInfo(`worker ${id} stopped`)
      })
    )

    yield* Effect.logInfo(`worker ${id} running ${all.map((a) => `${a.name} (${a.pool})`).join(", ")}`)

    return Worker.of({
      id,
      actors: all.map((a) => a.name),
      startedAt,
      pools: Effect.sync(() =>
        [...pools.values()].map((p) => ({ name: p.name, size: p.slots.size, inFlight: p.slots.inUse() }))
      ),
      inFlight: Effect.sync(() => [...dispatchers.values()].reduce((n, d) => n + d.state().running, 0)),
      setPaused,
      state: Effect.sync(() =>
        all.map((a) => {
          const s = dispatchers.get(a.name)!.state()
          return {
            name: a.name,
            pool: a.pool,
            paused: s.paused,
            inFlight: s.running,
            held: s.held,
            concurrency: a.concurrency,
            restarts: restarts.get(a.name) ?? 0,
            consuming: consuming.has(a.name)
          }
        })
      )
    })
  })

/** A worker as a layer. @category layers @since 0.1.0 */
export const layer = <const Actors extends ReadonlyArray<Actor.Any>, const Groups extends ReadonlyArray<Subscriber.Any> = readonly []>(
  options: Options<Actors, Groups>
): Layer.Layer<Worker, NothingToRun | Pool.UnknownPool | Topology.TopologyConflict | BrokerError, Requirements<Actors, Groups>> =>
  Layer.effect(Worker, make(options))
