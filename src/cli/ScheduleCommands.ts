/**
 * `msgsys schedule list|add|pause|resume|remove|next` (managing schedules in the bucket) and
 * `msgsys scheduler` (a replica, until SIGTERM/SIGINT).
 * @since 0.1.0
 */
import { Console, Data, Effect, Layer, Option, Runtime } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import * as Services from "../app/Services.ts"
import * as ScheduleRecord from "../scheduler/ScheduleRecord.ts"
import * as Scheduler from "../scheduler/Scheduler.ts"
import * as Schedules from "../scheduler/Schedules.ts"
import * as Trigger from "../scheduler/Trigger.ts"
import * as Client from "../client/Client.ts"
import type * as Task from "../task/Task.ts"
import * as Tracing from "../trace/Tracing.ts"
import { InvalidJson, parseDuration } from "./CliInput.ts"
import { natsLayer } from "./CliLayers.ts"
import * as DevState from "./DevState.ts"
import * as Entry from "./Entry.ts"
import { ExitCode } from "./Usage.ts"
import * as Logging from "../trace/Logging.ts"

/** `--missed` names no policy. @category errors @since 0.1.0 */
export class InvalidMissedPolicy extends Data.TaggedError("InvalidMissedPolicy")<{ readonly value: string }> {
  // a malformed flag value: the command line is wrong
  override readonly [Runtime.errorExitCode] = ExitCode.usage
  override get message() {
    return `--missed ${JSON.stringify(this.value)} is no missed-tick policy: use skip (run none of the missed ticks), ` +
      "once (run once for all of them) or catch-up:N (run the last N, N from 1 to 1000)"
  }
}

/** `skip`, `once`, `catch-up:3` (also `catchup=3`, `catchUp:3`). @category parsing @since 0.1.0 */
export const parseMissed = (value: string): Effect.Effect<ScheduleRecord.MissedTicks, InvalidMissedPolicy> => {
  const v = value.trim().toLowerCase()
  if (v === "skip" || v === "once") return Effect.succeed(v)
  const m = /^catch-?up[:=]?(\d+)$/.exec(v)
  const n = m ? Number(m[1]) : Number.NaN
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? Effect.succeed({ catchUp: n }) : Effect.fail(new InvalidMissedPolicy({ value }))
}

const entryFlag = Flag.String("entry").pipe(
  Flag.optional,
  Flag.withDescription(`module whose tasks payloads are checked against (default ${Entry.defaultEntry}, when it exists)`)
)

/**
 * The tasks of the entry module: the given one (it must load), else the one built into a compiled
 * msgsys, else the default one if there is one.
 */
const tasksOf = (entry: Option.Option<string>) =>
  Effect.gen(function*() {
    const none = Option.isNone(entry) && (yield* Entry.Bundled) === undefined && !existsSync(resolve(Entry.defaultEntry))
    if (none) return [] as ReadonlyArray<Task.Any>
    const app = yield* Entry.load(entry)
    return app.actors.flatMap((a) => [...a.tasks.values()]) as ReadonlyArray<Task.Any>
  })

const iso = (ms: number) => new Date(ms).toISOString()

/** `2026-11-24T08:00:00.000Z (09:00:00 Europe/Berlin)` for a cron in another zone than UTC. */
const when = (ms: number, trigger: Trigger.Trigger) => {
  if (trigger.kind !== "cron" || trigger.timeZone === "UTC") return iso(ms)
  const local = new Intl.DateTimeFormat("sv-SE", {
    timeZone: trigger.timeZone,
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"
  }).format(new Date(ms))
  return `${iso(ms)} (${local} ${trigger.timeZone})`
}

const line = (v: Schedules.ScheduleView) => {
  const s = v.schedule
  const state = s.paused ? "paused" : Option.match(v.next, { onNone: () => "no next run", onSome: (at) => `next ${when(at, s.trigger)}` })
  const last = Option.match(v.lastTick, { onNone: () => "", onSome: (at) => `  last tick ${iso(at)}` })
  return `${s.name}  ${Trigger.describe(s.trigger)} -> ${s.subject}  ${state}  missed: ${ScheduleRecord.describeMissed(s.missed)}${last}`
}

const viewJson = (v: Schedules.ScheduleView) => ({
  ...v.schedule,
  next: Option.match(v.next, { onNone: () => null, onSome: iso }),
  lastTick: Option.match(v.lastTick, { onNone: () => null, onSome: iso })
})

/** Schedules for a short command: the bucket on the configured server, tasks from the entry. */
const withSchedules = <A, E>(entry: Option.Option<string>, body: (s: Schedules.Schedules["Service"]) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const tasks = yield* tasksOf(entry)
    return yield* Effect.flatMap(Schedules.Schedules, body).pipe(Effect.provide(Schedules.layer({ tasks })))
  }).pipe(Effect.provide(natsLayer), Effect.scoped)

