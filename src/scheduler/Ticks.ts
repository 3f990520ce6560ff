/**
 * Which ticks of a schedule are due, and what a tick's task looks like. Pure: every replica that
 * looks at the same schedule, the same last tick and (nearly) the same time plans the same ticks,
 * and a tick's task id is a function of the schedule's name and the tick time, so the stream's
 * deduplication stores a tick enqueued by several replicas once.
 *
 * A tick is **on time** when it is the latest one due and at most `grace` old; every earlier due
 * tick is **missed** (no replica got to it before the next one came, or it is older than
 * `grace`). On-time ticks are always enqueued; missed ones as the schedule's policy says: `skip`
 * none, `once` the latest missed one, standing for all of them, `{ catchUp: N }` the latest N.
 * @since 0.1.0
 */
import { Duration, Option } from "effect"
import type { Envelope } from "../envelope/Envelope.ts"
import type { MissedTicks } from "./ScheduleRecord.ts"
import * as Trigger from "./Trigger.ts"

/** How late the latest due tick may be and still count as on time. @category constants @since 0.1.0 */
export const defaultGrace: Duration.Duration = Duration.minutes(1)

/** Missed ticks are counted up to this many (the count travels in a header). @category constants @since 0.1.0 */
export const maxCounted = 10_000

/** One tick to enqueue. @category models @since 0.1.0 */
export interface Tick {
  /** Epoch ms. */
  readonly at: number
  /** Undefined for an on-time tick; for a catch-up run, how many ticks were missed in all. */
  readonly missed: number | undefined
}

/** @category models @since 0.1.0 */
export interface Plan {
  /** Ticks to enqueue now, oldest first. */
  readonly enqueue: ReadonlyArray<Tick>
  /** The tick to record as the last one once they are enqueued; undefined when none is due. */
  readonly advanceTo: number | undefined
  /** When the next tick is due (epoch ms), or undefined when the trigger never fires again. */
  readonly wakeAt: number | undefined
}

/**
 * The plan for ticks after `from` (the last recorded tick, or the schedule's start) at time `now`.
 * @category planning @since 0.1.0
 */
export const plan = (options: {
  readonly trigger: Trigger.Trigger
  readonly missed: MissedTicks
  readonly from: number
  readonly now: number
  readonly grace?: Duration.Input
}): Plan => {
  const { trigger, from, now } = options
  const grace = Duration.toMillis(Duration.fromInputUnsafe(options.grace ?? defaultGrace))
  const wakeAt = Trigger.next(trigger, Math.max(now, from))
  const latest = Trigger.latest(trigger, now)
  if (latest === undefined || latest <= from) return { enqueue: [], advanceTo: undefined, wakeAt }
  const onTime = now - latest <= grace ? latest : undefined
  const lastMissed = onTime === undefined ? latest : Trigger.previous(trigger, latest)
  const missedCount = lastMissed === undefined || lastMissed <= from ? 0 : Trigger.count(trigger, from, lastMissed, maxCounted)
  const picked: Array<number> = []
  if (missedCount > 0) {
    const wanted = options.missed === "skip" ? 0 : options.missed === "once" ? 1 : Math.min(options.missed.catchUp, missedCount)
    let at: number | undefined = lastMissed
    while (at !== undefined && at > from && picked.length < wanted) {
      picked.unshift(at)
      at = Trigger.previous(trigger, at)
    }
  }
  return {
    enqueue: [
      ...picked.map((at): Tick => ({ at, missed: missedCount })),
      ...(onTime === undefined ? [] : [{ at: onTime, missed: undefined }])
    ],
    advanceTo: latest,
    wakeAt
  }
}

// ---------------------------------------------------------------------------------------------
// a tick's task

/** Headers every scheduled task carries (read them with `fromEnvelope`). @category constants @since 0.1.0 */
export const Headers = {
  Schedule: "Msgsys-Schedule",
  Tick: "Msgsys-Schedule-Tick",
  Missed: "Msgsys-Schedule-Missed"
} as const

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

/** `20261124T090000Z`, with `.250` before the Z when the tick has milliseconds. */
const compactTime = (at: number): string => {
  const d = new Date(at)
  const ms = d.getUTCMilliseconds()
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}T` +
    `${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}${ms > 0 ? `.${pad(ms, 3)}` : ""}Z`
}

/**
 * The task id of a tick: `sched-<name>-<UTC time>`, e.g. `sched-nightly-20261124T020000Z`. The
 * same on every replica, so the stream stores a tick once however many replicas enqueue it.
 * @category ids @since 0.1.0
 */
export const taskId = (schedule: string, at: number): string => `sched-${schedule}-${compactTime(at)}`

/** The headers of a tick's task. @category ids @since 0.1.0 */
export const headersOf = (schedule: string, tick: Tick): Readonly<Record<string, string>> => ({
  [Headers.Schedule]: schedule,
  [Headers.Tick]: new Date(tick.at).toISOString(),
  ...(tick.missed !== undefined ? { [Headers.Missed]: tick.missed >= maxCounted ? `${maxCounted}+` : String(tick.missed) } : {})
})

/** What a handler learns about the tick that enqueued its task. @category models @since 0.1.0 */
export interface TickInfo {
  readonly schedule: string
  /** The tick time, epoch ms. */
  readonly at: number
  /** A catch-up run for missed ticks: how many were missed (at least). Undefined when on time. */
  readonly missed: number | undefined
}

/**
 * The schedule and tick of a task a scheduler enqueued, from its envelope; `None` for any other
 * task.
 * @category ids @since 0.1.0
 */
export const fromEnvelope = (envelope: Envelope): Option.Option<TickInfo> => {
  const schedule = envelope.extra[Headers.Schedule]
  const tick = envelope.extra[Headers.Tick]
  const at = tick === undefined ? Number.NaN : Date.parse(tick)
  if (schedule === undefined || !Number.isFinite(at)) return Option.none()
  const missed = envelope.extra[Headers.Missed]
  return Option.some({ schedule, at, missed: missed === undefined ? undefined : Number.parseInt(missed, 10) })
}
