/**
 * The reports domain: plan a report from what was extracted, render a report for a tenant and
 * period. Fast-pool, priorities matter: a report someone waits for is enqueued with priority high.
 */
import { Effect, Schema } from "effect"
import { Actor, Task } from "msgsys"

export const Render = Task.make("reports.render", {
  input: { tenant: Schema.String, period: Schema.String, format: Schema.Literals(["pdf", "csv"]) },
  output: { url: Schema.String, pages: Schema.Int }
})

/** Which report to render for the rows extracted: the step between `etl.extract` and `reports.render` in a pipeline. */
export const PlanReport = Task.make("reports.plan", {
  input: { tenant: Schema.String, extracted: Schema.Int },
  output: { tenant: Schema.String, period: Schema.String, format: Schema.Literals(["pdf", "csv"]) }
})

export const Reports = Actor.make("reports", {
  protocol: [Render, PlanReport],
  pool: "fast",
  concurrency: 8,
  timeout: "1 minute"
})

export const ReportsLive = Reports.toLayer(Reports.of({
  "reports.render": ({ input, taskId }) =>
    Effect.succeed({ url: `file:///reports/${input.tenant}/${input.period}-${taskId}.${input.format}`, pages: 3 }),
  "reports.plan": ({ input }) =>
    Effect.succeed({ tenant: input.tenant, period: "2026-11", format: input.extracted > 1000 ? "csv" as const : "pdf" as const })
}))
