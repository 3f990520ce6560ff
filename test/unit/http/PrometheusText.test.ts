/**
 * The strict Prometheus text parser the /metrics test relies on: it must reject what a
 * Prometheus server rejects (or the /metrics test could not fail), and accept what effect's
 * `PrometheusMetrics` renders for the metric kinds msgsys uses.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Prometheus from "../../support/prometheus.ts"

describe("the strict Prometheus text parser", () => {
  test("accepts counters, gauges and histograms with escaped labels", () => {
    const families = Prometheus.parse([
      "# HELP a_total things \\\\ done",
      "# TYPE a_total counter",
      "a_total{x=\"q\\\"uote\",y=\"new\\nline\"} 3",
      "# TYPE g gauge",
      "g -1.5e3",
      "# TYPE h histogram",
      "h_bucket{le=\"1\"} 1",
      "h_bucket{le=\"+Inf\"} 2",
      "h_sum 3.5",
      "h_count 2",
      ""
    ].join("\n"))
    expect(families.get("a_total")?.samples[0]?.labels).toEqual({ x: "q\"uote", y: "new\nline" })
    expect(families.get("g")?.samples[0]?.value).toBe(-1500)
    expect(families.get("h")?.samples).toHaveLength(4)
  })

  const rejected: ReadonlyArray<readonly [string, string]> = [
    ["a family split in two", "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n"],
    ["a series given twice", "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n"],
    ["a bad escape", "# TYPE a gauge\na{x=\"\\t\"} 1\n"],
    ["a bad metric name", "# TYPE 1a gauge\n1a 1\n"],
    ["a bad label name", "# TYPE a gauge\na{1x=\"1\"} 1\n"],
    ["a value that is no number", "# TYPE a gauge\na one\n"],
    ["a TYPE after samples", "a 1\n# TYPE a gauge\n"],
    ["a negative counter", "# TYPE a counter\na -1\n"],
    ["buckets that are not cumulative", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"],
    ["a histogram without +Inf", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"],
    ["a histogram without _count", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"],
    ["no final newline", "# TYPE a gauge\na 1"]
  ]
  for (const [what, text] of rejected) {
    test(`rejects ${what}`, () => {
      expect(() => Prometheus.parse(text)).toThrow()
    })
  }

  test("accepts what effect's PrometheusMetrics renders for labelled counters, gauges and histograms", async () => {
    const text = await Effect.runPromise(Effect.gen(function*() {
      const c = Metric.counter("t_runs_total", { description: "runs", incremental: true })
      const g = Metric.gauge("t_in_flight")
      const hist = Metric.histogram("t_duration_ms", { boundaries: [1, 10] })
      yield* Metric.update(Metric.withAttributes(c, { actor: "a\"b", outcome: "ok" }), 2)
      yield* Metric.update(Metric.withAttributes(g, { pool: "fast" }), 3)
      yield* Metric.update(Metric.withAttributes(hist, { actor: "a" }), 5)
      yield* Metric.update(Metric.withAttributes(hist, { actor: "b" }), 50)
      return yield* PrometheusMetrics.format()
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
    const families = Prometheus.parse(text)
    expect(families.get("t_runs_total")?.samples[0]).toEqual({ name: "t_runs_total", labels: { actor: "a\"b", outcome: "ok" }, value: 2 })
    expect(families.get("t_duration_ms")?.type).toBe("histogram")
  })
})
