/**
 * What handlers did, as metrics: every run's outcome by actor, subject and outcome, its duration,
 * and the retries it scheduled. The dispatcher records each run once, when its verdict is known,
 * with one synchronous call that adds to plain numbers; the metric registry reads them when
 * scraped.
 * @since 0.1.0
 */
import { type Context, Metric } from "effect"

/** A handler run's outcome, as the `outcome` label says it. @category models @since 0.1.0 */
export type Outcome = "succeeded" | "retry" | "dead" | "cancelled" | "stopped" | "lease_lost"

/** @category metrics @since 0.1.0 */
export const messagesTotal: Metric.Counter<number> = Metric.counter("msgsys_messages_total", {
  description: "Handler runs by actor, subject and outcome (succeeded, retry, dead, cancelled, stopped, lease_lost)",
  incremental: true
})

const durationBounds: ReadonlyArray<number> = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000]

/** @category metrics @since 0.1.0 */
export const handlerDuration = Metric.histogram("msgsys_handler_duration_ms", {
  description: "How long handler runs took, milliseconds, by actor and subject",
  boundaries: durationBounds
})

/** @category metrics @since 0.1.0 */
export const retriesTotal: Metric.Counter<number> = Metric.counter("msgsys_retries_total", {
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

const noUpdate = () => {}

/**
 * A recorder for one actor. Its counts live in plain numbers, updated with no Effect and no
 * registry lookup (an update of an Effect metric costs about a microsecond, or several when
 * series alternate: too much for every message); each series is registered once in `context`'s
 * metric registry with hooks that read them, so a scrape renders them like any metric. `verdict`
 * is the `Verdict` tag (`Succeeded`, `Retry`, …).
 * @category constructors @since 0.1.0
 */
export const recorder = (context: Context.Context<never>, actor: string): Recorder => {
  const counts = new Map<string, { n: number }>()
  const durations = new Map<string, Histogram>()
  const retries = new Map<string, { n: number }>()
  const counter = (cache: Map<string, { n: number }>, key: string, metric: Metric.Counter<number>, attributes: Record<string, string>) => {
    let c = cache.get(key)
    if (c === undefined) {
      const state = { n: 0 }
      c = state
      cache.set(key, state)
      Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
        get: () => ({ count: state.n, incremental: true }),
        update: noUpdate,
        modify: noUpdate
      })
    }
    return c
  }
  return (subject, verdict, durationMs) => {
    const outcome = outcomeOf[verdict] ?? verdict.toLowerCase()
    counter(counts, `${subject}\u0000${outcome}`, messagesTotal, { actor, subject, outcome }).n++
    let h = durations.get(subject)
    if (h === undefined) {
      const state = new Histogram(durationBounds)
      h = state
      durations.set(subject, state)
      Metric.registerUnsafe(Metric.withAttributes(handlerDuration, { actor, subject }), context, {
        get: () => state.state(),
        update: noUpdate,
        modify: noUpdate
      })
    }
    h.add(durationMs)
    if (outcome === "retry") counter(retries, subject, retriesTotal, { actor, subject }).n++
  }
}

/** Bucket counts of one histogram series, as effect's histogram keeps them. */
class Histogram {
  readonly values: Uint32Array
  count = 0
  sum = 0
  min = Number.MAX_VALUE
  max = -Number.MAX_VALUE
  constructor(readonly bounds: ReadonlyArray<number>) {
    this.values = new Uint32Array(bounds.length + 1)
  }
  add(value: number) {
    let i = 0
    while (i < this.bounds.length && value > this.bounds[i]!) i++
    this.values[i]!++
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }
  state(): Metric.HistogramState {
    let cumulated = 0
    return {
      buckets: this.bounds.map((b, i): [number, number] => [b, (cumulated += this.values[i]!)]),
      count: this.count,
      min: this.min,
      max: this.max,
      sum: this.sum
    }
  }
}
