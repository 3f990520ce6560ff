/**
 * The ledger in the msgsys SQLite file: idempotency keys and audit rows in the same file, each
 * batch of claims or settlements ONE operation of the file's group-commit writer (so several
 * actors' batches share a transaction too). A task's outcome, its audit row and the handler's
 * own `atCommit` writes commit together or not at all.
 * @since 0.1.0
 */
import { Clock, Effect, Layer } from "effect"
import type { AuditRecord, PayloadMode } from "../audit/AuditLog.ts"
import * as AuditRows from "../audit/AuditRows.ts"
import type { Claim } from "../idempotency/Idempotency.ts"
import * as KeyTable from "../idempotency/KeyTable.ts"
import * as Database from "../sqlite/Database.ts"
import { Ledger, LedgerError, type RunRef, type Settled, type Settlement, type Sql } from "./Ledger.ts"

/** @category models @since 0.1.0 */
export interface Options {
  /** Audit rows on (default) or off (keys only: for programs that want no audit trail). */
  readonly audit?: boolean | undefined
  readonly payload: PayloadMode
  readonly redactFields: ReadonlyArray<string>
}

const STORED: Settled = { _tag: "Stored" }
const LOST: Settled = { _tag: "LeaseLost" }

/**
 * Builds the ledger on the `Database`.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("SqliteLedger.make")(function*(options: Options) {
  const db = yield* Database.Database
  const h = db.handle
  const prepared = yield* Effect.orDie(db.use("preparing the ledger", (handle) => ({
    keys: KeyTable.prepare(handle),
    rows: AuditRows.prepare(handle, options),
    savepoint: handle.prepare("SAVEPOINT task_writes"),
    releaseSavepoint: handle.prepare("RELEASE task_writes"),
    rollbackSavepoint: handle.prepare("ROLLBACK TO task_writes")
  })))
  const { keys, rows } = prepared
  const audited = options.audit !== false
  const record = (records: ReadonlyArray<AuditRecord>) => {
    if (audited && records.length > 0) rows.write(records)
  }

  // what a handler's atCommit writes see: the same connection, inside the settle transaction
  const sql: Sql = {
    run: (text, ...params) => h.query(text).run(...(params as Array<never>)),
    get: (text, ...params) => (h.query(text).get(...(params as Array<never>)) ?? undefined) as never,
    all: (text, ...params) => h.query(text).all(...(params as Array<never>)) as never
  }

  // "lost" also when another run completed the key meanwhile: its outcome and its "succeeded" row
  // stay the only ones (this message comes back, finds the key done and is acked as a duplicate)
  const complete = (run: RunRef, json: string, now: number): "stored" | "lost" =>
    (run.claimed === false
        ? keys.completeFree(run.key, run.owner, json, now, run.sequence)
        : keys.completeOwned(run.key, run.owner, json, now)) === "stored"
      ? "stored"
      : "lost"

  const undo = () => {
    prepared.rollbackSavepoint.run()
    prepared.releaseSavepoint.run()
  }

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
    prepared.savepoint.run()
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
    prepared.releaseSavepoint.run()
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

  const fail = (operation: string) => (e: { readonly cause: unknown }) => new LedgerError({ operation, cause: e.cause })

  return Ledger.of({
    atomic: true,
    writes: true,
    claim: (requests) =>
      requests.length === 0 ? Effect.succeed([]) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        db.writer.write("claiming runs", () =>
          requests.map((r): Claim => {
            const claim = keys.claim(r.run.key, r.run.owner, now + r.leaseMs, now, r.run.sequence)
            if (claim._tag === "Claimed") record(r.audit)
            return claim
          })
        ).pipe(Effect.mapError(fail("claiming runs")))),
    check: (runs) =>
      runs.length === 0 ? Effect.succeed([]) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        db.use("checking keys", () => runs.map((r) => keys.check(r.key, r.owner, now, r.sequence))).pipe(
          Effect.mapError((e) => new LedgerError({ operation: "checking keys", cause: e }))
        )),
    settle: (items) =>
      items.length === 0 ? Effect.succeed([]) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        db.writer.write("settling runs", () => items.map((item) => settleOne(item, now))).pipe(
          Effect.mapError(fail("settling runs"))
        )),
    renew: (runs, leaseMs) =>
      runs.length === 0 ? Effect.succeed([]) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        db.writer.write("renewing leases", () => runs.map((r) => keys.renew(r.key, r.owner, now + leaseMs))).pipe(
          Effect.mapError(fail("renewing leases"))
        )),
    hasStep: (messageId, step) =>
      db.use("looking up an audit step", () => rows.hasStep(messageId, step)).pipe(
        Effect.mapError((e) => new LedgerError({ operation: "looking up an audit step", cause: e }))
      )
  })
})

/** The fused ledger as a layer over the `Database`. @category layers @since 0.1.0 */
export const layer = (options: Options): Layer.Layer<Ledger, never, Database.Database> =>
  Layer.effect(Ledger, make(options))
