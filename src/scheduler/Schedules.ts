/**
 * Managing schedules at run time: add, change, pause, resume, remove, list, and the next run
 * times. Everything is checked when it is written, so a replica never meets a schedule it cannot
 * run: the cron expression and its zone (or the interval), the name, the tenant, the missed-tick
 * policy, and the task: a subject no worker knows is refused, and the payload must match the
 * task's input schema when the task is known (a definition given here, or one of `tasks`).
 * Replicas watch the bucket: a change applies without a restart.
 * @since 0.1.0
 */
import { Clock, Context, Data, Duration, Effect, Exit, Layer, Option, Result, Schema } from "effect"
import type { BrokerError } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import type * as Topology from "../broker/Topology.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as Envelope from "../envelope/Envelope.ts"
import * as Payload from "../envelope/Payload.ts"
import * as Task from "../task/Task.ts"
import { streamOf } from "./internal/streamOf.ts"
import * as KvScheduleStore from "./KvScheduleStore.ts"
import * as ScheduleRecord from "./ScheduleRecord.ts"
import { ScheduleStore, type Versioned } from "./ScheduleStore.ts"
import * as Ticks from "./Ticks.ts"
import * as Trigger from "./Trigger.ts"

/** A new schedule. @category models @since 0.1.0 */
export interface ScheduleInput {
  /** 1 to 64 letters, digits, `_` or `-`. */
  readonly name: string
  /** A cron expression: 5 fields, or 6 with seconds first. Give this or `every`. */
  readonly cron?: string
  /** The IANA time zone the cron fields are read in. Default `UTC`. */
  readonly timeZone?: string
  /** A fixed interval of at least 1 second, counted from when the schedule is added (the next whole second). */
  readonly every?: Duration.Input
  /** The task each tick enqueues: its definition (the payload is checked and encoded), or its subject. */
  readonly task: Task.Any | string
  /** The task's input: a typed value with a definition, JSON with a subject. Default `{}`. */
  readonly payload?: unknown
  /** Default: the task's default (`default`). */
  readonly tenant?: string
  /** Default: the task's priority, else normal. */
  readonly priority?: Subjects.Priority
  /** Added paused: no ticks until resumed. Default false. */
  readonly paused?: boolean
  /** What to do with ticks no replica enqueued in time. Default `once`. */
  readonly missed?: ScheduleRecord.MissedTicks
}

/** What `change` may change; a new trigger counts ticks from the change. @category models @since 0.1.0 */
export type ScheduleChange = Partial<Omit<ScheduleInput, "name" | "paused">>

/** A schedule with its last tick and its next run. @category models @since 0.1.0 */
export interface ScheduleView {
  readonly schedule: ScheduleRecord.ScheduleRecord
  /** The last tick recorded (epoch ms). */
  readonly lastTick: Option.Option<number>
  /** The next run (epoch ms); `None` while paused. */
  readonly next: Option.Option<number>
}

/** A schedule that cannot be stored as given. @category errors @since 0.1.0 */
export class InvalidSchedule extends Data.TaggedError("InvalidSchedule")<{
  readonly name: string
  readonly problem: string
  readonly fix: string
}> {
  override get message() {
    return `schedule ${JSON.stringify(this.name)}: ${this.problem}. ${this.fix}`
  }
}

/** The schedule's task subject names no task a worker runs. @category errors @since 0.1.0 */
export class UnknownTask extends Data.TaggedError("UnknownTask")<{
  readonly name: string
  readonly subject: string
  readonly problem: string
  /** The task subjects known where the check ran. */
  readonly known: ReadonlyArray<string>
}> {
  override get message() {
    return `schedule ${JSON.stringify(this.name)}: no task ${JSON.stringify(this.subject)}: ${this.problem}. ` +
      (this.known.length > 0 ? `Known tasks: ${this.known.join(", ")}. ` : "") +
      "Check the subject's spelling, and that a worker (or `msgsys topology`) has declared its actor"
  }
}

/** @category errors @since 0.1.0 */
export class ScheduleExists extends Data.TaggedError("ScheduleExists")<{ readonly name: string }> {
  override get message() {
    return `schedule ${JSON.stringify(this.name)} exists already: change it (\`msgsys schedule add ${this.name} ... --replace\`, ` +
      "or `Schedules.change`), or remove it first"
  }
}

