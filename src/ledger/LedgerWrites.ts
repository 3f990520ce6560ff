/**
 * The ledger's writes as synchronous statements on one connection — claims, settlements and lease
 * renewals with their audit rows — to run inside a transaction the caller holds: the SQLite
 * writer's on the thread that dispatches, or the group commit of the ledger's own thread
 * (src/ledger/internal/ledgerThread.ts). Plain code without Effect, so that thread loads fast.
 * @since 0.1.0
 */
import type { AuditRecord, PayloadMode } from "../audit/AuditLog.ts"
import * as AuditRows from "../audit/AuditRows.ts"
import type { Claim } from "../idempotency/Idempotency.ts"
import * as KeyTable from "../idempotency/KeyTable.ts"
import type { Handle } from "../sqlite/SqliteFile.ts"
import type { ClaimRequest, RunRef, Settled, Settlement, Sql } from "./Ledger.ts"

/** @category models @since 0.1.0 */
export interface Options {
  /** Audit rows on (default) or off (keys only: for programs that want no audit trail). */
  readonly audit?: boolean | undefined
  readonly payload: PayloadMode
  readonly redactFields: ReadonlyArray<string>
}

/** @category models @since 0.1.0 */
export interface LedgerWrites {
  /** One answer per request; audit rows are written for `Claimed` runs only. */
  readonly claim: (requests: ReadonlyArray<ClaimRequest>, now: number) => Array<Claim>
  /** One answer per settlement. */
  readonly settle: (items: ReadonlyArray<Settlement>, now: number) => Array<Settled>
  readonly renew: (runs: ReadonlyArray<RunRef>, leaseMs: number, now: number) => Array<boolean>
  /** The key statements, for reads outside a transaction (`check`). */
  readonly keys: KeyTable.Keys
  readonly rows: AuditRows.AuditRows
}

const STORED: Settled = { _tag: "Stored" }
const LOST: Settled = { _tag: "LeaseLost" }

/**
 * Prepares the statements on `handle` (whose schema must be migrated).
 * @category constructors @since 0.1.0
 */
export const prepare = (handle: Handle, options: Options): LedgerWrites => {
  const keys = KeyTable.prepare(handle)
  const rows = AuditRows.prepare(handle, options)
  const savepoint = handle.prepare("SAVEPOINT task_writes")
  const releaseSavepoint = handle.prepare("RELEASE task_writes")
  const rollbackSavepoint = handle.prepare("ROLLBACK TO task_writes")
  const audited = options.audit !== false
  const record = (records: ReadonlyArray<AuditRecord>) => {
    if (audited && records.length > 0) rows.write(records)
  }
  const undo = () => {
    rollbackSavepoint.run()
    releaseSavepoint.run()
  }

  // what a handler's atCommit writes see: the same connection, inside the settle transaction
  const sql: Sql = {
    run: (text, ...params) => handle.query(text).run(...(params as Array<never>)),
    get: (text, ...params) => (handle.query(text).get(...(params as Array<never>)) ?? undefined) as never,
    all: (text, ...params) => handle.query(text).all(...(params as Array<never>)) as never
  }

  // "lost" also when another run completed the key meanwhile: its outcome and its "succeeded" row
  // stay the only ones (this message comes back, finds the key done and is acked as a duplicate)
  const complete = (run: RunRef, json: string, now: number): "stored" | "lost" =>
    (run.claimed === false
        ? keys.completeFree(run.key, run.owner, json, now, run.sequence)
        : keys.completeOwned(run.key, run.owner, json, now)) === "stored"
      ? "stored"
      : "lost"

  /** The outcomes, then the handler's writes, then the rows: all of them, or none. */
  const completeTogether = (
    runs: ReadonlyArray<RunRef>,
    outcomes: ReadonlyArray<unknown>,
    writes: ReadonlyArray<(sql: Sql) => void>,
    audit: ReadonlyArray<AuditRecord>,
    now: number
  ): Settled => {
    if (runs.length === 1 && writes.length === 0) {
      if (complete(runs[0]!, JSON.stringify(outcomes[0] ?? null), now) === "lost") return LOST
      record(audit)
      return STORED
    }
    savepoint.run()
    try {
      for (let i = 0; i < runs.length; i++) {
        if (complete(runs[i]!, JSON.stringify(outcomes[i] ?? null), now) === "lost") {
          undo()
          return LOST
        }
      }
      for (const write of writes) write(sql)
    } catch (cause) {
      undo()
      return { _tag: "WritesFailed", cause }
    }
    record(audit)
    releaseSavepoint.run()
    return STORED
  }

  const settleOne = (item: Settlement, now: number): Settled => {
    switch (item._tag) {
      case "Record":
        record(item.audit)
        return STORED
      case "Release":
        // a run that never claimed its key has nothing to give back
        if (item.run.claimed !== false) keys.release(item.run.key, item.run.owner)
        record(item.audit)
        return STORED
      case "MarkDead":
        keys.markDead(item.run.key, item.run.owner, item.run.sequence, JSON.stringify(item.verdict ?? null), now)
        record(item.audit)
        return STORED
      case "CompleteAll":
        return completeTogether(item.runs, item.outcomes, item.writes, item.audit, now)
      case "Complete":
        return completeTogether([item.run], [item.outcome], item.writes, item.audit, now)
    }
  }

  return {
    claim: (requests, now) =>
      requests.map((r): Claim => {
        const claim = keys.claim(r.run.key, r.run.owner, now + r.leaseMs, now, r.run.sequence)
        if (claim._tag === "Claimed") record(r.audit)
        return claim
      }),
    settle: (items, now) => items.map((item) => settleOne(item, now)),
    renew: (runs, leaseMs, now) => runs.map((r) => keys.renew(r.key, r.owner, now + leaseMs)),
    keys,
    rows
  }
}
