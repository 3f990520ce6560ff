/**
 * What handlers did, as metrics: every run's outcome by actor, subject and outcome, its duration,
 * and the retries it scheduled. The dispatcher records each run once, when its verdict is known,
 * with one synchronous call (no Effect per message); the series objects are made once per label
 * set and kept.
 * @since 0.1.0
 */
import { type Context, Metric } from "effect"

/** A handler run's outcome, as the `outcome` label says it. @category models @since 0.1.0 */
export type Outcome = "succeeded" | "retry" | "dead" | "cancelled" | "stopped" | "lease_lost"

/** @category metrics @since 0.1.0 */
export const messagesTotal = Metric.counter("msgsys_messages_total", {
  description: "Handler runs by actor, subject and outcome (succeeded, retry, dead, cancelled, stopped, lease_lost)",
  incremental: true
})

/** @category metrics @since 0.1.0 */
export const handlerDuration = Metric.histogram("msgsys_handler_duration_ms", {
  description: "How long handler runs took, milliseconds, by actor and subject",
  boundaries: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000]
})

/** @category metrics @since 0.1.0 */
export const retriesTotal = Metric.counter("msgsys_retries_total", {
  description: "Retries scheduled after a failed run (nak with the retry policy's delay), by actor and subject",
  incremental: true
})

const outcomeOf: Readonly<Record<string, Outcome>> = {
  Succeeded: "succeeded",
  Retry: "retry",
  Dead: "dead",
  Cancelled: "cancelled",
  Stopped: "stopped",
  LeaseLost: "lease_lost"
}

/** Records one run: `(subject, verdictTag, durationMs)`. @category models @since 0.1.0 */
export type Recorder = (subject: string, verdict: string, durationMs: number) => void

/**
 * A recorder for one actor, updating the metrics of `context`'s registry. `verdict` is the
 * `Verdict` tag (`Succeeded`, `Retry`, …).
 * @category constructors @since 0.1.0
 */
export const recorder = (context: Context.Context<never>, actor: string): Recorder => {
  const counters = new Map<string, Metric.Metric<number, unknown>>()
  const durations = new Map<string, Metric.Metric<number, unknown>>()
  const retries = new Map<string, Metric.Metric<number, unknown>>()
  const series = (cache: Map<string, Metric.Metric<number, unknown>>, key: string, make: () => Metric.Metric<number, unknown>) => {
    let m = cache.get(key)
    if (m === undefined) {
      m = make()
      cache.set(key, m)
    }
    return m
  }
  return (subject, verdict, durationMs) => {
    const outcome = outcomeOf[verdict] ?? verdict.toLowerCase()
    series(counters, `${subject}\u0000${outcome}`, () => Metric.withAttributes(messagesTotal, { actor, subject, outcome }))
      .updateUnsafe(1, context)
    series(durations, subject, () => Metric.withAttributes(handlerDuration, { actor, subject })).updateUnsafe(durationMs, context)
    if (outcome === "retry") {
      series(retries, subject, () => Metric.withAttributes(retriesTotal, { actor, subject })).updateUnsafe(1, context)
    }
  }
}