/** @category errors @since 0.1.0 */
export class ScheduleNotFound extends Data.TaggedError("ScheduleNotFound")<{
  readonly name: string
  readonly known: ReadonlyArray<string>
}> {
  override get message() {
    return `no schedule ${JSON.stringify(this.name)}: ` +
      (this.known.length > 0 ? `the schedules are ${this.known.join(", ")}` : "there are no schedules") +
      " (`msgsys schedule list` shows them)"
  }
}

/** @category models @since 0.1.0 */
export type ScheduleError = InvalidSchedule | UnknownTask | BrokerError

/** @category services @since 0.1.0 */
export class Schedules extends Context.Service<Schedules, {
  /** Adds a schedule; with `replace`, one of the same name is replaced (its last tick is kept). */
  readonly add: (
    input: ScheduleInput,
    options?: { readonly replace?: boolean }
  ) => Effect.Effect<ScheduleRecord.ScheduleRecord, ScheduleError | ScheduleExists>
  readonly change: (
    name: string,
    change: ScheduleChange
  ) => Effect.Effect<ScheduleRecord.ScheduleRecord, ScheduleError | ScheduleNotFound>
  /** No ticks until resumed; a paused schedule stays paused. */
  readonly pause: (name: string) => Effect.Effect<ScheduleRecord.ScheduleRecord, ScheduleNotFound | BrokerError>
  /** Ticks again; those that passed while paused are missed ticks and follow the schedule's policy. */
  readonly resume: (name: string) => Effect.Effect<ScheduleRecord.ScheduleRecord, ScheduleNotFound | BrokerError>
  readonly remove: (name: string) => Effect.Effect<void, ScheduleNotFound | BrokerError>
  readonly get: (name: string) => Effect.Effect<ScheduleView, ScheduleNotFound | BrokerError>
  /** Every schedule, by name. */
  readonly list: Effect.Effect<ReadonlyArray<ScheduleView>, BrokerError>
  /** The next `count` run times (epoch ms) after now, paused or not. */
  readonly next: (name: string, count: number) => Effect.Effect<ReadonlyArray<number>, ScheduleNotFound | BrokerError>
}>()("msgsys/Schedules") {}

/** What a handler learns about the tick that enqueued its task. @category models @since 0.1.0 */
export type TickInfo = Ticks.TickInfo

/**
 * Which schedule and tick made a task (`{ schedule, at, missed }`), read from its envelope;
 * `None` for a task no schedule made. A handler calls it with its `envelope`.
 * @category ticks @since 0.1.0
 */
export const tickOf: (envelope: Envelope.Envelope) => Option.Option<TickInfo> = Ticks.fromEnvelope

/** @category models @since 0.1.0 */
export interface Options {
  /** Task definitions this process knows: payloads for them are checked against their input schema. */
  readonly tasks?: ReadonlyArray<Task.Any>
}

// ---------------------------------------------------------------------------------------------
// building a record (pure)

const triggerFix = (e: Trigger.InvalidTrigger) => ({ problem: `${e.given}: ${e.problem}`, fix: e.fix })

/** The trigger an input asks for, anchored (intervals) at `now`. */
const triggerOf = (name: string, input: Pick<ScheduleInput, "cron" | "timeZone" | "every">, now: number) => {
  const invalid = (problem: string, fix: string) => Result.fail(new InvalidSchedule({ name, problem, fix }))
  if (input.cron !== undefined && input.every !== undefined) {
    return invalid("it has both a cron expression and an interval", "Give one of them: `cron` (with `timeZone`) or `every`")
  }
  if (input.cron === undefined && input.every === undefined) {
    return invalid("it has no cron expression and no interval", "Give `cron` (e.g. \"0 9 * * *\", with `timeZone`) or `every` (e.g. \"15 minutes\")")
  }
  if (input.every !== undefined && input.timeZone !== undefined) {
    return invalid("a time zone applies to cron expressions only", "Leave out the time zone, or give a cron expression")
  }
  // an interval counts from the next whole second: its ticks (and task ids) fall on whole seconds
  const t = input.cron !== undefined ? Trigger.cron(input.cron, input.timeZone) : Trigger.every(input.every!, Math.ceil(now / 1000) * 1000)
  return Result.mapError(t, (e) => new InvalidSchedule({ name, ...triggerFix(e) }))
}

