/**
 * Keeps a long-running loop alive: when it fails or dies (a lost consumer, a broker error, a
 * defect in the runtime) it is restarted after an exponential backoff, and the restart is logged
 * and counted. A handler failure never reaches here: it fails only its own message.
 * @since 0.1.0
 */
import { Cause, Clock, Duration, Effect, Metric } from "effect"

/** @category metrics @since 0.1.0 */
export const restartsTotal = Metric.counter("msgsys_supervisor_restarts_total", {
  description: "Restarts of supervised loops (consume loops, delay movers, advisory sweepers)",
  incremental: true
})

/** @category models @since 0.1.0 */
export interface Options {
  /** Runs before each restart, e.g. to re-declare a consumer deleted from under the loop. */
  readonly beforeRestart?: Effect.Effect<void, unknown>
  /** First backoff. Default 100 millis; doubles up to `maxBackoff`. */
  readonly minBackoff?: Duration.Input
  /** Default 10 seconds. */
  readonly maxBackoff?: Duration.Input
  /** Called with the restart count after each restart. */
  readonly onRestart?: (count: number) => void
  /** A run that lasted this long resets the backoff. Default 30 seconds. */
  readonly healthyAfter?: Duration.Input
  /** Labels of the restart counter beside `loop` (the name), e.g. `{ actor: "etl" }`. */
  readonly attributes?: Readonly<Record<string, string>>
}

/**
 * Runs `loop` forever, restarting it on failure or defect. Interruption stops it.
 * @category supervision @since 0.1.0
 */
export const supervise = <E>(name: string, loop: Effect.Effect<unknown, E>, options: Options = {}): Effect.Effect<never> =>
  Effect.gen(function*() {
    const min = Duration.toMillis(Duration.fromInputUnsafe(options.minBackoff ?? "100 millis"))
    const max = Duration.toMillis(Duration.fromInputUnsafe(options.maxBackoff ?? "10 seconds"))
    const healthyAfter = Duration.toMillis(Duration.fromInputUnsafe(options.healthyAfter ?? "30 seconds"))
    const counter = Metric.withAttributes(restartsTotal, { ...options.attributes, loop: name })
    // the series exists from the start (at 0), so a scrape before the first restart shows it
    yield* Metric.update(counter, 0)
    let restarts = 0
    let failuresInARow = 0
    while (true) {
      const started = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(loop)
      if (exit._tag === "Failure" && Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
      const ran = (yield* Clock.currentTimeMillis) - started
      failuresInARow = ran > healthyAfter ? 1 : failuresInARow + 1
      const backoff = Math.min(max, min * 2 ** (failuresInARow - 1))
      restarts++
      yield* Metric.update(counter, 1)
      options.onRestart?.(restarts)
      const why = exit._tag === "Failure" ? Cause.pretty(exit.cause) : "it returned"
      yield* Effect.logWarning(`${name} stopped; restart #${restarts} in ${backoff} ms`, why)
      yield* Effect.sleep(Duration.millis(backoff))
      if (options.beforeRestart) {
        yield* options.beforeRestart.pipe(
          Effect.catchCause((c) => Effect.logWarning(`${name}: preparing the restart failed`, Cause.pretty(c)))
        )
      }
    }
  })
