/**
 * The ETL domain: extract rows from a source, transform them, load them. A slow-pool actor,
 * partitioned by tenant so one tenant's runs never overlap.
 */
import { Effect, Schema } from "effect"
import { Actor, Retry, Task } from "msgsys"

/** The source refused the request; retrying later may help. */
export class SourceUnavailable extends Schema.TaggedError<SourceUnavailable>()("SourceUnavailable", {
  source: Schema.String
}) {}

/** The account does not exist at the source: no retry can help. */
export class UnknownAccount extends Schema.TaggedError<UnknownAccount>()("UnknownAccount", {
  tenant: Schema.String
}) {}

export const Extract = Task.make("etl.extract", {
  input: { tenant: Schema.String, source: Schema.String, rows: Schema.Int },
  output: { tenant: Schema.String, extracted: Schema.Int },
  error: Schema.Union([SourceUnavailable, UnknownAccount]),
  permanent: ["UnknownAccount"],
  idempotencyKey: ({ tenant, source }) => `${tenant}:${source}`
})

export const Transform = Task.make("etl.transform", {
  input: { tenant: Schema.String, values: Schema.Array(Schema.Number) },
  output: { tenant: Schema.String, total: Schema.Number, count: Schema.Int }
})

export const Etl = Actor.make("etl", {
  protocol: [Extract, Transform],
  pool: "slow",
  concurrency: 4,
  timeout: "2 minutes",
  retry: Retry.exponential({ base: "500 millis", maxAttempts: 4, cap: "30 seconds" }),
  partitionBy: (input: { readonly tenant: string }) => input.tenant
})

export const EtlLive = Etl.toLayer(Etl.of({
  "etl.extract": ({ input }) =>
    input.tenant === "unknown"
      ? Effect.fail(new UnknownAccount({ tenant: input.tenant }))
      : Effect.succeed({ tenant: input.tenant, extracted: input.rows }).pipe(Effect.delay("20 millis")),
  "etl.transform": ({ input }) =>
    Effect.succeed({
      tenant: input.tenant,
      total: input.values.reduce((a, b) => a + b, 0),
      count: input.values.length
    })
}))

