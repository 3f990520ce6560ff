/**
 * The dashboard's schedules panel, through the scheduler's own `Schedules` service (the
 * `<prefix>_schedules` bucket, `def.<name>` and `tick.<name>` keys): every schedule with its
 * trigger, task, tenant, missed-tick policy, last tick and next run; pause and resume as
 * `msgsys schedule pause|resume` do them (compare-and-set, so a concurrent change is never lost).
 *
 * The dashboard never creates the bucket: until a scheduler (or `msgsys schedule add`) has, the
 * panel says "no scheduler". The service is made on the first request that finds the bucket, and
 * made again after a request fails (the bucket may have been removed).
 * @since 0.1.0
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { Effect, Option } from "effect"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import type { TopologyConflict } from "../broker/Topology.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as KvScheduleStore from "../scheduler/KvScheduleStore.ts"
import * as ScheduleRecord from "../scheduler/ScheduleRecord.ts"
import * as Scheduler from "../scheduler/Schedules.ts"
import { ScheduleStore } from "../scheduler/ScheduleStore.ts"
import * as Trigger from "../scheduler/Trigger.ts"

/** One schedule as the dashboard shows it. @category models @since 0.1.0 */
export interface Schedule {
  readonly name: string
  /** The trigger in words: `cron "0 3 * * *" (Europe/Berlin)`, `every 15m`. */
  readonly when: string
  /** The task subject each tick enqueues. */
  readonly subject: string
  /** Undefined: the task's default tenant. */
  readonly tenant: string | undefined
  readonly paused: boolean
  /** What ticks no replica enqueued in time become: `skip`, `once`, `catch-up:3`. */
  readonly missed: string
  /** Epoch ms of the last tick enqueued; undefined before the first. */
  readonly lastTick: number | undefined
  /** Epoch ms; undefined while paused. */
  readonly nextRun: number | undefined
}

/** @category models @since 0.1.0 */
export type Schedules =
  | { readonly scheduler: false }
  | { readonly scheduler: true; readonly schedules: ReadonlyArray<Schedule> }

/**
 * A schedule as the panel shows it, from the scheduler's view of it.
 * @category reading @since 0.1.0
 */
export const fromView = (view: Scheduler.ScheduleView): Schedule => {
  const s = view.schedule
  return {
    name: s.name,
    when: Trigger.describe(s.trigger),
    subject: s.subject,
    tenant: s.tenant,
    paused: s.paused,
    missed: ScheduleRecord.describeMissed(s.missed),
    lastTick: Option.getOrUndefined(view.lastTick),
    nextRun: Option.getOrUndefined(view.next)
  }
}

/** The panel's operations. @category models @since 0.1.0 */
export interface Panel {
  /** Every schedule, by name; `{ scheduler: false }` while no schedules bucket exists. */
  readonly list: Effect.Effect<Schedules, BrokerError | TopologyConflict>
  /** Pauses or resumes a schedule (a schedule already so is left as it is). */
  readonly setPaused: (name: string, paused: boolean) => Effect.Effect<Schedule, Scheduler.ScheduleNotFound | BrokerError | TopologyConflict>
}

const isMissingStream = (e: unknown) => e instanceof JetStreamApiError && e.code === 10059

/**
 * The panel on the connection and stream prefix in context.
 * @category constructors @since 0.1.0
 */
export const make: Effect.Effect<Panel, never, Nats | MsgsysConfig> = Effect.gen(function*() {
  const nats = yield* Nats
  const config = yield* MsgsysConfig
  const names = Subjects.make(config.streamPrefix)
  const bucket = names.schedulesBucket
  const provided = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(Effect.provideService(Nats, nats), Effect.provideService(MsgsysConfig, config))

  const bucketExists = Effect.tryPromise({
    try: () => nats.manager.streams.info(`KV_${bucket}`).then(() => true, (e) => isMissingStream(e) ? false : Promise.reject(e)),
    catch: brokerFailure(`read the schedules bucket ${bucket}`)
  })

  let service: Scheduler.Schedules["Service"] | undefined
  /** The scheduler's service once the bucket exists (it would declare a missing one). */
  const schedules: Effect.Effect<Option.Option<Scheduler.Schedules["Service"]>, BrokerError | TopologyConflict> = Effect.suspend(() => {
    if (service !== undefined) return Effect.succeed(Option.some(service))
    return Effect.flatMap(bucketExists, (exists) =>
      !exists
        ? Effect.succeed(Option.none())
        : Scheduler.make().pipe(
          Effect.provideServiceEffect(ScheduleStore, KvScheduleStore.make(names)),
          provided,
          Effect.map((made) => {
            service = made
            return Option.some(made)
          })
        ))
  })
  /** A failure may mean the bucket went: look again next time. */
  const forgetOnFailure = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.tapError(effect, () => Effect.sync(() => (service = undefined)))

  return {
    list: forgetOnFailure(Effect.flatMap(schedules, Option.match({
      onNone: () => Effect.succeed<Schedules>({ scheduler: false }),
      onSome: (s) => Effect.map(s.list, (views): Schedules => ({ scheduler: true, schedules: views.map(fromView) }))
    }))),
    setPaused: (name, paused) =>
      forgetOnFailure(Effect.gen(function*() {
        // a name no schedule can have is no KV key either
        if (!ScheduleRecord.isName(name)) return yield* new Scheduler.ScheduleNotFound({ name, known: [] })
        const found = yield* schedules
        if (Option.isNone(found)) return yield* new Scheduler.ScheduleNotFound({ name, known: [] })
        const s = found.value
        yield* paused ? s.pause(name) : s.resume(name)
        return fromView(yield* s.get(name))
      }))
  }
})
