/**
 * How msgsys writes logs: the logger and minimum level the config asks for (on stderr, so a
 * command's output on stdout stays clean for scripts), and one readable line for a failure.
 * @since 0.1.0
 */
import { Cause, Effect, Layer, Logger, References } from "effect"
import { MsgsysConfig, type MsgsysSettings } from "../config/MsgsysConfig.ts"

/**
 * The log format `auto` stands for here: pretty for a person at a terminal, JSON (one object a
 * line, with the message's annotations) for whatever collects a service's stderr.
 * @category logging @since 0.1.0
 */
export const resolveLogFormat = (
  format: MsgsysSettings["logFormat"],
  terminal: boolean = process.stderr.isTTY === true
): "pretty" | "json" | "logfmt" => format === "auto" ? (terminal ? "pretty" : "json") : format

/**
 * Pretty logs are coloured only on a terminal, and never with `NO_COLOR` set: they go to stderr,
 * which `Logger.consolePretty` does not look at (it asks stdout). The same rule as `cli/Style`.
 */
const stderrColors = () =>
  process.stderr.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== "dumb"

/**
 * The logger and minimum level the settings ask for. Logs go to stderr, so a command's output on
 * stdout (a task id, a result as JSON) stays clean for scripts.
 * @category layers @since 0.1.0
 */
export const logging = (settings: Pick<MsgsysSettings, "logLevel" | "logFormat">): Layer.Layer<never> => {
  const format = resolveLogFormat(settings.logFormat)
  return Layer.mergeAll(
    Logger.layer([
      format === "json"
        ? Logger.withConsoleError(Logger.formatJson)
        : format === "logfmt"
        ? Logger.withConsoleError(Logger.formatLogFmt)
        : Logger.consolePretty({ colors: stderrColors() })
    ]),
    Layer.succeed(References.LogToStderr, true),
    Layer.succeed(References.MinimumLogLevel, settings.logLevel)
  )
}

/**
 * `logging` as the `MsgsysConfig` in context says: provide it under the layers of a program so
 * their own start-up lines follow it too.
 * @category layers @since 0.1.0
 */
export const loggingFromConfig: Layer.Layer<never, never, MsgsysConfig> = Layer.unwrap(
  Effect.map(MsgsysConfig, logging)
)

/**
 * The configured minimum level, and console logs on stderr, for layers embedded in a program
 * that may have loggers of its own: they are kept (`loggingFromConfig` replaces them).
 * @category layers @since 0.1.0
 */
export const levelFromConfig: Layer.Layer<never, never, MsgsysConfig> = Layer.unwrap(
  Effect.map(MsgsysConfig, (settings) =>
    Layer.mergeAll(
      Layer.succeed(References.LogToStderr, true),
      Layer.succeed(References.MinimumLogLevel, settings.logLevel)
    ))
)

/**
 * One readable line (or a few) for a failure: the error's own message, not a stack. With
 * `verbose`, the whole cause: every error with its stack trace and the causes it wraps.
 * @category utils @since 0.1.0
 */
export const describeFailure = (cause: Cause.Cause<unknown>, options: { readonly verbose?: boolean } = {}): string => {
  if (options.verbose) return Cause.pretty(cause)
  const error = Cause.squash(cause)
  if (error instanceof Error) return error.message || error.name
  return String(error)
}
