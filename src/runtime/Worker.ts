/**
 * A worker: runs the consume loops of a set of actors in their pools, each supervised, with the
 * delay mover and the max-deliveries sweeper beside them; applies the pauses and cancels every
 * worker shares; and shuts down gracefully when its scope closes (guarantee 7): stop pulling, let
 * in-flight work finish within the grace period, nak what is left for immediate redelivery. The
 * audit log and the NATS connection, layers below this one, flush and drain after it.
 * @since 0.1.0
 */
import { Context, Data, Duration, Effect, Fiber, FiberSet, Latch, Layer, Metric, Option, type Scope } from "effect"
import { hostname } from "node:os"
import * as Actor from "../actor/Actor.ts"
import * as Supervisor from "../actor/Supervisor.ts"
import { AuditLog } from "../audit/AuditLog.ts"
import type { BrokerError } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Pull from "../broker/Pull.ts"
import * as Subjects from "../broker/Subjects.ts"
import * as Topology from "../broker/Topology.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as MaxDeliveries from "../dlq/MaxDeliveries.ts"
import * as MessageId from "../envelope/MessageId.ts"
import { Idempotency } from "../idempotency/Idempotency.ts"
import * as Pool from "../pool/Pool.ts"
import * as Slots from "../pool/Slots.ts"
import { Results } from "../task/Results.ts"
import { TaskCancelled } from "../task/TaskError.ts"
import * as ActorTopology from "./ActorTopology.ts"
import * as ConsumeLoop from "./ConsumeLoop.ts"
import { Control, type Target } from "./Control.ts"
import * as DelayMover from "./DelayMover.ts"
import * as Dispatch from "./Dispatch.ts"
import * as Partitions from "./Partitions.ts"
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
  readonly inFlight: number
  readonly concurrency: number
  readonly restarts: number
}

/** The running worker. @category services @since 0.1.0 */
export class Worker extends Context.Service<Worker, {
  readonly id: string
  readonly actors: ReadonlyArray<string>
  readonly state: Effect.Effect<ReadonlyArray<ActorState>>
  /** Messages being handled now, across all actors. */
  readonly inFlight: Effect.Effect<number>
  /** Pauses or resumes an actor or pool in THIS worker only; use `Control` for every worker. */
  readonly setPaused: (target: Target, paused: boolean) => Effect.Effect<void>
}>()("msgsys/Worker") {}

const maxRememberedCancels = 100_000

