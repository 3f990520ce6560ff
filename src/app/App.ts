/**
 * An app: the actors and event groups a program defines, the events it publishes, and the layer
 * of their handlers. An entry module
 * default-exports one; `msgsys worker --entry FILE` runs it, and the module can run itself as a
 * worker binary with `if (import.meta.main) App.runWorker(app)`.
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type * as Actor from "../actor/Actor.ts"
import type * as Nats from "../broker/Nats.ts"
import * as Client from "../client/Client.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import * as DlqWorker from "../dlq/DlqWorker.ts"
import type * as ExhaustedStore from "../dlq/ExhaustedStore.ts"
import type * as Event from "../event/Event.ts"
import type * as Subscriber from "../event/Subscriber.ts"
import * as HttpServer from "../http/HttpServer.ts"
import * as Pipelines from "../pipeline/Pipelines.ts"
import * as Announcer from "../runtime/Announcer.ts"
import * as Worker from "../runtime/Worker.ts"
import * as Scheduler from "../scheduler/Scheduler.ts"
import type * as Schedules from "../scheduler/Schedules.ts"
import * as Logging from "../trace/Logging.ts"
import * as Tracing from "../trace/Tracing.ts"
import * as Main from "./Main.ts"
import * as Services from "./Services.ts"

/** @category models @since 0.1.0 */
export interface App<
  Actors extends ReadonlyArray<Actor.Any> = ReadonlyArray<Actor.Any>,
  E = unknown,
  Groups extends ReadonlyArray<Subscriber.Any> = ReadonlyArray<Subscriber.Any>
> {
  readonly _tag: "App"
  readonly actors: Actors
  readonly subscribers: Groups
  /** Events the program publishes (their streams are declared at start). */
  readonly events: ReadonlyArray<Event.Any>
  /**
   * The handlers; they may use the runtime's own `Client` (a handler that enqueues tasks or
   * publishes events with `parent: envelope`).
   */
  readonly handlers: Layer.Layer<Actor.HandlersOf<Actors[number]["name"] | Groups[number]["name"]>, E, Client.Client>
  /** A program that exercises the actors and ends; `msgsys dev --once` runs it against the worker. */
  readonly demo: Effect.Effect<unknown, unknown, DemoServices> | undefined
  /**
   * A program `msgsys dev` (without `--once`) runs beside the worker until it is stopped: demo
   * traffic at a gentle rate, so the dashboard and the audit show something happening.
   */
  readonly producer: Effect.Effect<unknown, unknown, DemoServices> | undefined
}

/**
 * What a demo or a producer may use: the client and pipelines, the schedules (`msgsys dev` runs a
 * scheduler replica beside the worker), and the connection, settings and exhausted letters (a demo
 * that checks its outcomes reads dead letters with `DeadLetters.list` and what the DLQ worker kept).
 * @category models @since 0.1.0
 */
export type DemoServices =
  | Client.Client
  | Pipelines.Pipelines
  | Schedules.Schedules
  | Nats.Nats
  | MsgsysConfig.MsgsysConfig
  | ExhaustedStore.ExhaustedStore

/** @category constructors @since 0.1.0 */
export const make = <const Actors extends ReadonlyArray<Actor.Any>, E, const Groups extends ReadonlyArray<Subscriber.Any> = readonly []>(options: {
  readonly actors: Actors
  readonly subscribers?: Groups
  readonly events?: ReadonlyArray<Event.Any>
  readonly handlers: Layer.Layer<Actor.HandlersOf<Actors[number]["name"] | Groups[number]["name"]>, E, Client.Client>
  readonly demo?: Effect.Effect<unknown, unknown, DemoServices>
  readonly producer?: Effect.Effect<unknown, unknown, DemoServices>
}): App<Actors, E, Groups> => ({
  _tag: "App",
  actors: options.actors,
  subscribers: options.subscribers ?? ([] as unknown as Groups),
  events: options.events ?? [],
  handlers: options.handlers,
  demo: options.demo,
  producer: options.producer
})

/** @category guards @since 0.1.0 */
export const isApp = (u: unknown): u is App =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "App"

