/**
 * The services a msgsys program runs on, built from `MsgsysConfig` as one layer: the NATS
 * connection, the results and control buckets, the SQLite database with the audit log, the
 * exhausted dead letters and the idempotency store (SQLite, or NATS KV when workers span hosts),
 * and the clients of tasks and pipelines.
 * @since 0.1.0
 */
import { Effect, Layer, Option } from "effect"
import * as AuditLog from "../audit/AuditLog.ts"
import * as AuditQueries from "../audit/AuditQueries.ts"
import * as Database from "../sqlite/Database.ts"
import * as SqliteAuditLog from "../audit/SqliteAuditLog.ts"
import * as Nats from "../broker/Nats.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import * as Idempotency from "../idempotency/Idempotency.ts"
import * as KvIdempotency from "../idempotency/KvIdempotency.ts"
import * as SqliteIdempotency from "../idempotency/SqliteIdempotency.ts"
import * as Ledger from "../ledger/Ledger.ts"
import * as SqliteLedger from "../ledger/SqliteLedger.ts"
import * as StoreLedger from "../ledger/StoreLedger.ts"
import * as ExhaustedStore from "../dlq/ExhaustedStore.ts"
import * as SqliteExhaustedStore from "../dlq/SqliteExhaustedStore.ts"
import * as Pipelines from "../pipeline/Pipelines.ts"
import * as Client from "../client/Client.ts"
import * as CancelRequests from "../task/CancelRequests.ts"
import * as EnqueueKeys from "../task/EnqueueKeys.ts"
import * as Results from "../task/Results.ts"
import * as Tracing from "../trace/Tracing.ts"
import * as Control from "../control/Control.ts"
import * as Logging from "../trace/Logging.ts"

/** The SQLite file, opened as the config says. @category layers @since 0.1.0 */
export const database: Layer.Layer<Database.Database, Database.DatabaseError, MsgsysConfig.MsgsysConfig> = Layer.unwrap(
  Effect.map(MsgsysConfig.MsgsysConfig, (c) =>
    Database.layer({ path: c.sqlitePath, synchronous: c.sqliteSynchronous === "FULL" ? "full" : "normal" }))
)

/** The audit log as the config says (payload mode, redacted fields). @category layers @since 0.1.0 */
export const auditLog: Layer.Layer<AuditLog.AuditLog, never, Database.Database | MsgsysConfig.MsgsysConfig> = Layer.unwrap(
  Effect.map(MsgsysConfig.MsgsysConfig, (c) =>
    SqliteAuditLog.layerSqlite({ payload: c.auditPayload, redactFields: c.auditRedactFields }))
)

/** Exhausted dead letters, in the SQLite file. @category layers @since 0.1.0 */
export const exhaustedStore: Layer.Layer<ExhaustedStore.ExhaustedStore, never, Database.Database> = SqliteExhaustedStore.layerSqlite

type IdempotencyLayer = Layer.Layer<
  Idempotency.Idempotency,
  Idempotency.IdempotencyError,
  Database.Database | MsgsysConfig.MsgsysConfig | Nats.Nats
>

/**
 * Deletes audit rows older than `MSGSYS_AUDIT_RETENTION` once an hour while the program runs
 * (off when the retention is "off").
 * @category layers @since 0.1.0
 */
export const auditRetention: Layer.Layer<never, never, Database.Database | MsgsysConfig.MsgsysConfig> = Layer.effectDiscard(
  Effect.gen(function*() {
    const config = yield* MsgsysConfig.MsgsysConfig
    if (Option.isNone(config.auditRetention)) return
    yield* Effect.forkScoped(AuditQueries.pruneLoop(config.auditRetention.value, "1 hour"))
  })
)

/**
 * Deletes SQLite idempotency keys older than `MSGSYS_IDEMPOTENCY_RETENTION` once an hour (the KV
 * store's bucket TTL does that by itself).
 * @category layers @since 0.1.0
 */
