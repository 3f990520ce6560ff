import { afterAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AuditRecord, AuditStep } from "../../../src/audit/AuditLog.ts"
import * as Database from "../../../src/sqlite/Database.ts"
import * as SqliteAuditLog from "../../../src/audit/SqliteAuditLog.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// The three queries of the original design, verbatim.
const tasksByStatus = `SELECT status, COUNT(*) 
FROM task_audit 
WHERE started_at > datetime('now', '-1 day')
GROUP BY status;`
const avgDuration = `SELECT task_name, AVG(duration_ms) as avg_ms
FROM task_audit
WHERE status='completed'
GROUP BY task_name
ORDER BY avg_ms DESC;`
const failureRate = `SELECT 
    task_name,
    COUNT(*) as total,
    SUM(CASE WHEN status='failed' THEN 1 ELSE 0 END) as failures,
    ROUND(100.0 * SUM(CASE WHEN status='failed' THEN 1 ELSE 0 END) / COUNT(*), 2) as failure_rate
FROM task_audit
GROUP BY task_name
HAVING total > 10
ORDER BY failure_rate DESC;`

const now = Date.now()
const step = (id: string, subject: string, s: AuditStep, at: number, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  messageId: id,
  subject,
  actor: subject.split(".")[0]!,
  pool: "fast",
  tenant: "acme",
  correlationId: id,
  attempt: 1,
  step: s,
  at,
  ...extra
})

// reports.build: 12 tasks, 3 of them dead-lettered after a retry; etl.load: 12 tasks, all fine,
// one of them redelivered after success (skipped_duplicate); plus one pending and one running.
const rows: Array<AuditRecord> = []
for (let i = 0; i < 12; i++) {
  const id = `r${i}`, t = now - 60_000 + i
  rows.push(step(id, "reports.build", "enqueued", t, { payload: { report: i } }))
  rows.push(step(id, "reports.build", "started", t + 1))
  if (i < 3) {
    rows.push(step(id, "reports.build", "failed", t + 11, { durationMs: 10, error: "boom" }))
    rows.push(step(id, "reports.build", "retry_scheduled", t + 11, { delayMs: 100, error: "boom" }))
    rows.push(step(id, "reports.build", "started", t + 120, { attempt: 2 }))
    rows.push(step(id, "reports.build", "failed", t + 150, { attempt: 2, durationMs: 30, error: "boom again" }))
    rows.push(step(id, "reports.build", "dead_lettered", t + 151, { attempt: 2, error: "boom again" }))
  } else {
    rows.push(step(id, "reports.build", "succeeded", t + 41, { durationMs: 40 }))
  }
}
for (let i = 0; i < 12; i++) {
  const id = `e${i}`, t = now - 30_000 + i
  rows.push(step(id, "etl.load", "started", t))
  rows.push(step(id, "etl.load", "succeeded", t + 20, { durationMs: 20 }))
  if (i === 0) rows.push(step(id, "etl.load", "skipped_duplicate", t + 500, { attempt: 2 }))
}
rows.push(step("p1", "etl.load", "enqueued", now - 1000))
rows.push(step("s1", "etl.load", "started", now - 1000))
rows.push(step("old", "etl.load", "started", now - 3 * 86_400_000))
rows.push(step("old", "etl.load", "succeeded", now - 3 * 86_400_000 + 20, { durationMs: 20 }))

const iso = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace("Z", "")

const query = (sql: string, path = join(dir, "table.db"), params: ReadonlyArray<string> = []) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* Database.make({ path })
    const audit = yield* SqliteAuditLog.make({ payload: "full", redactFields: [] }).pipe(
      Effect.provideService(Database.Database, db)
    )
    const count = yield* db.use("count", (h) => h.query<{ n: number }, []>("SELECT count(*) AS n FROM audit_log").get()!.n)
    if (count === 0) yield* audit.service.recordAll(rows)
    return yield* db.use("query", (h) => h.query(sql).all(...params))
  })))

