/**
 * The actors `msgsys dev` and `msgsys worker` run by default, and the demo `msgsys dev --once`
 * runs against them. Run this file directly (`bun run actors/index.ts`) for a worker binary.
 */
import { Console, Effect, Layer } from "effect"
import { App, Client, Pipeline, Pipelines } from "msgsys"
import { Etl, EtlLive, Extract, Transform } from "./etl/Etl.ts"
import { PlanReport, Render, Reports, ReportsLive } from "./reports/Reports.ts"

/** Extract, plan the report, render it: three tasks of two actors, each step's output the next one's input. */
export const Nightly = Pipeline.chain(Extract, PlanReport, Render)

/** Enqueues one task of each kind and runs the pipeline, waits for every result, and checks them. */
const demo = Effect.gen(function*() {
  const client = yield* Client.Client
  const pipelines = yield* Pipelines.Pipelines
  const extract = yield* client.enqueue(Extract, { tenant: "acme", source: "salesforce", rows: 120 })
  const transform = yield* client.enqueue(Transform, { tenant: "acme", values: [1, 2, 3.5] })
  const report = yield* client.enqueue(Render, { tenant: "acme", period: "2026-11", format: "pdf" }, { priority: "high" })
  const [e, t, r] = yield* Effect.all([
    client.result(extract, "30 seconds"),
    client.result(transform, "30 seconds"),
    client.result(report, "30 seconds")
  ], { concurrency: "unbounded" })
  const nightly = yield* pipelines.start(Nightly, { tenant: "acme", source: "salesforce", rows: 80 })
  const n = yield* pipelines.result(nightly, "30 seconds")
  if (e.extracted !== 120 || t.total !== 6.5 || r.pages !== 3 || !n.url.endsWith(".pdf")) {
    return yield* Effect.die(new Error(`demo got unexpected results: ${JSON.stringify({ e, t, r, n })}`))
  }
  yield* Console.log(
    `extract: ${JSON.stringify(e)}\ntransform: ${JSON.stringify(t)}\nreport: ${JSON.stringify(r)}\n` +
      `pipeline ${nightly.id} (extract -> plan -> render): ${JSON.stringify(n)}`
  )
})

const app = App.make({
  actors: [Etl, Reports],
  handlers: Layer.mergeAll(EtlLive, ReportsLive),
  demo
})

export default app

if (import.meta.main) App.runWorker(app)