export const idempotencyRetention: Layer.Layer<never, never, Idempotency.Idempotency | MsgsysConfig.MsgsysConfig> =
  Layer.effectDiscard(Effect.gen(function*() {
    const config = yield* MsgsysConfig.MsgsysConfig
    if (config.idempotencyStore !== "sqlite") return
    const store = yield* Idempotency.Idempotency
    yield* store.prune().pipe(
      Effect.tap((n) => n > 0 ? Effect.logInfo(`idempotency prune: deleted ${n} key(s)`) : Effect.void),
      Effect.catch((e) => Effect.logWarning(`idempotency prune failed: ${e.message}`)),
      Effect.andThen(Effect.sleep("1 hour")),
      Effect.forever,
      Effect.forkScoped
    )
  }))

/** The idempotency store the config chooses. @category layers @since 0.1.0 */
export const idempotency: IdempotencyLayer = Layer.unwrap(
  Effect.map(MsgsysConfig.MsgsysConfig, (c) =>
    c.idempotencyStore === "kv"
      ? KvIdempotency.layer({ retention: c.idempotencyRetention }) as IdempotencyLayer
      : SqliteIdempotency.layerSqlite({ retention: c.idempotencyRetention }) as IdempotencyLayer)
)

/**
 * The ledger: with keys in SQLite, claims, outcomes and audit rows share one transaction per
 * batch (`SqliteLedger`); with keys in NATS KV, it is built from the two stores (`StoreLedger`).
 * @category layers @since 0.1.0
 */
type LedgerLayer = Layer.Layer<
  Ledger.Ledger,
  never,
  Database.Database | MsgsysConfig.MsgsysConfig | Idempotency.Idempotency | AuditLog.AuditLog
>
export const ledgerWith = (options: { readonly audit: boolean }): LedgerLayer =>
  Layer.unwrap(
    Effect.map(MsgsysConfig.MsgsysConfig, (c): LedgerLayer =>
      c.idempotencyStore === "sqlite"
        ? SqliteLedger.layer({ audit: options.audit, payload: c.auditPayload, redactFields: c.auditRedactFields })
        : options.audit
        ? StoreLedger.layer
        : StoreLedger.layer.pipe(Layer.provide(AuditLog.layerNoop)) as LedgerLayer)
  )

/** The ledger with the audit on. @category layers @since 0.1.0 */
export const ledger: LedgerLayer = ledgerWith({ audit: true })

/**
 * Broker-side services: the connection, the results bucket (records, enqueue keys, cancel
 * requests) and the control bucket.
 * @category layers @since 0.1.0
 */
export const broker = Layer.mergeAll(Results.layer, EnqueueKeys.layer, CancelRequests.layer, Control.layer).pipe(
  Layer.provideMerge(Nats.layer)
)

/**
 * Everything, given a config layer; logs go to stderr at the configured level (the program's
 * own loggers are kept), spans to the OTLP endpoint when one is configured (`Tracing.layer`).
 * @category layers @since 0.1.0
 */
export const layerWith = <E>(
  config: Layer.Layer<MsgsysConfig.MsgsysConfig, E>,
  options: {
    /** False: no audit rows at all (for programs that want no trail, and to measure its cost). Default true. */
    readonly audit?: boolean
  } = {}
) =>
  Layer.mergeAll(Client.layer, Pipelines.layer).pipe(
    Layer.provideMerge(Layer.mergeAll(idempotencyRetention, ledgerWith({ audit: options.audit !== false }))),
    Layer.provideMerge(Layer.mergeAll(auditLog, idempotency, auditRetention, exhaustedStore)),
    Layer.provideMerge(database),
    Layer.provideMerge(broker),
    // below everything: the connection's and the worker's spans go out, and are flushed last
    Layer.provideMerge(Tracing.layer),
    Layer.provideMerge(Logging.levelFromConfig),
    Layer.provideMerge(config)
  )

/** Everything, from the environment (`MSGSYS_*`, `.env`). @category layers @since 0.1.0 */
export const layer = layerWith(MsgsysConfig.layer)