/** The trigger fields of a change, completed from the current trigger: a new zone alone keeps the expression, and so on. */
const retrigger = (current: Trigger.Trigger, change: ScheduleChange): Pick<ScheduleInput, "cron" | "timeZone" | "every"> => {
  if (change.every !== undefined) return { every: change.every, ...(change.timeZone !== undefined ? { timeZone: change.timeZone } : {}) }
  const zone = change.timeZone ?? (current.kind === "cron" ? current.timeZone : undefined)
  const cron = change.cron ?? (current.kind === "cron" ? current.cron : undefined)
  // a zone for an interval schedule: triggerOf names the problem
  if (cron === undefined) return { every: Duration.millis(current.kind === "every" ? current.everyMs : 0), timeZone: change.timeZone }
  return { cron, ...(zone !== undefined ? { timeZone: zone } : {}) }
}

const checkName = (name: string) =>
  ScheduleRecord.isName(name)
    ? Result.succeed(name)
    : Result.fail(new InvalidSchedule({
      name,
      problem: "not a schedule name",
      fix: "Use 1 to 64 letters, digits, _ or - (it becomes part of a KV key and of every task id), e.g. \"nightly-export\""
    }))

const checkMissed = (name: string, missed: unknown) =>
  Result.mapError(
    Schema.decodeUnknownResult(ScheduleRecord.MissedTicks)(missed),
    () => new InvalidSchedule({
      name,
      problem: `missed-tick policy ${JSON.stringify(missed)} is none of skip, once, { catchUp: N }`,
      fix: "Use \"skip\" (run none of them), \"once\" (run once for all of them) or { catchUp: N } with N from 1 to 1000"
    })
  )

const checkTenant = (name: string, tenant: string | undefined) =>
  tenant === undefined || Envelope.isValidTenant(tenant)
    ? Result.succeed(tenant)
    : Result.fail(new InvalidSchedule({ name, problem: new Envelope.InvalidTenant({ tenant }).message, fix: "Give another tenant" }))

/**
 * A record from an input whose task is already resolved to a subject and a JSON payload: checks
 * the name, trigger, policy and tenant. `Schedules.add` resolves the task first.
 * @category constructors @since 0.1.0
 */
export const makeRecord = (
  input: Omit<ScheduleInput, "task" | "payload"> & { readonly subject: string; readonly payload: Schema.Json },
  now: number
): Result.Result<ScheduleRecord.ScheduleRecord, InvalidSchedule> =>
  Result.gen(function*() {
    const name = yield* checkName(input.name)
    const trigger = yield* triggerOf(name, input, now)
    const missed = yield* checkMissed(name, input.missed ?? ScheduleRecord.defaultMissed)
    const tenant = yield* checkTenant(name, input.tenant)
    return {
      name,
      trigger,
      subject: input.subject,
      payload: input.payload,
      ...(tenant !== undefined ? { tenant } : {}),
      ...(input.priority !== undefined ? { priority: input.priority } : {}),
      paused: input.paused ?? false,
      missed,
      since: now,
      createdAt: now,
      updatedAt: now
    }
  })

/** The next run of a schedule after `now`, `None` while paused. @category ticks @since 0.1.0 */
export const nextRun = (
  record: ScheduleRecord.ScheduleRecord,
  lastTick: Option.Option<number>,
  now: number
): Option.Option<number> =>
  record.paused
    ? Option.none()
    : Option.fromUndefinedOr(Trigger.next(record.trigger, Math.max(now, record.since, Option.getOrElse(lastTick, () => 0))))

// ---------------------------------------------------------------------------------------------
// the service

/** A concurrent change of the same schedule: read it again and retry. */
class Conflict extends Data.TaggedError("Conflict")<{}> {}

