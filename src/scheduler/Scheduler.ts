/**
 * A scheduler replica: it watches the schedules bucket and, for each active schedule, sleeps until
 * its next tick, enqueues the tick's task and records the tick. Any number of replicas may run, on
 * any hosts; each tick is enqueued exactly once:
 *
 * - a tick's task has a deterministic id (`Ticks.taskId`: schedule name + tick time), sent as
 *   `Nats-Msg-Id`, so replicas that enqueue the same tick at once are deduplicated by the stream
 *   (within its duplicate window, 2 minutes by default);
 * - the last tick of each schedule is recorded with compare-and-set, and a replica plans from it,
 *   read just before it enqueues, so a replica that starts (or wakes) late never enqueues a tick
 *   another has recorded, however old;
 * - the tick's task id is also its enqueue key: the results bucket remembers which task the tick
 *   made, and the worker's idempotency key is the tick, so even a copy that slipped past both
 *   would return the stored outcome instead of running again (and a task that derives its key
 *   from its input alone still runs on every tick).
 *
 * Missed ticks (all replicas down, or the schedule paused) follow the schedule's policy (see
 * `Ticks`). A failing enqueue is logged and retried with backoff, then the pass is planned again;
 * an input that can never be enqueued (it no longer matches the task's schema) is logged as an
 * error and that tick passed over. Each schedule's loop is supervised; a change in the bucket
 * restarts it at once.
 * @since 0.1.0
 */
import { Cause, Clock, Context, Data, Duration, Effect, Exit, FiberMap, Layer, Metric, Option, Schedule } from "effect"
import { hostname } from "node:os"
import * as Supervisor from "../actor/Supervisor.ts"
import type { BrokerError } from "../broker/BrokerError.ts"
import type { Nats } from "../broker/Nats.ts"
import type * as Topology from "../broker/Topology.ts"
import type { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as MessageId from "../envelope/MessageId.ts"
import * as Payload from "../envelope/Payload.ts"
import * as Client from "../client/Client.ts"
import type * as Task from "../task/Task.ts"
import * as KvScheduleStore from "./KvScheduleStore.ts"
import * as ScheduleRecord from "./ScheduleRecord.ts"
import * as Schedules from "./Schedules.ts"
import { ScheduleStore } from "./ScheduleStore.ts"
import * as Ticks from "./Ticks.ts"
import * as Trigger from "./Trigger.ts"

/** @category services @since 0.1.0 */
export class Scheduler extends Context.Service<Scheduler, {
  /** This replica: `<host>-<pid>-<random>`. */
  readonly id: string
  /** The schedules this replica runs now (active ones; paused ones are not run). */
  readonly running: Effect.Effect<ReadonlyArray<string>>
}>()("msgsys/Scheduler") {}

/** @category models @since 0.1.0 */
export interface Options {
  /** Task definitions: a tick of one of these is checked against its input schema before it is enqueued. */
  readonly tasks?: ReadonlyArray<Task.Any>
  /** How late the latest due tick may be and still count as on time. Default 1 minute. */
  readonly grace?: Duration.Input
}

/** @category metrics @since 0.1.0 */
export const ticksTotal = Metric.counter("msgsys_scheduler_ticks_total", {
  description: "Ticks by schedule and outcome: enqueued, duplicate (another replica enqueued it), failed (not enqueuable)",
  incremental: true
})

/** Longest single sleep: wall-clock steps and long gaps between ticks are re-planned at least this often. */
const maxSleep = Duration.toMillis(Duration.seconds(60))

/** Backoff of a failing pass: 200 ms doubling to 30 s, for as long as it fails. */
const retryPolicy = Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("30 seconds")])

/** Failures of one tick that retrying cannot fix. */
const permanent = new Set(["PayloadEncodeError", "PayloadTooLarge", "InvalidTenant", "InvalidTaskId", "InvalidSubject", "PayloadMismatch"])

