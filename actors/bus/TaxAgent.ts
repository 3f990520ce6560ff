/**
 * The tax agent's services talking over the event bus: ingestion publishes
 * `tax.document.uploaded`; the `extract` group reads each document and publishes
 * `tax.document.extracted` (same tenant, same trace); the `coverage` group records the extracted
 * figures in a SQLite ledger, one row per tenant and document (an upsert: a redelivery changes
 * nothing).
 */
import { Database } from "bun:sqlite"
import { Context, Effect, Layer, Schema } from "effect"
import { App } from "msgsys"
import { DataDir } from "../shared/DataDir.ts"
import * as EventBus from "./EventBus.ts"

export const Tax = EventBus.bus("tax")

export const DocumentKind = Schema.Literals(["p60", "invoice", "receipt"])

export const DocumentUploaded = Tax.topic(
  "document.uploaded",
  Schema.Struct({ documentId: Schema.String, kind: DocumentKind, amountPence: Schema.Int })
)

export const DocumentExtracted = Tax.topic(
  "document.extracted",
  Schema.Struct({ documentId: Schema.String, kind: DocumentKind, income: Schema.Number, taxPaid: Schema.Number })
)

/** One ledger row. */
export interface LedgerRow {
  readonly tenant: string
  readonly documentId: string
  readonly kind: string
  readonly income: number
  readonly taxPaid: number
  readonly traceId: string
  readonly eventId: string
}

/** The coverage service's store: `tax/ledger.sqlite` under the data directory. */
export class TaxLedger extends Context.Service<TaxLedger, {
  readonly record: (row: LedgerRow) => Effect.Effect<void>
  readonly rows: (tenant: string) => Effect.Effect<ReadonlyArray<LedgerRow>>
  readonly path: string
}>()("actors/TaxLedger") {}

export const TaxLedgerLive: Layer.Layer<TaxLedger, never, DataDir> = Layer.effect(
  TaxLedger,
  Effect.gen(function*() {
    const path = (yield* DataDir).file("tax", "ledger.sqlite")
    const db = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const db = new Database(path, { create: true })
        db.run("PRAGMA journal_mode = WAL")
        db.run("PRAGMA busy_timeout = 5000")
        db.run(`CREATE TABLE IF NOT EXISTS documents (
          tenant TEXT NOT NULL, document_id TEXT NOT NULL, kind TEXT NOT NULL, income REAL NOT NULL,
          tax_paid REAL NOT NULL, trace_id TEXT NOT NULL, event_id TEXT NOT NULL,
          PRIMARY KEY (tenant, document_id))`)
        return db
      }),
      (db) => Effect.sync(() => db.close())
    )
    const upsert = db.prepare(
      `INSERT INTO documents (tenant, document_id, kind, income, tax_paid, trace_id, event_id) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, document_id) DO UPDATE SET kind = excluded.kind, income = excluded.income,
         tax_paid = excluded.tax_paid, trace_id = excluded.trace_id, event_id = excluded.event_id`
    )
    const select = db.prepare<
      { tenant: string; document_id: string; kind: string; income: number; tax_paid: number; trace_id: string; event_id: string },
      [string]
    >("SELECT * FROM documents WHERE tenant = ? ORDER BY document_id")
    return TaxLedger.of({
      path,
      record: (r) => Effect.sync(() => void upsert.run(r.tenant, r.documentId, r.kind, r.income, r.taxPaid, r.traceId, r.eventId)),
      rows: (tenant) =>
        Effect.sync(() =>
          select.all(tenant).map((r) => ({
            tenant: r.tenant,
            documentId: r.document_id,
            kind: r.kind,
            income: r.income,
            taxPaid: r.tax_paid,
            traceId: r.trace_id,
            eventId: r.event_id
          }))
        )
    })
  })
)

/** What a document yields: a P60 is income with tax deducted at 20%, the others are expenses. */
export const extract = (kind: typeof DocumentKind.Type, amountPence: number) => {
  const pounds = amountPence / 100
  return kind === "p60" ? { income: pounds, taxPaid: Math.round(pounds * 20) / 100 } : { income: -pounds, taxPaid: 0 }
}

/** Reads each uploaded document and publishes what it found, in the same trace. */
export const Extract = Tax.subscribe("extract", DocumentUploaded, (event) =>
  EventBus.EventBus.use((bus) =>
    bus.publish(DocumentExtracted, {
      data: { documentId: event.data.documentId, kind: event.data.kind, ...extract(event.data.kind, event.data.amountPence) },
      actor: "svc-extract",
      tenantId: event.tenantId,
      parent: event,
      // derived from the upload: a redelivery after a crash publishes the same event, stored once
      eventId: `extracted-${event.eventId}`
    })
  ))

/** Records the extracted figures per tenant and document. */
export const Coverage = Tax.subscribe("coverage", DocumentExtracted, (event) =>
  TaxLedger.use((ledger) =>
    ledger.record({
      tenant: event.tenantId,
      documentId: event.data.documentId,
      kind: event.data.kind,
      income: event.data.income,
      taxPaid: event.data.taxPaid,
      traceId: event.traceId,
      eventId: event.eventId
    })
  ))

/** The tax agent's groups and the topics it publishes; its handlers need the data directory. */
export const parts = {
  subscribers: [Extract.group, Coverage.group],
  events: [DocumentUploaded, DocumentExtracted],
  handlers: Layer.mergeAll(Extract.layer, Coverage.layer).pipe(
    Layer.provide(EventBus.layer),
    Layer.provideMerge(TaxLedgerLive)
  )
}

/** The tax agent as an app of its own, with its files under `dir`. */
export const app = (data: Layer.Layer<DataDir>) =>
  App.make({
    actors: [],
    subscribers: parts.subscribers,
    events: parts.events,
    handlers: Layer.provide(parts.handlers, data)
  })
