/**
 * `msgsys worker`, `msgsys dev` and `msgsys topology`: running actors and declaring what they need.
 * @since 0.1.0
 */
import { Console, Effect, Layer, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { join, resolve } from "node:path"
import * as EmbeddedNats from "../broker/EmbeddedNats.ts"
import * as Topology from "../broker/Topology.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import * as HttpServer from "../http/HttpServer.ts"
import * as App from "../app/App.ts"
import * as Worker from "../runtime/Worker.ts"
import * as Subjects from "../broker/Subjects.ts"
import * as ActorTopology from "../actor/ActorTopology.ts"
import * as KvPipelineStore from "../pipeline/KvPipelineStore.ts"
import * as KvScheduleStore from "../scheduler/KvScheduleStore.ts"
import * as Scheduler from "../scheduler/Scheduler.ts"
import { natsLayer } from "./CliLayers.ts"
import * as DevState from "./DevState.ts"
import * as Entry from "./Entry.ts"
import * as Output from "./Output.ts"
import * as Logging from "../trace/Logging.ts"

const list = (value: Option.Option<string>) =>
  Option.match(value, {
    onNone: () => undefined,
    onSome: (s) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0)
  })

const entryFlag = Flag.String("entry").pipe(
  Flag.optional,
  Flag.withDescription(
    `module that default-exports App.make({ actors, handlers }); default ${Entry.defaultEntry}, or the actors built into a compiled msgsys`
  )
)

/** @category commands @since 0.1.0 */
export const worker = Command.make("worker", {
  entry: entryFlag,
  pools: Flag.String("pools").pipe(Flag.optional, Flag.withDescription("run only these pools, e.g. fast,slow")),
  actors: Flag.String("actors").pipe(Flag.optional, Flag.withDescription("run only these actors, e.g. etl,reports")),
  subjects: Flag.String("subjects").pipe(Flag.optional, Flag.withDescription("run only actors of these subjects, e.g. \"etl.*,reports.*\""))
}, (args) =>
  Effect.gen(function*() {
    const settings = yield* MsgsysConfig.MsgsysConfig
    yield* MsgsysConfig.warnUnknownVariables(process.env).pipe(Effect.provide(Logging.logging(settings)))
    const app = yield* Entry.load(args.entry)
    const selection: Worker.Selection = {
      ...(list(args.pools) ? { pools: list(args.pools)! } : {}),
      ...(list(args.actors) ? { actors: list(args.actors)! } : {}),
      ...(list(args.subjects) ? { subjects: list(args.subjects)! } : {})
    }
    return yield* Layer.launch(App.layer(app, { selection, config: Layer.succeed(MsgsysConfig.MsgsysConfig, settings) })).pipe(
      Effect.provide(Logging.logging(settings))
    )
  }).pipe(Effect.provide(DevState.configLayer))).pipe(
    Command.withDescription("run the actors of an entry module until SIGTERM/SIGINT, then shut down gracefully"),
    Command.withExamples([
      { command: "MSGSYS_NATS_URL=nats://nats:4222 msgsys worker", description: "every actor, against a server" },
      { command: "msgsys worker --pools fast", description: "only the actors of the fast pool" },
      { command: "msgsys worker --actors etl,reports --entry src/app.ts", description: "two actors of your own entry module" }
    ])
  )

