/**
 * Audit write throughput: group commit (many concurrent `record` calls, one transaction per
 * batch) against baselines measured in the same run on the same machine:
 *   - one connection per row (open, insert, close: what the original design's hooks did),
 *   - one transaction per row on one connection (no group commit),
 *   - one raw transaction for all rows with a prepared statement (the ceiling).
 * All on a WAL file with synchronous=NORMAL (the old design's rollback journal + FULL would be
 * slower still).
 *
 *   bun scripts/bench-audit.ts [rows=100000] [concurrency=1000]
 */
import { Database as BunDatabase } from "bun:sqlite" // baselines only: they bypass msgsys on purpose
import { type Duration, Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AuditRecord } from "../src/audit/AuditLog.ts"
import * as Database from "../src/sqlite/Database.ts"
import * as SqliteAuditLog from "../src/audit/SqliteAuditLog.ts"

const rows = Number(process.argv[2] ?? 100_000)
const concurrency = Number(process.argv[3] ?? 1000)
const dir = mkdtempSync(join(tmpdir(), "msgsys-bench-"))
let files = 0
const freshPath = () => join(dir, `bench-${++files}.db`)

const record = (i: number): AuditRecord => ({
  messageId: `01JBENCH${String(i).padStart(10, "0")}`,
  subject: "etl.extract.salesforce",
  actor: "etl",
  pool: "slow",
  tenant: "acme",
  correlationId: `corr-${i}`,
  attempt: 1,
  step: "succeeded",
  at: 1_700_000_000_000 + i,
  durationMs: 12.5,
  payload: { tenant: "acme", since: "2026-01-01", password: "x" }
})

const insertSql = `INSERT INTO audit_log
  (message_id, subject, actor, pool, tenant, correlation_id, attempt, step, at, duration_ms, error, delay_ms, payload, kind)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
const params = (r: AuditRecord) =>
  [r.messageId, r.subject, r.actor, r.pool, r.tenant, r.correlationId, r.attempt, r.step, r.at, r.durationMs ?? null,
    null, null, JSON.stringify(r.payload), "task"] as const

/** Creates the schema (and WAL) once, through msgsys, so every baseline writes the same table. */
const prepareFile = async () => {
  const path = freshPath()
  await Effect.runPromise(Effect.scoped(Effect.asVoid(Database.make({ path }))))
  return path
}

const countRows = (path: string) => {
  const db = new BunDatabase(path, { readonly: true })
  const n = db.query<{ n: number }, []>("SELECT count(*) AS n FROM audit_log").get()!.n
  db.close()
  return n
}

const time = async (name: string, n: number, path: string, run: () => Promise<unknown> | unknown) => {
  const t0 = performance.now()
  const extra = await run()
  const ms = performance.now() - t0
  const stored = countRows(path)
  if (stored !== n) throw new Error(`${name}: expected ${n} rows, found ${stored}`)
  const rate = n / (ms / 1000)
  console.log(`${name.padEnd(48)} ${String(n).padStart(7)} rows ${ms.toFixed(0).padStart(7)} ms ${rate.toFixed(0).padStart(9)} rows/s${extra ? `  ${extra}` : ""}`)
  return rate
}

const groupCommit = (n: number, maxDelay: Duration.Input) => async () => {
  const path = await prepareFile()
  const rate = await time(`group commit (maxDelay ${maxDelay}, ${concurrency} in flight)`, n, path, () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Database.make({ path })
      const audit = yield* SqliteAuditLog.make({ payload: "redacted", redactFields: ["password"], maxDelay }).pipe(
        Effect.provideService(Database.Database, db)
      )
      yield* Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) => audit.service.record(record(i)), {
        concurrency,
        discard: true
      })
      const s = yield* audit.stats
      return `(${s.transactions} transactions, ${(s.rows / s.transactions).toFixed(0)} rows each, largest ${s.largestBatch})`
    }))))
  return rate
}

const connectionPerRow = (n: number) => async () => {
  const path = await prepareFile()
  return time("one connection per row (old design)", n, path, () => {
    for (let i = 0; i < n; i++) {
      const db = new BunDatabase(path)
      db.run("PRAGMA busy_timeout = 5000")
      db.run("PRAGMA synchronous = NORMAL")
      db.query(insertSql).run(...params(record(i)))
      db.close()
    }
  })
}

const transactionPerRow = (n: number) => async () => {
  const path = await prepareFile()
  return time("one transaction per row, one connection", n, path, () => {
    const db = new BunDatabase(path)
    db.run("PRAGMA synchronous = NORMAL")
    const insert = db.prepare(insertSql)
    const one = db.transaction((i: number) => insert.run(...params(record(i))))
    for (let i = 0; i < n; i++) one.immediate(i)
    db.close()
  })
}

const rawBatch = (n: number) => async () => {
  const path = await prepareFile()
  return time("raw: all rows in one transaction", n, path, () => {
    const db = new BunDatabase(path)
    db.run("PRAGMA synchronous = NORMAL")
    const insert = db.prepare(insertSql)
    db.transaction(() => {
      for (let i = 0; i < n; i++) insert.run(...params(record(i)))
    }).immediate()
    db.close()
  })
}

console.log(`bun ${Bun.version}, ${rows} rows, WAL + synchronous=NORMAL, files in ${dir}\n`)
const baselineRows = Math.min(rows, 5000)
// opening a connection per row is so slow that 1000 rows give a stable rate
const perConnection = await connectionPerRow(Math.min(rows, 1000))()
const perTransaction = await transactionPerRow(baselineRows)()
const raw = await rawBatch(rows)()
const grouped = await groupCommit(rows, "2 millis")()
const groupedNoDelay = await groupCommit(rows, "0 millis")()

console.log("")
console.log(`group commit / one connection per row:  ${(grouped / perConnection).toFixed(1)}x`)
console.log(`group commit / one transaction per row: ${(grouped / perTransaction).toFixed(1)}x`)
console.log(`group commit / raw single transaction:  ${(grouped / raw).toFixed(2)}x`)
console.log(`maxDelay 0 / maxDelay 2 ms:             ${(groupedNoDelay / grouped).toFixed(2)}x`)
rmSync(dir, { recursive: true, force: true })