const jsonFlag = Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print JSON"))
const nameArg = Argument.String("name").pipe(Argument.withDescription("the schedule's name"))

const list = Command.make("list", { json: jsonFlag }, (args) =>
  withSchedules(Option.none(), (schedules) =>
    Effect.gen(function*() {
      const all = yield* schedules.list
      if (args.json) return yield* Console.log(JSON.stringify(all.map(viewJson), null, 2))
      if (all.length === 0) return yield* Console.log("no schedules (add one with `msgsys schedule add`)")
      for (const v of all) yield* Console.log(line(v))
    }))).pipe(
    Command.withDescription("list the schedules: trigger, task, next run (or paused), missed-tick policy, last tick"),
    Command.withExamples([
      { command: "msgsys schedule list", description: "one line a schedule" },
      { command: "msgsys schedule list --json | jq -r '.[] | select(.paused) | .name'", description: "the paused ones" }
    ])
  )

const add = Command.make("add", {
  name: nameArg,
  subject: Argument.String("subject").pipe(Argument.withDescription("the task each tick enqueues, e.g. etl.extract")),
  json: Argument.String("json").pipe(Argument.withDescription("the task input as JSON"), Argument.withDefault("{}")),
  cron: Flag.String("cron").pipe(Flag.optional, Flag.withDescription("cron expression: 5 fields, or 6 with seconds first, e.g. \"0 9 * * MON-FRI\"")),
  tz: Flag.String("tz").pipe(Flag.optional, Flag.withDescription("IANA time zone the cron fields are read in (default UTC)")),
  every: Flag.String("every").pipe(Flag.optional, Flag.withDescription("fixed interval instead of a cron, e.g. 30s, 15m, 1h")),
  tenant: Flag.String("tenant").pipe(Flag.optional),
  priority: Flag.Literals("priority", ["high", "normal", "low"]).pipe(Flag.optional),
  missed: Flag.String("missed").pipe(
    Flag.withDefault(ScheduleRecord.describeMissed(ScheduleRecord.defaultMissed)),
    Flag.withDescription("what to do with ticks missed while no scheduler ran or while paused: skip, once, catch-up:N")
  ),
  paused: Flag.Boolean("paused").pipe(Flag.withDefault(false), Flag.withDescription("add it paused")),
  replace: Flag.Boolean("replace").pipe(Flag.withDefault(false), Flag.withDescription("replace a schedule of the same name")),
  entry: entryFlag,
  output: jsonFlag
}, (args) =>
  Effect.gen(function*() {
    const payload = yield* Effect.try({
      try: () => JSON.parse(args.json) as unknown,
      catch: (e) => new InvalidJson({ what: "the task input", reason: (e as Error).message })
    })
    const missed = yield* parseMissed(args.missed)
    const every = Option.isSome(args.every) ? Option.some(yield* parseDuration("--every", args.every.value)) : Option.none()
    return yield* withSchedules(args.entry, (schedules) =>
      Effect.gen(function*() {
        const record = yield* schedules.add({
          name: args.name,
          task: args.subject,
          payload,
          missed,
          paused: args.paused,
          ...Option.match(args.cron, { onNone: () => ({}), onSome: (cron) => ({ cron }) }),
          ...Option.match(args.tz, { onNone: () => ({}), onSome: (timeZone) => ({ timeZone }) }),
          ...Option.match(every, { onNone: () => ({}), onSome: (every) => ({ every }) }),
          ...Option.match(args.tenant, { onNone: () => ({}), onSome: (tenant) => ({ tenant }) }),
          ...Option.match(args.priority, { onNone: () => ({}), onSome: (priority) => ({ priority }) })
        }, { replace: args.replace })
        const view = yield* schedules.get(record.name)
        if (args.output) return yield* Console.log(JSON.stringify(viewJson(view), null, 2))
        yield* Console.log(`schedule ${record.name} ${args.replace ? "stored" : "added"}: ${line(view)}`)
      }))
  })).pipe(
    Command.withDescription("add a schedule (or, with --replace, change one): a cron or an interval that enqueues a task"),
    Command.withExamples([
      {
        command: "msgsys schedule add nightly etl.extract '{\"tenant\":\"acme\",\"source\":\"crm\",\"rows\":0}' --cron \"0 2 * * *\" --tz Europe/Berlin",
        description: "every night at 02:00 Berlin time"
      },
      { command: "msgsys schedule add heartbeat etl.transform '{\"tenant\":\"acme\",\"values\":[1]}' --every 30s --missed skip", description: "every 30 seconds; ticks missed while down are skipped" },
      { command: "msgsys schedule add nightly etl.extract '{\"tenant\":\"acme\",\"source\":\"crm\",\"rows\":0}' --cron \"30 3 * * *\" --replace", description: "change it" }
    ])
  )