/** @category models @since 0.1.0 */
export interface WorkerOptions {
  readonly selection?: Worker.Selection
  /** Default: from the environment. */
  readonly config?: Layer.Layer<MsgsysConfig.MsgsysConfig, unknown>
  /** Messages held beyond an actor's free slots. Default min(concurrency, 32). */
  readonly prefetch?: number
}

/**
 * The whole runtime as one layer: config, connection, topology, audit, idempotency, pools, the
 * app's actors and event groups, the HTTP port (health, metrics, dashboard), the worker's registry
 * entry and, unless `MSGSYS_DLQ_WORKER` is off, the DLQ worker. It provides the `Worker` and every
 * service below it, so a program can also enqueue with `Client` beside the worker.
 * @category layers @since 0.1.0
 */
export const layer = <Actors extends ReadonlyArray<Actor.Any>, E, Groups extends ReadonlyArray<Subscriber.Any>>(
  app: App<Actors, E, Groups>,
  options: WorkerOptions = {}
) =>
  // the HTTP port and the registry entry go first when the worker shuts down (reverse order)
  Layer.mergeAll(HttpServer.layer, Announcer.layer, DlqWorker.layerFromConfig).pipe(
    Layer.provideMerge(
      Worker.layer({
        actors: app.actors,
        subscribers: app.subscribers,
        events: app.events,
        ...(options.selection ? { selection: options.selection } : {}),
        ...(options.prefetch !== undefined ? { prefetch: options.prefetch } : {})
      }).pipe(
        Layer.provide(app.handlers),
        Layer.provideMerge(Services.layerWith(options.config ?? MsgsysConfig.layer))
      )
    )
  )

/**
 * A scheduler replica beside the app's worker, for its tasks (a schedule's input is checked against
 * its task's schema before it is stored and before each tick is enqueued). It provides
 * `Schedules`; any number of replicas may run, each tick is enqueued once.
 * @example
 * const layer = App.scheduler(app).pipe(Layer.provideMerge(App.layer(app)))
 * @category layers @since 0.1.0
 */
export const scheduler = <Actors extends ReadonlyArray<Actor.Any>, E, Groups extends ReadonlyArray<Subscriber.Any>>(
  app: App<Actors, E, Groups>,
  options: Omit<Scheduler.Options, "tasks"> = {}
) => Scheduler.layer({ ...options, tasks: app.actors.flatMap((a) => [...a.tasks.values()]) })

/**
 * The client side alone, for a program that sends work and runs no worker: `Client` and
 * `Pipelines` on one connection, from the config (default: the environment). `App.layer`
 * provides them too.
 * @category layers @since 0.1.0
 */
export const layerClient = (options: { readonly config?: Layer.Layer<MsgsysConfig.MsgsysConfig, unknown> } = {}) =>
  Layer.mergeAll(Client.layer, Pipelines.layer).pipe(
    Layer.provideMerge(Services.broker),
    Layer.provideMerge(Tracing.layer),
    Layer.provideMerge(Logging.levelFromConfig),
    Layer.provideMerge(options.config ?? MsgsysConfig.layer)
  )

/**
 * Runs the app as a worker process until SIGTERM/SIGINT, then shuts down gracefully and exits 0.
 * @category running @since 0.1.0
 */
export const runWorker = <Actors extends ReadonlyArray<Actor.Any>, E, Groups extends ReadonlyArray<Subscriber.Any>>(
  app: App<Actors, E, Groups>,
  options: WorkerOptions = {}
) =>
  Main.run(Effect.gen(function*() {
    const settings = yield* MsgsysConfig.MsgsysConfig
    // settings from the environment: say which MSGSYS_* names it has that msgsys does not read
    const unknown = options.config === undefined ? MsgsysConfig.warnUnknownVariables(process.env) : Effect.void
    return yield* Effect.andThen(unknown, Layer.launch(layer(app, { ...options, config: Layer.succeed(MsgsysConfig.MsgsysConfig, settings) }))).pipe(
      Effect.provide(Logging.logging(settings))
    )
  }).pipe(Effect.provide(options.config ?? MsgsysConfig.layer)))