/** @category commands @since 0.1.0 */
export const dev = Command.make("dev", {
  entry: entryFlag,
  once: Flag.Boolean("once").pipe(
    Flag.withDefault(false),
    Flag.withDescription("run the demo to completion against the worker, then exit 0")
  )
}, (args) =>
  Effect.gen(function*() {
    const base = yield* MsgsysConfig.load(process.env)
    yield* MsgsysConfig.warnUnknownVariables(process.env).pipe(Effect.provide(Logging.logging(base)))
    const app = yield* Entry.load(args.entry)
    let settings = base
    if (base.nats.servers.length === 0) {
      const server = yield* EmbeddedNats.make({ storeDir: resolve(join(base.dataDir, "nats")), keepStore: true })
      settings = { ...base, nats: { ...base.nats, servers: [server.url] } }
      yield* DevState.record(base.dataDir, { url: server.url, pid: process.pid, startedAt: new Date().toISOString() })
    }
    const url = settings.nats.servers.join(",")
    // how this msgsys is called: a compiled one by its own path
    const self = (yield* Entry.Bundled) === undefined ? "bun run msgsys" : process.execPath
    // a scheduler replica beside the workers: schedules added with `msgsys schedule add` run
    const runtime = App.scheduler(app).pipe(
      Layer.provideMerge(App.layer(app, { config: Layer.succeed(MsgsysConfig.MsgsysConfig, settings) }))
    )
    yield* Effect.gen(function*() {
      const w = yield* Worker.Worker
      const http = yield* HttpServer.HttpServer
      yield* Console.log([
        "",
        "msgsys dev is running",
        `  NATS       ${url}${base.nats.servers.length === 0 ? ` (embedded, store ${join(base.dataDir, "nats")})` : ""}`,
        `  SQLite     ${settings.sqlitePath}`,
        `  dashboard  ${http.url ?? "off (MSGSYS_HTTP_PORT=0)"}${http.url ? "   (also /healthz, /readyz, /metrics)" : ""}`,
        `  actors     ${w.actors.join(", ")}`,
        `  tasks      ${app.actors.flatMap((a) => [...a.tasks.keys()]).join(", ")}`,
        `  try        ${self} enqueue TASK 'INPUT-AS-JSON' --wait`,
        `             ${self} status | audit tail -f | dlq list`,
        `  schedules  ${self} schedule add NAME TASK 'INPUT-AS-JSON' --every 1m   (or --cron "0 9 * * *")`,
        `             ${self} schedule list | next NAME | pause NAME | remove NAME`,
        args.once ? "  running the demo once" : "  Ctrl-C stops everything",
        ...(!args.once && app.producer ? ["  producing demo traffic at a gentle rate (the app's producer)"] : []),
        ""
      ].join("\n"))
      if (args.once) {
        if (!app.demo) return yield* Console.log("this app has no demo; nothing to run")
        yield* app.demo
        return yield* Console.log("demo finished")
      }
      if (app.producer) {
        // the producer's failure is logged; the workers go on
        yield* app.producer.pipe(
          Effect.catchCause((cause) => Effect.logError("the demo producer stopped", cause)),
          Effect.forkScoped
        )
      }
      return yield* Effect.never
    }).pipe(Effect.provide(runtime), Effect.provide(Logging.logging(settings)))
  }).pipe(Effect.scoped)).pipe(
    Command.withDescription("start an embedded NATS (unless MSGSYS_NATS_URL is set), the workers of every actor and a scheduler"),
    Command.withExamples([
      { command: "msgsys dev", description: "run until Ctrl-C; other commands in this directory find the server" },
      { command: "msgsys dev --once", description: "run the demo to completion, then exit 0" }
    ])
  )


/** @category commands @since 0.1.0 */
export const topology = Command.make("topology", {
  entry: entryFlag,
  json: Output.jsonFlag("print the changes as a JSON array of {action, resource, fields}")
}, (args) =>
  Effect.gen(function*() {
    const app = yield* Entry.load(args.entry)
    const settings = yield* MsgsysConfig.MsgsysConfig
    const names = Subjects.make(settings.streamPrefix)
    const changes = yield* Topology.apply(Topology.merge(
      ActorTopology.shared(names, settings),
      KvScheduleStore.topology(names),
      KvPipelineStore.topology(names, settings.resultTtl),
      ...app.actors.map((actor) => ActorTopology.forActor(names, actor, settings))
    ))
    if (args.json) return yield* Output.json(changes)
    for (const c of changes) {
      yield* Console.log(`${c.action.padEnd(9)} ${c.resource}${c.fields?.length ? ` (${c.fields.join(", ")})` : ""}`)
    }
  }).pipe(Effect.provide(natsLayer), Effect.scoped)).pipe(
    Command.withDescription("declare the streams, consumers and buckets of an entry module's actors (idempotent)"),
    Command.withExamples([
      { command: "msgsys topology", description: "create or update what is missing; prints each change" },
      { command: "msgsys topology --entry src/app.ts --json", description: "your own actors, changes as JSON" }
    ])
  )
