/**
 * The layers short-lived commands run on: the config (with `msgsys dev`'s server as the default),
 * quiet logging, and the broker-side services without SQLite.
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import * as Nats from "../broker/Nats.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import * as Services from "../app/Services.ts"
import * as Client from "../client/Client.ts"
import * as DevState from "./DevState.ts"
import * as Logging from "../trace/Logging.ts"

/** Config, plus logging that shows only warnings and errors unless MSGSYS_LOG_LEVEL asks for more. */
const configAndQuietLogging = Layer.unwrap(Effect.gen(function*() {
  const settings = yield* MsgsysConfig.MsgsysConfig
  const quiet = process.env.MSGSYS_LOG_LEVEL ? settings : { ...settings, logLevel: "Warn" as const }
  return Layer.merge(Layer.succeed(MsgsysConfig.MsgsysConfig, settings), Logging.logging(quiet))
})).pipe(Layer.provide(DevState.configLayer))

/** A connection for commands that only look at the broker. @category layers @since 0.1.0 */
export const natsLayer = Nats.layer.pipe(Layer.provideMerge(configAndQuietLogging))

/** Connection, results, control and client. @category layers @since 0.1.0 */
export const clientLayer = Client.layer.pipe(
  Layer.provideMerge(Services.broker),
  Layer.provideMerge(configAndQuietLogging)
)
