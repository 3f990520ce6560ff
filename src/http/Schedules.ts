/**
 * The dashboard's view of the scheduler's schedules: the `<prefix>_schedules` bucket, one JSON
 * entry per schedule under its name. Until a scheduler has created that bucket there is "no
 * scheduler". Entries are read leniently, as the scheduler writes them: `cron` (with `timeZone`
 * or `tz`, default UTC) or `every`, the task `subject` (or `task`), `paused`, and `nextRun` (epoch
 * ms or ISO text; computed from `cron` when absent). Pausing and resuming set `paused` in the
 * entry, compare-and-set by revision, so a concurrent change by the scheduler is never lost.
 * @since 0.1.0
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { Clock, Cron, Data, Effect, Result } from "effect"
import { brokerFailure } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import type { Names } from "../broker/Subjects.ts"

/** One schedule as the dashboard shows it. @category models @since 0.1.0 */
export interface Schedule {
  readonly name: string
  /** The cron expression, or the interval, as written. */
  readonly when: string
  readonly subject: string | undefined
  readonly paused: boolean
  /** Epoch ms; undefined when paused or unknown. */
  readonly nextRun: number | undefined
}

/** @category models @since 0.1.0 */
export type Schedules =
  | { readonly scheduler: false }
  | { readonly scheduler: true; readonly schedules: ReadonlyArray<Schedule> }

/** No schedule of that name. @category errors @since 0.1.0 */
export class ScheduleNotFound extends Data.TaggedError("ScheduleNotFound")<{ readonly name: string; readonly bucket: string }> {
  override get message() {
    return `no schedule named ${JSON.stringify(this.name)} in ${this.bucket}: list them on the dashboard or with the scheduler's CLI`
  }
}

const isMissingStream = (e: unknown) => e instanceof JetStreamApiError && e.code === 10059

const timeOf = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && !Number.isNaN(Date.parse(v)) ? Date.parse(v) : undefined

const text = (v: unknown): string | undefined => typeof v === "string" && v.length > 0 ? v : undefined

/**
 * Reads one entry leniently; `now` is when the next run of a cron expression is counted from.
 * @category reading @since 0.1.0
 */
export const fromEntry = (name: string, value: unknown, now: number): Schedule => {
  const o = typeof value === "object" && value !== null ? value as Record<string, unknown> : {}
  const cron = text(o.cron)
  const every = text(o.every) ?? (typeof o.every === "number" ? `${o.every} ms` : undefined)
  const paused = o.paused === true
  let nextRun = timeOf(o.nextRun ?? o.next)
  if (nextRun === undefined && cron !== undefined) {
    const parsed = Cron.parse(cron, text(o.timeZone) ?? text(o.tz) ?? "UTC")
    if (Result.isSuccess(parsed)) nextRun = Cron.next(parsed.success, new Date(now)).getTime()
  }
  return {
    name,
    when: cron ?? every ?? "?",
    subject: text(o.subject) ?? text(o.task),
    paused,
    nextRun: paused ? undefined : nextRun
  }
}

const bucketExists = (nats: Nats["Service"], names: Names) =>
  Effect.tryPromise({
    try: () => nats.manager.streams.info(`KV_${names.schedulesBucket}`).then(() => true, (e) => isMissingStream(e) ? false : Promise.reject(e)),
    catch: brokerFailure(`read the schedules bucket ${names.schedulesBucket}`)
  })

/**
 * Every schedule, by name; `{ scheduler: false }` while no schedules bucket exists.
 * @category reading @since 0.1.0
 */
export const list = Effect.fn("Schedules.list")(function*(names: Names) {
  const nats = yield* Nats
  if (!(yield* bucketExists(nats, names))) return { scheduler: false } satisfies Schedules
  const now = yield* Clock.currentTimeMillis
  const schedules = yield* Effect.tryPromise({
    try: async () => {
      const kv = await nats.kvm.open(names.schedulesBucket)
      const out: Array<Schedule> = []
      for await (const key of await kv.keys()) {
        const e = await kv.get(key)
        if (e === null || e.operation !== "PUT") continue
        let value: unknown
        try {
          value = e.json()
        } catch {
          value = undefined
        }
        out.push(fromEntry(key, value, now))
      }
      return out.sort((a, b) => a.name.localeCompare(b.name))
    },
    catch: brokerFailure(`read the schedules bucket ${names.schedulesBucket}`)
  })
  return { scheduler: true, schedules } satisfies Schedules
})

/**
 * Sets `paused` in a schedule's entry (compare-and-set: retried when the scheduler changed it
 * meanwhile).
 * @category writing @since 0.1.0
 */
export const setPaused = Effect.fn("Schedules.setPaused")(function*(names: Names, name: string, paused: boolean) {
  const nats = yield* Nats
  const bucket = names.schedulesBucket
  if (!(yield* bucketExists(nats, names))) return yield* new ScheduleNotFound({ name, bucket })
  const kv = yield* Effect.tryPromise({ try: () => nats.kvm.open(bucket), catch: brokerFailure(`open ${bucket}`) })
  for (let attempt = 0; ; attempt++) {
    const e = yield* Effect.tryPromise({ try: () => kv.get(name), catch: brokerFailure(`read schedule ${name}`) })
    if (e === null || e.operation !== "PUT") return yield* new ScheduleNotFound({ name, bucket })
    const value = { ...(e.json() as Record<string, unknown>), paused }
    const written = yield* Effect.tryPromise({
      try: () => kv.update(name, JSON.stringify(value), e.revision),
      catch: brokerFailure(`${paused ? "pause" : "resume"} schedule ${name}`)
    }).pipe(
      Effect.as(true),
      // 10071: another writer got there first; read it again
      Effect.catchIf((err) => attempt < 5 && err.cause instanceof JetStreamApiError && err.cause.code === 10071, () => Effect.succeed(false))
    )
    if (written) return
  }
})
