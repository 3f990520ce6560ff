/**
 * An app: the actors a program defines and the layer of their handlers. An entry module
 * default-exports one; `msgsys worker --entry FILE` runs it, and the module can run itself as a
 * worker binary with `if (import.meta.main) App.runWorker(app)`.
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type * as Actor from "../actor/Actor.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import * as HttpServer from "../http/HttpServer.ts"
import * as Announcer from "../registry/Announcer.ts"
import type * as Client from "../task/Client.ts"
import * as Main from "./Main.ts"
import * as Services from "./Services.ts"
import * as Worker from "./Worker.ts"

/** @category models @since 0.1.0 */
export interface App<Actors extends ReadonlyArray<Actor.Any> = ReadonlyArray<Actor.Any>, E = unknown> {
  readonly _tag: "App"
  readonly actors: Actors
  readonly handlers: Layer.Layer<Actor.HandlersOf<Actors[number]["name"]>, E>
  /** A program that exercises the actors and ends; `msgsys dev --once` runs it against the worker. */
  readonly demo: Effect.Effect<unknown, unknown, Client.Client> | undefined
}

/** @category constructors @since 0.1.0 */
export const make = <const Actors extends ReadonlyArray<Actor.Any>, E>(options: {
  readonly actors: Actors
  readonly handlers: Layer.Layer<Actor.HandlersOf<Actors[number]["name"]>, E>
  readonly demo?: Effect.Effect<unknown, unknown, Client.Client>
}): App<Actors, E> => ({ _tag: "App", actors: options.actors, handlers: options.handlers, demo: options.demo })

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
 * The whole runtime as one layer: config, connection, topology, audit, idempotency, pools and the
 * app's actors, the HTTP port (health, metrics, dashboard) and the worker's registry entry. It
 * provides the `Worker` and every service below it, so a program can also enqueue with `Client`
 * beside the worker.
 * @category layers @since 0.1.0
 */
export const layer = <Actors extends ReadonlyArray<Actor.Any>, E>(app: App<Actors, E>, options: WorkerOptions = {}) =>
  // the HTTP port and the registry entry go first when the worker shuts down (reverse order)
  Layer.mergeAll(HttpServer.layer, Announcer.layer).pipe(
    Layer.provideMerge(
      Worker.layer({
        actors: app.actors,
        ...(options.selection ? { selection: options.selection } : {}),
        ...(options.prefetch !== undefined ? { prefetch: options.prefetch } : {})
      }).pipe(
        Layer.provide(app.handlers),
        Layer.provideMerge(Services.layerWith(options.config ?? MsgsysConfig.layer))
      )
    )
  )

/**
 * Runs the app as a worker process until SIGTERM/SIGINT, then shuts down gracefully and exits 0.
 * @category running @since 0.1.0
 */
export const runWorker = <Actors extends ReadonlyArray<Actor.Any>, E>(app: App<Actors, E>, options: WorkerOptions = {}) =>
  Main.run(Effect.gen(function*() {
    const settings = yield* MsgsysConfig.MsgsysConfig
    // settings from the environment: say which MSGSYS_* names it has that msgsys does not read
    const unknown = options.config === undefined ? MsgsysConfig.warnUnknownVariables(process.env) : Effect.void
    return yield* Effect.andThen(unknown, Layer.launch(layer(app, { ...options, config: Layer.succeed(MsgsysConfig.MsgsysConfig, settings) }))).pipe(
      Effect.provide(Main.logging(settings))
    )
  }).pipe(Effect.provide(options.config ?? MsgsysConfig.layer)))
