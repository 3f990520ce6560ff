/**
 * The tax agent on a real nats-server and in memory: an upload becomes an extraction in the same
 * trace and tenant, recorded once per document in the ledger file.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Layer } from "effect"
import { MemoryBroker } from "msgsys/testing"
import * as DataDir from "../shared/DataDir.ts"
import { eventually, natsServer, quietLogs } from "../support/TestRuntime.ts"
import * as EventBus from "./EventBus.ts"
import { app, DocumentUploaded, TaxLedger, TaxLedgerLive } from "./TaxAgent.ts"

const nats = natsServer()

/** Uploads three documents for two tenants (one twice), then reads the ledger until it has them. */
const scenario = (dir: string) =>
  Effect.gen(function*() {
    const bus = yield* EventBus.EventBus
    const p60 = yield* bus.publish(DocumentUploaded, {
      data: { documentId: "d1", kind: "p60", amountPence: 3_000_000 },
      actor: "svc-ingestion",
      tenantId: "acme",
      traceId: "upload-trace-1"
    })
    yield* bus.publish(DocumentUploaded, { data: { documentId: "d2", kind: "receipt", amountPence: 4_250 }, actor: "svc-ingestion", tenantId: "acme" })
    yield* bus.publish(DocumentUploaded, { data: { documentId: "d1", kind: "invoice", amountPence: 10_000 }, actor: "svc-ingestion", tenantId: "globex" })
    const rows = (tenant: string) => TaxLedger.use((l) => l.rows(tenant)).pipe(Effect.provide(TaxLedgerLive), Effect.provide(DataDir.layer(dir)))
    yield* eventually("the ledger rows", Effect.map(Effect.all([rows("acme"), rows("globex")]), ([a, g]) => a.length === 2 && g.length === 1))
    const acme = yield* rows("acme")
    expect(acme.map((r) => [r.documentId, r.kind, r.income, r.taxPaid])).toEqual([["d1", "p60", 30_000, 6_000], ["d2", "receipt", -42.5, 0]])
    // the extraction followed the upload's trace; its event id derives from the upload's
    expect(acme[0]!.traceId).toBe("upload-trace-1")
    expect(acme[0]!.eventId).toBe(`extracted-${p60.id}`)
    expect((yield* rows("globex")).map((r) => [r.documentId, r.kind])).toEqual([["d1", "invoice"]])
  })

describe("the tax agent", () => {
  test("on NATS: each upload is extracted and recorded once per tenant and document, in its trace", () =>
    Effect.runPromise(Effect.gen(function*() {
      const dir = nats.dir()
      const ctx = yield* nats.start(app(DataDir.layer(dir)), nats.settings(dir))
      yield* scenario(dir).pipe(Effect.provide(EventBus.layer), Effect.provideContext(ctx))
    }).pipe(Effect.scoped, Effect.provide(quietLogs))))

  test("in memory: the same", () =>
    Effect.runPromise(Effect.gen(function*() {
      const dir = nats.dir()
      yield* scenario(dir).pipe(Effect.provide(EventBus.layer), Effect.provide(MemoryBroker.layerApp(app(DataDir.layer(dir)))))
    }).pipe(Effect.scoped, Effect.provide(quietLogs))))
})
