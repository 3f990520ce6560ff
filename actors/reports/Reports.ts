/**
 * The reports domain: render a report for a tenant and period. Fast-pool, priorities matter:
 * a report someone waits for is enqueued with priority high.
 */
import { Effect, Schema } from "effect"
import { Actor, Task } from "msgsys"

export const Render = Task.make("reports.render", {
  input: { tenant: Schema.String, period: Schema.String, format: Schema.Literals(["pdf", "csv"]) },
  output: { url: Schema.String, pages: Schema.Int }
})

export const Reports = Actor.make("reports", {
  protocol: [Render],
  pool: "fast",
  concurrency: 8,
  timeout: "1 minute"
})

export const ReportsLive = Reports.toLayer(Reports.of({
  "reports.render": ({ input, taskId }) =>
    Effect.succeed({ url: `file:///reports/${input.tenant}/${input.period}-${taskId}.${input.format}`, pages: 3 })
}))
