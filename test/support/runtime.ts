/**
 * Builds a whole msgsys runtime (worker + client) inside a test against the harness server.
 */
import { Effect, Layer, type Scope } from "effect"
import type * as Actor from "../../src/actor/Actor.ts"
import * as MsgsysConfig from "../../src/config/MsgsysConfig.ts"
import * as App from "../../src/app/App.ts"
import type * as Worker from "../../src/runtime/Worker.ts"

let actorCounter = 0
/** A unique actor name (subjects of actors of different tests on one server must not overlap). */
export const actorName = (base = "a") => `${base}${process.pid}x${++actorCounter}`

/**
 * Starts a worker for `app` with `settings` in the current scope and returns its services.
 */
export const startRuntime = <Actors extends ReadonlyArray<Actor.Any>, E>(
  app: App.App<Actors, E>,
  settings: MsgsysConfig.MsgsysSettings,
  options: Omit<App.WorkerOptions, "config"> = {}
) =>
  Layer.build(App.layer(app, { ...options, config: Layer.succeed(MsgsysConfig.MsgsysConfig, settings) }))

export type { Scope, Worker }
export { Effect }
