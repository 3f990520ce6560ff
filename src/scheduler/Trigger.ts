/**
 * When a schedule fires: a cron expression read in a time zone (5 fields, or 6 with seconds
 * first, via effect's `Cron`), or a fixed interval counted from an anchor time. Pure arithmetic on
 * epoch milliseconds: the next tick after a time, the latest at or before it, the one before it.
 * @since 0.1.0
 */
import { Cron, Data, Duration, Result, Schema } from "effect"

/** A cron expression and the IANA time zone its fields are read in. @category models @since 0.1.0 */
export const CronTrigger = Schema.Struct({
  kind: Schema.Literal("cron"),
  cron: Schema.String,
  timeZone: Schema.String
})

/** Ticks at `anchor + k * everyMs`. @category models @since 0.1.0 */
export const IntervalTrigger = Schema.Struct({
  kind: Schema.Literal("every"),
  everyMs: Schema.Number,
  /** Epoch ms the interval is counted from (when the schedule got this trigger). */
  anchor: Schema.Number
})

/** How a schedule is stored: readable with `nats kv get`. @category models @since 0.1.0 */
export const Trigger = Schema.Union([CronTrigger, IntervalTrigger])
/** @category models @since 0.1.0 */
export type Trigger = typeof Trigger.Type

/** The zone a cron expression is read in when none is given. @category constants @since 0.1.0 */
export const defaultTimeZone = "UTC"

/** The shortest interval: ticks are whole enqueues, not a timer. @category constants @since 0.1.0 */
export const minInterval = Duration.seconds(1)

/** A trigger that cannot be used, and how to write one that can. @category errors @since 0.1.0 */
export class InvalidTrigger extends Data.TaggedError("InvalidTrigger")<{
  /** What was given: the expression, the zone or the interval. */
  readonly given: string
  readonly problem: string
  readonly fix: string
}> {
  override get message() {
    return `${this.given}: ${this.problem}. ${this.fix}`
  }
}

const cronFix = "Write 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, " +
  "e.g. \"0 9 * * MON-FRI\" or \"*/10 * * * * *\", and an IANA time zone such as \"Europe/Berlin\" (default UTC)"

const parsed = new Map<string, Cron.Cron>()

/** The parsed cron of a trigger; cached, since a tick computation parses it many times. */
const cronOf = (t: typeof CronTrigger.Type): Cron.Cron => {
  const key = `${t.timeZone}\u0000${t.cron}`
  let c = parsed.get(key)
  if (c === undefined) {
    c = Cron.parseUnsafe(t.cron, t.timeZone)
    if (parsed.size > 1000) parsed.clear()
    parsed.set(key, c)
  }
  return c
}

/**
 * A cron trigger, checked: the expression parses, the zone exists, and it fires at least once
 * (`0 0 31 2 *`, February 31st, never does).
 * @category constructors @since 0.1.0
 */
export const cron = (expression: string, timeZone: string = defaultTimeZone): Result.Result<Trigger, InvalidTrigger> => {
  const cron = expression.trim().split(/\s+/).join(" ")
  const zone = timeZone.trim()
  const given = `cron ${JSON.stringify(cron)} in ${JSON.stringify(zone)}`
  const result = Cron.parse(cron, zone)
  if (Result.isFailure(result)) {
    const problem = result.failure.message
    const zoneProblem = /time zone/i.test(problem)
    return Result.fail(new InvalidTrigger({
      given,
      problem: zoneProblem ? `unknown time zone ${JSON.stringify(zone)}` : problem,
      fix: zoneProblem ? "Give an IANA time zone such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\"" : cronFix
    }))
  }
  try {
    Cron.next(result.success, new Date(0))
  } catch {
    return Result.fail(new InvalidTrigger({ given, problem: "it never fires (no date matches all its fields)", fix: cronFix }))
  }
  return Result.succeed({ kind: "cron", cron, timeZone: zone })
}

/**
 * A fixed interval of at least one second (whole milliseconds), counted from `anchor`.
 * @category constructors @since 0.1.0
 */
export const every = (interval: Duration.Input, anchor: number): Result.Result<Trigger, InvalidTrigger> => {
  const d = Duration.fromInput(interval)
  const given = `interval ${typeof interval === "string" ? JSON.stringify(interval) : String(interval)}`
  const fix = "Give an interval of at least 1 second, e.g. \"30 seconds\", \"5 minutes\" or \"1 hour\""
  if (d._tag === "None" || !Duration.isFinite(d.value)) {
    return Result.fail(new InvalidTrigger({ given, problem: "not a finite duration", fix }))
  }
  const ms = Math.round(Duration.toMillis(d.value))
  if (ms < Duration.toMillis(minInterval)) {
    return Result.fail(new InvalidTrigger({ given, problem: "shorter than 1 second", fix }))
  }
  return Result.succeed({ kind: "every", everyMs: ms, anchor })
}

/** `cron "0 9 * * *" (Europe/Berlin)` or `every 5m`. @category formatting @since 0.1.0 */
export const describe = (t: Trigger): string =>
  t.kind === "cron"
    ? `cron ${JSON.stringify(t.cron)} (${t.timeZone})`
    : `every ${Duration.format(Duration.millis(t.everyMs))}`

const dateOr = (f: () => Date): number | undefined => {
  try {
    const d = f().getTime()
    return Number.isFinite(d) ? d : undefined
  } catch {
    // Cron gives up on a date it cannot find within its search bound
    return undefined
  }
}

/** The first tick strictly after `t` (epoch ms), or undefined when there is none. @category ticks @since 0.1.0 */
export const next = (trigger: Trigger, t: number): number | undefined => {
  if (trigger.kind === "every") {
    return trigger.anchor + (Math.floor((t - trigger.anchor) / trigger.everyMs) + 1) * trigger.everyMs
  }
  return dateOr(() => Cron.next(cronOf(trigger), new Date(t)))
}

/** The last tick strictly before `t`, or undefined when there is none. @category ticks @since 0.1.0 */
export const previous = (trigger: Trigger, t: number): number | undefined => {
  if (trigger.kind === "every") {
    return trigger.anchor + (Math.ceil((t - trigger.anchor) / trigger.everyMs) - 1) * trigger.everyMs
  }
  return dateOr(() => Cron.prev(cronOf(trigger), new Date(t)))
}

/** The last tick at or before `t`. @category ticks @since 0.1.0 */
export const latest = (trigger: Trigger, t: number): number | undefined =>
  // cron ticks are whole seconds and times whole milliseconds: strictly before t + 1 is at or before t
  previous(trigger, Math.floor(t) + 1)

/**
 * How many ticks fall in `(after, upTo]`, counting at most `max` of them.
 * @category ticks @since 0.1.0
 */
export const count = (trigger: Trigger, after: number, upTo: number, max: number): number => {
  if (upTo <= after) return 0
  if (trigger.kind === "every") {
    const n = Math.floor((upTo - trigger.anchor) / trigger.everyMs) - Math.floor((after - trigger.anchor) / trigger.everyMs)
    return Math.min(max, Math.max(0, n))
  }
  let n = 0
  let t = next(trigger, after)
  while (t !== undefined && t <= upTo && n < max) {
    n++
    t = next(trigger, t)
  }
  return n
}

/** The next `n` ticks strictly after `t`. @category ticks @since 0.1.0 */
export const upcoming = (trigger: Trigger, t: number, n: number): ReadonlyArray<number> => {
  const out: Array<number> = []
  let at = next(trigger, t)
  while (at !== undefined && out.length < n) {
    out.push(at)
    at = next(trigger, at)
  }
  return out
}