const iso = (ms: number) => new Date(ms).toISOString()

/** A stored payload that no longer matches its task's input schema (the task changed since). */
class PayloadMismatch extends Data.TaggedError("PayloadMismatch")<{ readonly subject: string; readonly reason: string }> {
  override get message() {
    return `its payload no longer matches the input of ${this.subject} (${this.reason})`
  }
}

/**
 * Starts a replica in the current scope (its loops stop with it).
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("Scheduler.make")(function*(options: Options = {}) {
  const store = yield* ScheduleStore
  const client = yield* Client.Client
  const grace = Duration.fromInputUnsafe(options.grace ?? Ticks.defaultGrace)
  const catalog = new Map((options.tasks ?? []).map((t) => [t.subject, t] as const))
  const id = `${hostname()}-${process.pid}-${(yield* MessageId.make).slice(-6)}`
  const count = (schedule: string, outcome: string, n = 1) =>
    Metric.update(Metric.withAttributes(ticksTotal, { schedule, outcome }), n)

  /** Enqueues one tick; a failure retrying cannot fix is logged and the tick passed over. */
  const enqueue = (s: ScheduleRecord.ScheduleRecord, tick: Ticks.Tick) => {
    const taskId = Ticks.taskId(s.name, tick.at)
    const enqueueOptions: Client.EnqueueOptions = {
      id: taskId,
      // the tick is the unit of idempotency: a task keyed by its input alone (a schedule's input
      // never changes) would otherwise run on the first tick only
      key: taskId,
      headers: Ticks.headersOf(s.name, tick),
      ...(s.tenant !== undefined ? { tenant: s.tenant } : {}),
      ...(s.priority !== undefined ? { priority: s.priority } : {})
    }
    const task = catalog.get(s.subject)
    const send: Effect.Effect<{ readonly duplicate: boolean }, Client.EnqueueError | PayloadMismatch> = task === undefined
      ? client.enqueueJson(s.subject, s.payload, enqueueOptions)
      : Effect.flatMap(
        Effect.suspend(() => {
          const input = Payload.fromJson(task.input, s.payload)
          return Exit.isSuccess(input)
            ? Effect.succeed(input.value)
            : Effect.fail(new PayloadMismatch({
              subject: s.subject,
              reason: Option.match(Exit.findErrorOption(input), {
                onNone: () => Cause.pretty(input.cause),
                onSome: Payload.formatSchemaError
              })
            }))
        }),
        (input) => client.enqueue(task, input, enqueueOptions)
      )
    return send.pipe(
      Effect.flatMap((handle) =>
        handle.duplicate
          ? Effect.andThen(count(s.name, "duplicate"), Effect.logDebug(`schedule ${s.name}: tick ${iso(tick.at)} was enqueued already (${taskId})`))
          : Effect.andThen(count(s.name, "enqueued"), Effect.logDebug(`schedule ${s.name}: enqueued tick ${iso(tick.at)} as ${taskId}`))
      ),
      Effect.catchIf((e) => permanent.has(e._tag), (e) =>
        Effect.andThen(
          count(s.name, "failed"),
          Effect.logError(
            `schedule ${s.name}: tick ${iso(tick.at)} cannot be enqueued and is passed over: ${e.message}. ` +
              `Fix the schedule (\`msgsys schedule add ${s.name} ... --replace\`) or the task`
          )
        ))
    )
  }

  /** One pass: plan from the recorded last tick, enqueue what is due, record it. The sleep to the next tick. */
  const pass = (s: ScheduleRecord.ScheduleRecord) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const last = yield* store.lastTick(s.name)
      const from = Math.max(Option.match(last, { onNone: () => Number.NEGATIVE_INFINITY, onSome: (l) => l.value.at }), s.since)
      const plan = Ticks.plan({ trigger: s.trigger, missed: s.missed, from, now, grace })
      if (plan.advanceTo === undefined) return plan.wakeAt === undefined ? maxSleep : plan.wakeAt - now
      for (const tick of plan.enqueue) yield* enqueue(s, tick)
      const recorded = yield* store.recordTick(s.name, { at: plan.advanceTo, by: id, recordedAt: now }, Option.map(last, (l) => l.revision))
      const caughtUp = plan.enqueue.filter((t) => t.missed !== undefined)
      const missed = caughtUp[0]?.missed ?? Trigger.count(s.trigger, from, plan.advanceTo, Ticks.maxCounted) -
        plan.enqueue.length
      if (missed > 0 && recorded) {
        yield* Effect.logInfo(
          `schedule ${s.name}: ${missed >= Ticks.maxCounted ? `${missed}+` : missed} tick(s) missed before ${iso(plan.advanceTo)}; ` +
            `policy ${ScheduleRecord.describeMissed(s.missed)}: enqueued ${caughtUp.length} of them`
        )
      }
      if (!recorded) yield* Effect.logDebug(`schedule ${s.name}: another replica recorded a tick first; planning again`)
      // plan again at once: nothing is due then, and that pass computes the sleep
      return 0
    })

  const loop = (s: ScheduleRecord.ScheduleRecord) =>
    Effect.gen(function*() {
      yield* Effect.logInfo(
        `schedule ${s.name}: ${Trigger.describe(s.trigger)} -> ${s.subject}, missed ticks: ${ScheduleRecord.describeMissed(s.missed)}`
      )
      while (true) {
        const wait = yield* pass(s).pipe(
          Effect.tapError((e) => Effect.logWarning(`schedule ${s.name}: ${e.message}; retrying`)),
          Effect.retry(retryPolicy)
        )
        if (wait > 0) yield* Effect.sleep(Duration.millis(Math.min(wait, maxSleep)))
        else yield* Effect.yieldNow
      }
    })

  // one supervised loop per active schedule, restarted whenever its record changes
  const loops = yield* FiberMap.make<string>()
  const run = yield* FiberMap.runtime(loops)<never>()
  const context = yield* Effect.context<never>()
  const log = (effect: Effect.Effect<void>) => Effect.runForkWith(context)(effect)
  const running = new Map<string, string>()
  yield* store.watch((name, record) => {
    const active = Option.filter(record, (r) => !r.paused)
    const key = Option.match(active, { onNone: () => undefined, onSome: (r) => JSON.stringify(r) })
    if (running.get(name) === key) return
    if (key === undefined) {
      if (!running.delete(name)) return
      run(name, Effect.void)
      log(Effect.logInfo(`schedule ${name} ${Option.isSome(record) ? "paused" : "removed"}: no more ticks here`))
      return
    }
    running.set(name, key)
    run(name, Supervisor.supervise(`schedule ${name}`, loop(Option.getOrThrow(active))))
  })
  yield* Effect.logInfo(`scheduler ${id} running`)
  return Scheduler.of({ id, running: Effect.sync(() => [...running.keys()].sort()) })
})

/**
 * A replica on a store the caller provides, with the `Schedules` service on the same store.
 * @category layers @since 0.1.0
 */
export const layerWithStore = (
  options: Options = {}
): Layer.Layer<Scheduler | Schedules.Schedules, BrokerError, ScheduleStore | Client.Client | Nats | MsgsysConfig> =>
  Layer.merge(Layer.effect(Scheduler, make(options)), Schedules.layerWithStore(options))

/**
 * A replica on the schedules bucket of the config's stream prefix, for `msgsys scheduler` and for
 * programs that include one beside their workers; it provides `Schedules` too. It stops when its
 * scope closes.
 * @category layers @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Scheduler | Schedules.Schedules, BrokerError | Topology.TopologyConflict, Client.Client | Nats | MsgsysConfig> =>
  layerWithStore(options).pipe(Layer.provide(KvScheduleStore.layer))
