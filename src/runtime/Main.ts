/**
 * Running a msgsys program as a process: logging from the config, and signals. On SIGTERM or
 * SIGINT the main fiber is interrupted, every finalizer runs (the worker's graceful shutdown, the
 * audit flush, the NATS drain), and the process exits 0 (guarantee 7). A failure exits 1 after
 * printing its message, which names the problem and the fix.
 * @since 0.1.0
 */
import { Cause, Effect, Exit, Layer, Logger, References, Runtime } from "effect"
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
        : Logger.consolePretty()
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

/** One readable line (or a few) for a failure: the error's own message, not a stack. @category utils @since 0.1.0 */
export const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (error instanceof Error) return error.message || error.name
  return String(error)
}

/**
 * Runs `main` as the process: signals interrupt it; exit code 0 after a signal or success, 1
 * after a failure (its message printed to stderr).
 * @category running @since 0.1.0
 */
export const runMain = Runtime.makeRunMain(({ fiber }) => {
  let signaled = false
  const onSignal = () => {
    if (signaled) return
    signaled = true
    fiber.interruptUnsafe(fiber.id)
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  fiber.addObserver((exit) => {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
      process.stderr.write(`msgsys: ${describeFailure(exit.cause)}\n`)
      process.exit(1)
    }
    process.exit(0)
  })
})

/** Runs an Effect program as the process (see `runMain`). @category running @since 0.1.0 */
export const run = <A, E>(main: Effect.Effect<A, E>): void => runMain(main, { disableErrorReporting: true })
