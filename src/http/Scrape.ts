/**
 * `/metrics`: every Effect `Metric` of the process in the Prometheus text format (effect's own
 * `PrometheusMetrics`), after the gauges that are read at scrape time are brought up to date:
 * each consumer's pending and ack-pending counts from JetStream (the lag), and each pool's
 * in-flight work and size. The counters and histograms are updated where their events happen
 * (handler runs, retries, dead letters, restarts, SQLite commits).
 * @since 0.1.0
 */
import { Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as DeadLetters from "../dlq/DeadLetters.ts"
import { Worker } from "../runtime/Worker.ts"

/** @category metrics @since 0.1.0 */
export const consumerPending = Metric.gauge("msgsys_consumer_pending", {
  description: "Messages not yet delivered by a consumer (lag), by actor and consumer; read from JetStream at scrape time"
})

/** @category metrics @since 0.1.0 */
export const consumerAckPending = Metric.gauge("msgsys_consumer_ack_pending", {
  description: "Messages delivered and not yet acknowledged, by actor and consumer; read from JetStream at scrape time"
})

/** @category metrics @since 0.1.0 */
export const poolInFlight = Metric.gauge("msgsys_pool_in_flight", {
  description: "Slots of a pool taken by running handlers in this worker"
})

/** @category metrics @since 0.1.0 */
export const poolSize = Metric.gauge("msgsys_pool_size", {
  description: "Concurrency budget of a pool in this worker"
})

/** @category metrics @since 0.1.0 */
export const scrapeErrors = Metric.counter("msgsys_scrape_errors_total", {
  description: "Scrapes that could not read a consumer's counts from JetStream (its gauges keep their last value)",
  incremental: true
})

const kinds: ReadonlyArray<Subjects.Priority | "delayed"> = [...Subjects.priorities, "delayed"]

/**
 * Brings the scrape-time gauges up to date, then renders every metric.
 * @category rendering @since 0.1.0
 */
export const render = Effect.gen(function*() {
  const nats = yield* Nats
  const worker = yield* Worker
  const config = yield* MsgsysConfig
  const names = Subjects.make(config.streamPrefix)
  yield* Effect.forEach(worker.actors, (actor) =>
    Effect.forEach(kinds, (kind) => {
      const consumer = names.taskConsumer(actor, kind)
      return Effect.tryPromise(() => nats.manager.consumers.info(names.taskStream(actor), consumer)).pipe(
        Effect.timeout("2 seconds"),
        Effect.flatMap((info) =>
          Effect.all([
            Metric.update(Metric.withAttributes(consumerPending, { actor, consumer: kind }), info.num_pending),
            Metric.update(Metric.withAttributes(consumerAckPending, { actor, consumer: kind }), info.num_ack_pending)
          ])
        ),
        Effect.catch(() => Metric.update(Metric.withAttributes(scrapeErrors, { actor, consumer: kind }), 1))
      )
    }, { concurrency: "unbounded", discard: true }), { concurrency: 4, discard: true })
  // counted when it happens; shown at 0 before that, so a scrape always has the series
  for (const actor of worker.actors) yield* Metric.update(Metric.withAttributes(DeadLetters.refusedCounter, { actor }), 0)
  for (const pool of yield* worker.pools) {
    yield* Metric.update(Metric.withAttributes(poolInFlight, { pool: pool.name }), pool.inFlight)
    yield* Metric.update(Metric.withAttributes(poolSize, { pool: pool.name }), pool.size)
  }
  return yield* PrometheusMetrics.format()
})

/** The content type of the Prometheus text format. @category constants @since 0.1.0 */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"