describe("task_audit table", () => {
  test("has one row per task with the original table's columns and status words", async () => {
    const r = (await query("SELECT * FROM task_audit WHERE task_id IN ('r0', 'r5', 'e0', 'p1', 's1') ORDER BY task_id")) as Array<
      Record<string, unknown>
    >
    const pick = (id: string) => r.find((x) => x.task_id === id)!
    expect(r).toHaveLength(5)
    expect(pick("r0")).toMatchObject({
      task_name: "reports.build",
      status: "failed",
      retry_count: 1,
      error: "boom again",
      duration_ms: 30,
      args: JSON.stringify({ report: 0 }),
      tenant: "acme",
      actor: "reports"
    })
    expect(pick("r5")).toMatchObject({ status: "completed", duration_ms: 40, retry_count: 0, error: null })
    expect(pick("e0")).toMatchObject({ status: "completed", ended_at: iso(now - 30_000 + 20) })
    expect(pick("p1")).toMatchObject({ status: "pending", ended_at: null })
    expect(pick("s1")).toMatchObject({ status: "started", ended_at: null })
    // started_at is UTC text comparable with datetime('now', ...)
    expect(String(pick("r5").started_at)).toBe(iso(now - 60_000 + 5 + 1))
  })

  test("the original 'tasks by status in the last 24h' query runs unchanged", async () => {
    const r = (await query(tasksByStatus)) as Array<{ status: string; "COUNT(*)": number }>
    const byStatus = Object.fromEntries(r.map((x) => [x.status, x["COUNT(*)"]]))
    // 'old' ran three days ago and is left out
    expect(byStatus).toEqual({ completed: 21, failed: 3, pending: 1, started: 1 })
  })

  test("the original 'average duration by task' query runs unchanged", async () => {
    expect(await query(avgDuration)).toEqual([
      { task_name: "reports.build", avg_ms: 40 },
      { task_name: "etl.load", avg_ms: 20 }
    ])
  })

  test("the original 'failure rate by task' query runs unchanged", async () => {
    expect(await query(failureRate)).toEqual([
      { task_name: "reports.build", total: 12, failures: 3, failure_rate: 25 },
      { task_name: "etl.load", total: 15, failures: 0, failure_rate: 0 }
    ])
  })

  test("the indexes serve the time-bounded queries: no scan of the whole table", async () => {
    const plan = async (sql: string) =>
      ((await query(`EXPLAIN QUERY PLAN ${sql}`)) as Array<{ detail: string }>).map((r) => r.detail).join("; ")
    expect(await plan(tasksByStatus)).toContain("SEARCH task_audit USING COVERING INDEX task_audit_status_started")
    expect(await plan(
      "SELECT task_name, status, count(*) FROM task_audit WHERE started_at >= '2026-01-01' GROUP BY task_name, status"
    )).toContain("SEARCH task_audit USING COVERING INDEX task_audit_name_status_started")
    expect(await plan("SELECT id FROM task_audit WHERE started_at < '2026-01-01' LIMIT 100")).toContain("SEARCH task_audit USING")
    expect(await plan("SELECT * FROM task_audit WHERE tenant = 'acme' AND started_at > '2026-01-01'"))
      .toContain("SEARCH task_audit USING INDEX task_audit_tenant_started")
  })
})

describe("the original design's archival script", () => {
  test("runs verbatim: exports the old tasks, deletes them with their steps, and vacuums", async () => {
    const path = join(dir, "archive.db")
    // a copy of the rows above, plus tasks that started 100 days ago
    const old = Array.from({ length: 30 }, (_, i) => [
      step(`a${i}`, "etl.load", "started", now - 100 * 86_400_000 + i),
      step(`a${i}`, "etl.load", "succeeded", now - 100 * 86_400_000 + i + 20, { durationMs: 20 })
    ]).flat()
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Database.make({ path })
      const audit = yield* SqliteAuditLog.make({ payload: "full", redactFields: [] }).pipe(
        Effect.provideService(Database.Database, db)
      )
      yield* audit.service.recordAll([...rows, ...old])
    })))
    // Python's `(datetime.now() - timedelta(days=90)).isoformat()`: local time, 'T', microseconds
    const d = new Date(now - 90 * 86_400_000)
    const two = (n: number) => String(n).padStart(2, "0")
    const cutoff = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:` +
      `${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}000`
    const exported = (await query("SELECT * FROM task_audit WHERE started_at < ?", path, [cutoff])) as Array<{ task_id: string }>
    await query("DELETE FROM task_audit WHERE started_at < ?", path, [cutoff])
    await query("VACUUM", path)
    expect(exported.map((r) => r.task_id).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `a${i}`).sort())
    const left = (await query(
      "SELECT count(*) AS tasks, (SELECT count(*) FROM audit_steps) AS steps, " +
        "(SELECT count(*) FROM audit_steps WHERE task NOT IN (SELECT id FROM task_audit)) AS orphans FROM task_audit",
      path
    )) as Array<{ tasks: number; steps: number; orphans: number }>
    expect(left).toEqual([{ tasks: 27, steps: rows.length, orphans: 0 }])
  })
})
