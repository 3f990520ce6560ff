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
import { Results } from "../task/Results.ts"
import * as ActorTopology from "./ActorTopology.ts"
import { Control, type Target } from "./Control.ts"
import * as DelayMover from "./DelayMover.ts"
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
  readonly setPaused: (target: Target, paused: boolean) => Effect.Effect<void>
}>()("msgsys/Worker") {}

/** @category metrics @since 0.1.0 */
export const inFlightGauge = Metric.gauge("msgsys_worker_in_flight", {
  description: "Handlers running, by actor"
})

const matches = (pattern: string, domain: string) => {
  const first = pattern.split(".", 1)[0]!
  return first === "*" || first === ">" || first === domain
}

/** The actors a selection picks. @category selection @since 0.1.0 */
export const select = (actors: ReadonlyArray<Actor.Any>, selection: Selection): ReadonlyArray<Actor.Any> =>
  actors.filter((a) =>
    (!selection.pools?.length || selection.pools.includes(a.pool)) &&
    (!selection.actors?.length || selection.actors.includes(a.name)) &&
    (!selection.subjects?.length || selection.subjects.some((p) => matches(p, a.name)))
  )

/** @category models @since 0.1.0 */
export interface Options<Actors extends ReadonlyArray<Actor.Any>> {
  readonly actors: Actors
  readonly selection?: Selection
  /** Messages held beyond an actor's free slots. Default min(concurrency, 32). */
  readonly prefetch?: number
}

/** @category models @since 0.1.0 */
export type Requirements<Actors extends ReadonlyArray<Actor.Any>> =
  | Nats
  | MsgsysConfig
  | Results
  | Ledger
  | Control
  | Actor.HandlersOf<Actors[number]["name"]>

/** How long a stopping worker keeps listening after handing messages back. */
const handBackSettle = Duration.millis(150)

/** How often the ticker runs: the resolution of timeouts and "running" statuses. */
const tickEvery = Duration.millis(100)

/**
 * Starts a worker for the selected actors; it stops gracefully when the scope closes.
 * @category constructors @since 0.1.0
 */
export const make = <const Actors extends ReadonlyArray<Actor.Any>>(options: Options<Actors>) =>
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    const nats = yield* Nats
    const results = yield* Results
    const ledger = yield* Ledger
    const control = yield* Control
    const names = Subjects.make(config.streamPrefix)
    const id = `${hostname()}-${process.pid}-${(yield* MessageId.make).slice(-6)}`
    const startedAt = yield* Clock.currentTimeMillis

    const actors = select(options.actors, options.selection ?? {})
    if (actors.length === 0) {
      return yield* new NothingToRun({ selection: options.selection ?? {}, available: options.actors.map((a) => a.name) })
    }
    const pools = yield* Pool.makeAll(config.pools, actors)
    const declareActor = (actor: Actor.Any) => Topology.apply(ActorTopology.forActor(names, actor, config))
    yield* Topology.apply(ActorTopology.shared(names, config))
    for (const actor of actors) yield* declareActor(actor)

    const consumerExists = (stream: string, consumer: string) => () =>
      nats.manager.consumers.info(stream, consumer).then(() => true, () => false)
    // the ack_wait the server really uses (another worker may have declared it): heartbeats follow it
    const realAckWait = (actor: Actor.Any) =>
      Effect.tryPromise(() => nats.manager.consumers.info(names.taskStream(actor.name), names.taskConsumer(actor.name, "normal"))).pipe(
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

    const dispatchers = new Map<string, Dispatcher.Dispatcher>()
    const restarts = new Map<string, number>()
    const consuming = new Set<string>()
    const loops: Array<Fiber.Fiber<never>> = []
    for (const actor of actors) {
      const handlers = (yield* actor.Handlers) as Actor.AnyHandlers
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
        prefetch: options.prefetch
      }))
      restarts.set(actor.name, 0)
    }

    // Pauses and cancels every worker shares, loaded BEFORE the first pull: a paused actor must
    // not take a batch, a cancelled task must not start (the watches replay the current state
    // before they return).
    const actorPaused = new Map<string, boolean>()
    const poolPaused = new Map<string, boolean>()
    const setPaused = (target: Target, paused: boolean) =>
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
    yield* control.watch((target, paused) => Effect.runForkWith(context)(setPaused(target, paused)))
    yield* results.watchCancels((taskId) => {
      for (const d of dispatchers.values()) d.cancel(taskId)
    })

    // pulls in flight when the connection dropped are gone with it: ask again at once
    loops.push(yield* Effect.forkScoped(Effect.promise(async () => {
      for await (const s of nats.connection.status()) {
        if (s.type === "reconnect") for (const d of dispatchers.values()) d.reconnected()
      }
    }).pipe(Effect.andThen(Effect.never))))

    // one ticker for every heartbeat, lease renewal, timeout and "running" status
    loops.push(yield* Effect.forkScoped(
      Effect.sync(() => {
        for (const d of dispatchers.values()) {
          d.tick()
          Metric.withAttributes(inFlightGauge, { actor: d.actor.name }).updateUnsafe(d.state().running, context)
        }
      }).pipe(Effect.repeat(Schedule.spaced(tickEvery)), Effect.andThen(Effect.never))
    ))

    const supervised = <E>(actor: Actor.Any, what: string, loop: Effect.Effect<never, E, Scope.Scope>) =>
      Supervisor.supervise(`${what} of ${actor.name}`, Effect.scoped(loop), {
        // the usual cause is a consumer deleted from under the loop: declare it again
        beforeRestart: Effect.ignore(declareActor(actor)).pipe(Effect.provideService(Nats, nats)),
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
        // rather than stranded in a closed inbox until ack_wait.
        yield* Effect.ignore(Effect.tryPromise(() => nats.connection.flush()))
        yield* Effect.sleep(handBackSettle)
        yield* Effect.ignore(Effect.tryPromise(() => nats.connection.flush()))
        yield* Effect.forEach(loops, Fiber.interrupt, { discard: true })
        yield* Effect.logInfo(`worker ${id} stopped`)
      })
    )

    yield* Effect.logInfo(`worker ${id} running ${actors.map((a) => `${a.name} (${a.pool})`).join(", ")}`)

    return Worker.of({
      id,
      actors: actors.map((a) => a.name),
      startedAt,
      pools: Effect.sync(() =>
        [...pools.values()].map((p) => ({ name: p.name, size: p.slots.size, inFlight: p.slots.inUse() }))
      ),
      inFlight: Effect.sync(() => [...dispatchers.values()].reduce((n, d) => n + d.state().running, 0)),
      setPaused,
      state: Effect.sync(() =>
        actors.map((a) => {
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
export const layer = <const Actors extends ReadonlyArray<Actor.Any>>(
  options: Options<Actors>
): Layer.Layer<Worker, NothingToRun | Pool.UnknownPool | Topology.TopologyConflict | BrokerError, Requirements<Actors>> =>
  Layer.effect(Worker, make(options))