/** @category metrics @since 0.1.0 */
export const inFlightGauge = Metric.gauge("msgsys_worker_in_flight", {
  description: "Messages being handled, by actor"
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
  /** How long an idle loop sleeps before looking again. Default 1 second. */
  readonly pollInterval?: Duration.Input
}

/** @category models @since 0.1.0 */
export type Requirements<Actors extends ReadonlyArray<Actor.Any>> =
  | Nats
  | MsgsysConfig
  | Results
  | AuditLog
  | Idempotency
  | Control
  | Actor.HandlersOf<Actors[number]["name"]>

/**
 * Starts a worker for the selected actors; it stops gracefully when the scope closes.
 * @category constructors @since 0.1.0
 */
export const make = <const Actors extends ReadonlyArray<Actor.Any>>(options: Options<Actors>) =>
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    const nats = yield* Nats
    const results = yield* Results
    const audit = yield* AuditLog
    const idempotency = yield* Idempotency
    const control = yield* Control
    const names = Subjects.make(config.streamPrefix)
    const id = `${hostname()}-${process.pid}-${(yield* MessageId.make).slice(-6)}`

    const actors = select(options.actors, options.selection ?? {})
    if (actors.length === 0) {
      return yield* new NothingToRun({ selection: options.selection ?? {}, available: options.actors.map((a) => a.name) })
    }
    const pools = yield* Pool.makeAll(config.pools, actors)
    const settings = { ackWait: config.ackWait, resultTtl: config.resultTtl }
    const declareActor = (actor: Actor.Any) => Topology.apply(ActorTopology.forActor(names, actor, settings))
    yield* Topology.apply(ActorTopology.shared(names, settings))
    for (const actor of actors) yield* declareActor(actor)

    const inflight = yield* FiberSet.make<void, never>()
    // Cancel requests seen (the watch replays those within the results TTL). Bounded: the oldest
    // go first, and a task that old has long been settled.
    const cancelled = new Set<string>()
    const running = new Map<string, (reason: TaskCancelled) => void>()
    yield* results.watchCancels((taskId) => {
      cancelled.add(taskId)
      if (cancelled.size > maxRememberedCancels) cancelled.delete(cancelled.values().next().value!)
      running.get(taskId)?.(new TaskCancelled({ taskId }))
    })

    const actorGates = new Map<string, Latch.Latch>()
    const restarts = new Map<string, number>()
    // messages being dispatched per actor; not the actor's slots, which a loop waiting for its
    // pool holds without running anything
    const busy = new Map<string, number>()
    const setPaused = (target: Target, paused: boolean) =>
      Effect.suspend(() => {
        const gate = target.kind === "actor" ? actorGates.get(target.name) : pools.get(target.name)?.running
        if (!gate) return Effect.void
        return Effect.andThen(
          paused ? gate.close : gate.open,
          Effect.logInfo(`${target.kind} ${target.name} ${paused ? "paused" : "resumed"}`)
        )
      })
    const context = yield* Effect.context<never>()
    yield* control.watch((target, paused) => Effect.runForkWith(context)(setPaused(target, paused)))

    const pullerOf = (stream: string, consumer: string) =>
      Pull.make(
        nats.connection,
        stream,
        consumer,
        Effect.tryPromise(() => nats.manager.consumers.info(stream, consumer)).pipe(
          Effect.as(true),
          Effect.orElseSucceed(() => false)
        )
      )

    const loops: Array<Fiber.Fiber<never>> = []
    for (const actor of actors) {
      const handlers = (yield* actor.Handlers) as Actor.AnyHandlers
      const pool = pools.get(actor.pool)!
      const actorSlots = Slots.make(actor.concurrency)
      busy.set(actor.name, 0)
      const gate = yield* Latch.make(true)
      actorGates.set(actor.name, gate)
      restarts.set(actor.name, 0)
      const stream = names.taskStream(actor.name)
      const context: Dispatch.Context = {
        workerId: id,
        actor,
        handlers,
        names,
        js: nats.jetstream,
        results,
        audit,
        idempotency,
        ackWait: actor.ackWait ?? config.ackWait,
        partitions: Partitions.make(),
        cancelled,
        running,
        poolName: actor.pool
      }
      const supervised = <E>(what: string, loop: Effect.Effect<never, E, Scope.Scope>) =>
        Supervisor.supervise(`${what} of ${actor.name}`, Effect.scoped(loop), {
          // the usual cause is a consumer deleted from under the loop: declare it again
          beforeRestart: Effect.ignore(declareActor(actor)).pipe(Effect.provideService(Nats, nats)),
          onRestart: () => restarts.set(actor.name, (restarts.get(actor.name) ?? 0) + 1)
        }).pipe(Effect.forkScoped)

      const subjects = names.actorSubjects(actor.name)
      const inFlightOfActor = Metric.withAttributes(inFlightGauge, { actor: actor.name })
      const countBusy = (delta: number) =>
        Effect.suspend(() => {
          const n = busy.get(actor.name)! + delta
          busy.set(actor.name, n)
          return Metric.update(inFlightOfActor, n)
        })
      loops.push(yield* supervised("consume loop", Effect.gen(function*() {
        const pullers = yield* Effect.forEach(Subjects.priorities, (p) =>
          Effect.map(pullerOf(stream, names.taskConsumer(actor.name, p)), (puller) => [p, puller] as const))
        return yield* ConsumeLoop.run({
          nc: nats.connection,
          pool,
          actorSlots,
          actorRunning: gate,
          pullers,
          wakeSubjects: [subjects.high, subjects.normal, subjects.low],
          dispatch: (d) =>
            Effect.andThen(countBusy(1), Dispatch.dispatch(context, d)).pipe(Effect.ensuring(countBusy(-1))),
          inflight,
          ...(options.pollInterval !== undefined ? { pollInterval: options.pollInterval } : {})
        })
      })))
      loops.push(yield* supervised("delay mover", Effect.gen(function*() {
        const puller = yield* pullerOf(stream, names.taskConsumer(actor.name, "delayed"))
        return yield* DelayMover.run({ js: nats.jetstream, names, puller })
      })))
      loops.push(yield* supervised("max-deliveries sweeper", Effect.gen(function*() {
        const puller = yield* pullerOf(ActorTopology.advisoryStream(names, actor.name), ActorTopology.advisoryConsumer)
        return yield* MaxDeliveries.run({
          js: nats.jetstream,
          jsm: nats.manager,
          names,
          actor: actor.name,
          pool: actor.pool,
          puller,
          results,
          audit
        })
      })))
      loops.push(yield* supervised("stream sweeper", StreamSweeper.run({
        jsm: nats.manager,
        names,
        stream,
        results,
        interval: config.sweepInterval
      })))
    }

    // Graceful shutdown. Finalizers run in reverse order, so this runs before the loops' scope
    // is torn down: first stop pulling, then wait for in-flight work, then hand back the rest.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Effect.forEach(loops, Fiber.interrupt, { discard: true })
        const unfinished = yield* FiberSet.size(inflight)
        if (unfinished > 0) {
          yield* Effect.logInfo(`shutting down: waiting up to ${Duration.format(config.shutdownGrace)} for ${unfinished} task(s)`)
          const finished = yield* FiberSet.awaitEmpty(inflight).pipe(Effect.timeoutOption(config.shutdownGrace))
          if (Option.isNone(finished)) {
            const left = yield* FiberSet.size(inflight)
            yield* Effect.logWarning(`grace period over: handing ${left} task(s) back for redelivery`)
          }
        }
        // interrupting a run that is settling waits for the settle; a broker that is away could
        // hold that up, so it is bounded too (an unsettled message is redelivered after ack_wait)
        yield* FiberSet.clear(inflight).pipe(Effect.timeoutOption(config.shutdownGrace))
        yield* Effect.logInfo(`worker ${id} stopped`)
      })
    )

    yield* Effect.logInfo(`worker ${id} running ${actors.map((a) => `${a.name} (${a.pool})`).join(", ")}`)

    return Worker.of({
      id,
      actors: actors.map((a) => a.name),
      inFlight: FiberSet.size(inflight),
      setPaused,
      state: Effect.sync(() =>
        actors.map((a) => ({
          name: a.name,
          pool: a.pool,
          paused: !(actorGates.get(a.name)!.isOpen()) || !pools.get(a.pool)!.running.isOpen(),
          inFlight: busy.get(a.name) ?? 0,
          concurrency: a.concurrency,
          restarts: restarts.get(a.name) ?? 0
        }))
      )
    })
  })

/** A worker as a layer. @category layers @since 0.1.0 */
export const layer = <const Actors extends ReadonlyArray<Actor.Any>>(
  options: Options<Actors>
): Layer.Layer<Worker, NothingToRun | Pool.UnknownPool | Topology.TopologyConflict | BrokerError, Requirements<Actors>> =>
  Layer.effect(Worker, make(options))
