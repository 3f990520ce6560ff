/**
 * Running a msgsys program as a process: signals and the exit code. On SIGTERM or
 * SIGINT the main fiber is interrupted, every finalizer runs (the worker's graceful shutdown, the
 * audit flush, the NATS drain), and the process exits 0 (guarantee 7). A failure exits 1 (or the
 * code its error declares with `Runtime.errorExitCode`) after printing its message, which names
 * the problem and the fix, on one line; the whole cause with its stack traces only when asked.
 * @since 0.1.0
 */
import { Cause, Effect, Exit, Runtime } from "effect"
import { describeFailure } from "../trace/Logging.ts"

/** How `runMainWith` reports a failure. @category models @since 0.1.0 */
export interface RunOptions {
  /** Print the whole cause of a failure, stack traces included. Default false. */
  readonly verbose?: boolean | undefined
}

/**
 * Runs `main` as the process: signals interrupt it; exit code 0 after a signal or success. A
 * failure prints its message to stderr (unless its error says it was shown already, with
 * `Runtime.errorReported`) and exits with the code its error declares (`Runtime.errorExitCode`),
 * else 1.
 * @category running @since 0.1.0
 */
export const runMainWith = (options: RunOptions = {}) => Runtime.makeRunMain(({ fiber }) => {
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
      const error = Cause.squash(exit.cause)
      if (Runtime.getErrorReported(error)) {
        process.stderr.write(`msgsys: ${describeFailure(exit.cause, options)}\n`)
      }
      process.exit(Runtime.getErrorExitCode(error))
    }
    process.exit(0)
  })
})

/** `runMainWith` with the defaults. @category running @since 0.1.0 */
export const runMain = runMainWith()

/** Runs an Effect program as the process (see `runMainWith`). @category running @since 0.1.0 */
export const run = <A, E>(main: Effect.Effect<A, E>, options: RunOptions = {}): void =>
  runMainWith(options)(main, { disableErrorReporting: true })