const control = (name: "pause" | "resume" | "remove") =>
  Command.make(name, { name: nameArg }, (args) =>
    withSchedules(Option.none(), (schedules) =>
      Effect.gen(function*() {
        if (name === "remove") {
          yield* schedules.remove(args.name)
          return yield* Console.log(`schedule ${args.name} removed`)
        }
        yield* name === "pause" ? schedules.pause(args.name) : schedules.resume(args.name)
        yield* Console.log(`schedule ${args.name} ${name === "pause" ? "paused: no ticks until it is resumed" : `resumed: ${line(yield* schedules.get(args.name))}`}`)
      }))).pipe(Command.withDescription(
      name === "pause"
        ? "stop a schedule's ticks on every scheduler"
        : name === "resume"
        ? "start a paused schedule's ticks again (ticks that passed meanwhile follow its missed-tick policy)"
        : "remove a schedule and its last tick"
    ), Command.withExamples([{ command: `msgsys schedule ${name} nightly`, description: `${name} the schedule named nightly` }]))

const next = Command.make("next", {
  name: nameArg,
  count: Flag.Int("count").pipe(Flag.withDefault(5), Flag.withDescription("how many run times to print")),
  json: jsonFlag
}, (args) =>
  withSchedules(Option.none(), (schedules) =>
    Effect.gen(function*() {
      const view = yield* schedules.get(args.name)
      const times = yield* schedules.next(args.name, args.count)
      if (args.json) return yield* Console.log(JSON.stringify(times.map(iso)))
      if (view.schedule.paused) yield* Console.log(`(schedule ${args.name} is paused: these are the times it would run)`)
      for (const at of times) yield* Console.log(when(at, view.schedule.trigger))
    }))).pipe(
    Command.withDescription("print a schedule's next run times"),
    Command.withExamples([
      { command: "msgsys schedule next nightly", description: "the next 5 run times, in UTC and the schedule's zone" },
      { command: "msgsys schedule next nightly --count 1 --json", description: "the next one, as JSON" }
    ])
  )

/** @category commands @since 0.1.0 */
export const schedule = Command.make("schedule").pipe(
  Command.withDescription("manage schedules: cron or interval ticks that enqueue tasks"),
  Command.withExamples([
    { command: "msgsys schedule list", description: "what is scheduled" },
    { command: "msgsys schedule add heartbeat etl.transform '{\"tenant\":\"acme\",\"values\":[1]}' --every 1m", description: "a task every minute" },
    { command: "msgsys schedule pause heartbeat", description: "stop its ticks on every scheduler" }
  ]),
  Command.withSubcommands([list, add, control("pause"), control("resume"), control("remove"), next])
)

/**
 * A scheduler replica on `settings`, with the connection and client it enqueues through.
 * @category layers @since 0.1.0
 */
export const replicaLayer = (settings: MsgsysConfig.MsgsysSettings, tasks: ReadonlyArray<Task.Any>) =>
  Scheduler.layer({ tasks }).pipe(
    Layer.provideMerge(Client.layer),
    Layer.provideMerge(Services.broker),
    // each tick's enqueue is a publish span when an OTLP endpoint is configured
    Layer.provideMerge(Tracing.layer),
    Layer.provideMerge(Layer.succeed(MsgsysConfig.MsgsysConfig, settings))
  )

/** @category commands @since 0.1.0 */
export const scheduler = Command.make("scheduler", { entry: entryFlag }, (args) =>
  Effect.gen(function*() {
    const settings = yield* MsgsysConfig.MsgsysConfig
    yield* MsgsysConfig.warnUnknownVariables(process.env).pipe(Effect.provide(Logging.logging(settings)))
    const tasks = yield* tasksOf(args.entry)
    return yield* Layer.launch(replicaLayer(settings, tasks)).pipe(Effect.provide(Logging.logging(settings)))
  }).pipe(Effect.provide(DevState.configLayer))).pipe(
    Command.withDescription("run a scheduler replica until SIGTERM/SIGINT (any number may run: each tick is enqueued once)"),
    Command.withExamples([
      { command: "MSGSYS_NATS_URL=nats://nats:4222 msgsys scheduler", description: "a replica; start two or three for availability" },
      { command: "msgsys scheduler --entry src/app.ts", description: "checking payloads against your own tasks" }
    ])
  )