/** @category constructors @since 0.1.0 */
export const make = Effect.fn("Schedules.make")(function*(options: Options = {}) {
  const store = yield* ScheduleStore
  const nats = yield* Nats
  const config = yield* MsgsysConfig
  const names = Subjects.make(config.streamPrefix)
  const catalog = new Map((options.tasks ?? []).map((t) => [t.subject, t] as const))
  const knownDomains = new Set([...catalog.keys()].map(Subjects.domainOf))

  const now = Clock.currentTimeMillis

  /** The subject and JSON payload of a schedule's task, checked. */
  const resolveTask = (name: string, task: Task.Any | string, payload: unknown) =>
    Effect.gen(function*() {
      const invalid = (problem: string, fix: string) => new InvalidSchedule({ name, problem, fix })
      const definition = Task.isTask(task) ? task : catalog.get(task)
      const subject = Task.isTask(task) ? task.subject : yield* Subjects.validateSubject(task, names.prefix).pipe(
        Effect.mapError((e) => invalid(e.message, "Give the subject of one task"))
      )
      let json: unknown = payload ?? {}
      if (definition !== undefined) {
        // a typed value is encoded; JSON (a subject given) is decoded, which checks it the same way
        const exit = Task.isTask(task) ? Payload.toJson(definition.input, json) : Payload.fromJson(definition.input, json)
        if (Exit.isFailure(exit)) {
          const reason = Option.match(Exit.findErrorOption(exit as Exit.Exit<unknown, Schema.SchemaError>), {
            onNone: () => "the schema failed",
            onSome: (e) => Payload.formatSchemaError(e)
          })
          return yield* invalid(`the payload does not match the input of ${subject} (${reason})`, "Give an input the task accepts")
        }
        if (Task.isTask(task)) json = exit.value
      } else {
        const domain = Subjects.domainOf(subject)
        if (knownDomains.has(domain)) {
          return yield* new UnknownTask({
            name,
            subject,
            problem: `actor ${domain} has no such task`,
            known: [...catalog.keys()].filter((s) => Subjects.domainOf(s) === domain).sort()
          })
        }
        if (Option.isNone(yield* streamOf(nats, subject))) {
          return yield* new UnknownTask({ name, subject, problem: "no stream stores it", known: [...catalog.keys()].sort() })
        }
      }
      if (!Schema.is(Schema.Json)(json)) {
        return yield* invalid("the payload is not JSON (a function, a symbol, a number that is not finite?)", "Give a JSON value")
      }
      const size = new TextEncoder().encode(JSON.stringify(json)).length
      // a tick's task carries headers too; leave them room
      if (size > nats.server.maxPayload - 4096) {
        return yield* invalid(
          `the payload is ${Payload.formatBytes(size)}, too close to the server's max_payload of ${Payload.formatBytes(nats.server.maxPayload)}`,
          "Store the data elsewhere and schedule a reference to it"
        )
      }
      return { subject, payload: json as Schema.Json }
    })

  const notFound = (name: string) =>
    Effect.flatMap(store.list, (all) => Effect.fail(new ScheduleNotFound({ name, known: all.map((s) => s.value.name) })))

  const read = (name: string) =>
    Effect.flatMap(store.get(name), Option.match({ onNone: () => notFound(name), onSome: Effect.succeed }))

  /** Reads, changes and writes back; a concurrent writer makes it read again. */
  const modify = <E>(
    name: string,
    f: (current: Versioned<ScheduleRecord.ScheduleRecord>, now: number) => Effect.Effect<ScheduleRecord.ScheduleRecord | undefined, E>
  ) =>
    Effect.gen(function*() {
      const current = yield* read(name)
      const next = yield* f(current, yield* now)
      if (next === undefined) return current.value
      if (!(yield* store.update(next, current.revision))) return yield* new Conflict()
      return next
    }).pipe(Effect.retry({ while: (e) => e instanceof Conflict, times: 20 }), Effect.catchTag("Conflict", () => Effect.die(new Error(`schedule ${name} kept changing under this update; try again`))))

  const view = (s: Versioned<ScheduleRecord.ScheduleRecord>, at: number) =>
    Effect.map(store.lastTick(s.value.name), (last) => {
      const lastTick = Option.filter(Option.map(last, (l) => l.value.at), Number.isFinite)
      return { schedule: s.value, lastTick, next: nextRun(s.value, lastTick, at) } satisfies ScheduleView
    })

  const build = (input: ScheduleInput, at: number) =>
    Effect.gen(function*() {
      // name, trigger and policy first: they need no broker, and a typo there is the likelier one
      const record = yield* Effect.fromResult(makeRecord({ ...input, subject: "", payload: null }, at))
      const { subject, payload } = yield* resolveTask(record.name, input.task, input.payload)
      return { ...record, subject, payload }
    })

  const sameTrigger = (a: Trigger.Trigger, b: Trigger.Trigger) =>
    a.kind === "cron" && b.kind === "cron" ? a.cron === b.cron && a.timeZone === b.timeZone
      : a.kind === "every" && b.kind === "every" && a.everyMs === b.everyMs

  return Schedules.of({
    add: (input, addOptions = {}) =>
      Effect.gen(function*() {
        const at = yield* now
        const record = yield* build(input, at)
        if (yield* store.create(record)) {
          yield* Effect.logInfo(`schedule ${record.name} added: ${Trigger.describe(record.trigger)} -> ${record.subject}`)
          return record
        }
        if (!addOptions.replace) return yield* new ScheduleExists({ name: record.name })
        return yield* modify(record.name, (current) =>
          Effect.succeed({
            ...record,
            // the same trigger keeps its ticks; a new one counts from now
            ...(sameTrigger(current.value.trigger, record.trigger)
              ? { trigger: current.value.trigger, since: current.value.since }
              : {}),
            createdAt: current.value.createdAt
          })).pipe(
            // removed between the two writes: add it after all
            Effect.catchTag("ScheduleNotFound", () =>
              Effect.flatMap(store.create(record), (ok) => ok ? Effect.succeed(record) : Effect.fail(new ScheduleExists({ name: record.name })))),
            Effect.tap((r) => Effect.logInfo(`schedule ${r.name} replaced: ${Trigger.describe(r.trigger)} -> ${r.subject}`)))
      }),
    change: (name, change) =>
      modify(name, (current, at) =>
        Effect.gen(function*() {
          const c = current.value
          const triggerGiven = change.cron !== undefined || change.every !== undefined || change.timeZone !== undefined
          const trigger = !triggerGiven ? c.trigger : yield* Effect.fromResult(triggerOf(name, retrigger(c.trigger, change), at))
          const taskChanged = change.task !== undefined || change.payload !== undefined
          const task = taskChanged
            ? yield* resolveTask(name, change.task ?? c.subject, change.payload ?? (change.task === undefined ? c.payload : undefined))
            : { subject: c.subject, payload: c.payload }
          const missed = yield* Effect.fromResult(checkMissed(name, change.missed ?? c.missed))
          const tenant = yield* Effect.fromResult(checkTenant(name, change.tenant ?? c.tenant))
          const priority = change.priority ?? c.priority
          const renewed = triggerGiven && !sameTrigger(trigger, c.trigger)
          return {
            ...c,
            trigger: renewed ? trigger : c.trigger,
            subject: task.subject,
            payload: task.payload,
            ...(tenant !== undefined ? { tenant } : {}),
            ...(priority !== undefined ? { priority } : {}),
            missed,
            since: renewed ? at : c.since,
            updatedAt: at
          } satisfies ScheduleRecord.ScheduleRecord
        })).pipe(Effect.tap((r) => Effect.logInfo(`schedule ${r.name} changed: ${Trigger.describe(r.trigger)} -> ${r.subject}`))),
    pause: (name) =>
      modify(name, (current, at) =>
        Effect.succeed(current.value.paused ? undefined : { ...current.value, paused: true, updatedAt: at })),
    resume: (name) =>
      modify(name, (current, at) =>
        Effect.succeed(current.value.paused ? { ...current.value, paused: false, updatedAt: at } : undefined)),
    remove: (name) =>
      Effect.flatMap(store.remove(name), (removed) =>
        removed ? Effect.logInfo(`schedule ${name} removed`) : notFound(name)),
    get: (name) => Effect.flatMap(read(name), (s) => Effect.flatMap(now, (at) => view(s, at))),
    list: Effect.flatMap(store.list, (all) => Effect.flatMap(now, (at) => Effect.forEach(all, (s) => view(s, at), { concurrency: 16 }))),
    next: (name, count) =>
      Effect.flatMap(read(name), (s) =>
        Effect.map(now, (at) => Trigger.upcoming(s.value.trigger, Math.max(at, s.value.since), Math.max(0, Math.min(count, 1000)))))
  })
})

/**
 * The service on a store the caller provides (the scheduler shares its own).
 * @category layers @since 0.1.0
 */
export const layerWithStore = (options: Options = {}): Layer.Layer<Schedules, never, ScheduleStore | Nats | MsgsysConfig> =>
  Layer.effect(Schedules, make(options))

/**
 * The service on the schedules bucket of the config's stream prefix (declared if missing).
 * @category layers @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Schedules, BrokerError | Topology.TopologyConflict, Nats | MsgsysConfig> =>
  layerWithStore(options).pipe(Layer.provide(KvScheduleStore.layer))
