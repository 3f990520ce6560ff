/**
 * A schedule as stored in the schedules bucket (`<prefix>_schedules`, key `def.<name>`), and the
 * record of the last tick enqueued for it (key `tick.<name>`), both JSON a person can read with
 * `nats kv get`.
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Trigger } from "./Trigger.ts"

/**
 * What to do with ticks no scheduler enqueued in time (all replicas were down, or the schedule was
 * paused): `skip` them, run `once` for all of them, or catch up on the last N (`{ catchUp: N }`).
 * @category models @since 0.1.0
 */
export const MissedTicks = Schema.Union([
  Schema.Literals(["skip", "once"]),
  Schema.Struct({ catchUp: Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))) })
])
/** @category models @since 0.1.0 */
export type MissedTicks = typeof MissedTicks.Type

/** The policy of a schedule that names none. @category constants @since 0.1.0 */
export const defaultMissed: MissedTicks = "once"

/** `skip`, `once`, `catch-up:3`. @category formatting @since 0.1.0 */
export const describeMissed = (m: MissedTicks): string => typeof m === "string" ? m : `catch-up:${m.catchUp}`

/** @category models @since 0.1.0 */
export const ScheduleRecord = Schema.Struct({
  name: Schema.String,
  trigger: Trigger,
  /** The task subject each tick enqueues. */
  subject: Schema.String,
  /** The task input as JSON (its encoded form). */
  payload: Schema.Json,
  tenant: Schema.optionalKey(Schema.String),
  priority: Schema.optionalKey(Schema.Literals(["high", "normal", "low"])),
  paused: Schema.Boolean,
  missed: MissedTicks,
  /** Ticks after this time (epoch ms) are due: the creation time, or when the trigger last changed. */
  since: Schema.Number,
  createdAt: Schema.Number,
  updatedAt: Schema.Number
})
/** @category models @since 0.1.0 */
export type ScheduleRecord = typeof ScheduleRecord.Type

/** The latest tick a replica enqueued (or, by the missed-tick policy, passed over). @category models @since 0.1.0 */
export const TickRecord = Schema.Struct({
  /** The tick time, epoch ms. */
  at: Schema.Number,
  /** The replica that recorded it. */
  by: Schema.String,
  /** When it was recorded, epoch ms. */
  recordedAt: Schema.Number
})
/** @category models @since 0.1.0 */
export type TickRecord = typeof TickRecord.Type

const NAME = /^[A-Za-z0-9_-]{1,64}$/

/**
 * Whether `name` can name a schedule: 1 to 64 letters, digits, `_` or `-` (it becomes part of a
 * KV key and of every task id the schedule makes).
 * @category validation @since 0.1.0
 */
export const isName = (name: string): boolean => NAME.test(name)
