import { Database as BunDatabase } from "bun:sqlite"
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AuditRecord, AuditStep } from "../../../src/audit/AuditLog.ts"
import { steps } from "../../../src/audit/AuditLog.ts"
import * as AuditRows from "../../../src/audit/AuditRows.ts"
import { payloadText, fieldSet } from "../../../src/audit/internal/redact.ts"
import { migrations } from "../../../src/sqlite/internal/migrations.ts"
import * as SqliteFile from "../../../src/sqlite/SqliteFile.ts"
import { insertOld, lifecycles, random, stepColumns, taskColumns } from "./fixtures/lifecycles.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-rows-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const open = (versions = migrations) =>
  SqliteFile.open({ path: join(dir, `r${++n}.db`), synchronous: "normal", busyTimeoutMs: 20, migrations: versions, now: 0 })

const rec = (step: AuditStep, at: number, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  messageId: "m1",
  subject: "etl.load",
  actor: "etl",
  pool: "fast",
  tenant: "acme",
  correlationId: "m1",
  attempt: 1,
  step,
  at,
  ...extra
})

describe("AuditRows", () => {
  test("the task row says what the old task_audit view said of the same steps, whatever the order and grouping of writes", () => {
    for (const seed of [1, 2, 3]) {
      const writes = lifecycles(seed, 400, 1_750_000_000_000)
      const fields = fieldSet(["password", "token"])
      const payload = (r: AuditRecord) => payloadText(r.payload, "redacted", fields)
      const before = open(migrations.slice(0, 4))
      const after = open()
      const rows = AuditRows.prepare(after, { payload: "redacted", redactFields: ["password", "token"] })
      const rand = random(seed)
      // transactions of random size, as the group-commit writer makes them
      for (let i = 0; i < writes.length;) {
        const size = 1 + Math.floor(rand() * 20)
        const slice = writes.slice(i, i + size)
        before.transaction(() => slice.forEach((w) => insertOld(before, w, payload)))()
        after.transaction(() => slice.forEach((w) => rows.write(w)))()
        i += size
      }
      const expected = before.query(`SELECT ${taskColumns} FROM task_audit ORDER BY task_id`).all()
      const actual = after.query(`SELECT ${taskColumns} FROM task_audit ORDER BY task_id`).all()
      expect(actual).toHaveLength(400)
      expect(actual).toEqual(expected)
      const expectedSteps = before.query(`SELECT ${stepColumns} FROM audit_log ORDER BY id`).all()
      const actualSteps = after.query(`SELECT ${stepColumns} FROM audit_log ORDER BY id`).all()
      expect(actualSteps).toEqual(expectedSteps)
      before.close()
      after.close()
    }
  })

  test("one call may hold several messages, and one message's records may be spread over calls", () => {
    const db = open()
    const rows = AuditRows.prepare(db, { payload: "off", redactFields: [] })
    db.transaction(() => {
      rows.write([rec("enqueued", 1000, { messageId: "a" }), rec("started", 1005, { messageId: "b" }), rec("started", 1010, { messageId: "a" })])
      rows.write([rec("succeeded", 1020, { messageId: "a", durationMs: 10 })])
    })()
    db.transaction(() => rows.write([rec("failed", 1030, { messageId: "b", durationMs: 25, error: "x" })]))()
    expect(db.query("SELECT task_id, status, started_at, ended_at, duration_ms, error FROM task_audit ORDER BY task_id").all()).toEqual([
      { task_id: "a", status: "completed", started_at: AuditRows.timeText(1010), ended_at: AuditRows.timeText(1020), duration_ms: 10, error: null },
      { task_id: "b", status: "failed", started_at: AuditRows.timeText(1005), ended_at: AuditRows.timeText(1030), duration_ms: 25, error: "x" }
    ])
    expect(db.query("SELECT message_id, step FROM audit_log ORDER BY id").all()).toEqual([
      { message_id: "a", step: "enqueued" },
      { message_id: "b", step: "started" },
      { message_id: "a", step: "started" },
      { message_id: "a", step: "succeeded" },
      { message_id: "b", step: "failed" }
    ])
    db.close()
  })

  test("every step is stored under its code and read back by name through the audit_log view", () => {
    const db = open()
    const rows = AuditRows.prepare(db, { payload: "off", redactFields: [] })
    db.transaction(() => rows.write(steps.map((s, i) => rec(s, 1000 + i))))()
    expect(db.query("SELECT step FROM audit_steps ORDER BY id").all().map((r) => (r as { step: number }).step))
      .toEqual(steps.map((s) => AuditRows.stepCodes[s]))
    expect(db.query("SELECT step FROM audit_log ORDER BY id").all().map((r) => (r as { step: string }).step)).toEqual([...steps])
    db.close()
  })

  test("a payload is stored once per task, and again only on a step whose payload differs", () => {
    const db = open()
    const rows = AuditRows.prepare(db, { payload: "full", redactFields: [] })
    db.transaction(() => rows.write([rec("enqueued", 1, { payload: { a: 1 } }), rec("started", 2, { payload: { a: 1 } })]))()
    db.transaction(() => rows.write([rec("started", 3, { attempt: 2, payload: { a: 1 } })]))()
    db.transaction(() => rows.write([rec("started", 4, { attempt: 3, payload: { a: 2 } })]))()
    expect(db.query("SELECT args FROM task_audit").get()).toEqual({ args: '{"a":1}' })
    expect(db.query("SELECT payload, payload_in_args FROM audit_steps ORDER BY id").all()).toEqual([
      { payload: null, payload_in_args: 1 },
      { payload: null, payload_in_args: 1 },
      { payload: null, payload_in_args: 1 },
      { payload: '{"a":2}', payload_in_args: 0 }
    ])
    expect(db.query("SELECT payload FROM audit_log ORDER BY id").all().map((r) => (r as { payload: string }).payload))
      .toEqual(['{"a":1}', '{"a":1}', '{"a":1}', '{"a":2}'])
    db.close()
  })

  test("payload mode off does no JSON work on the payload", () => {
    const db = open()
    let serialized = 0
    const payload = { toJSON: () => ++serialized }
    AuditRows.prepare(db, { payload: "off", redactFields: [] }).write([rec("started", 1, { payload })])
    expect(serialized).toBe(0)
    AuditRows.prepare(db, { payload: "full", redactFields: [] }).write([rec("started", 2, { attempt: 2, payload })])
    expect(serialized).toBe(1)
    db.close()
  })

  test("hasStep sees only the asked step of the asked message", () => {
    const db = open()
    const rows = AuditRows.prepare(db, { payload: "off", redactFields: [] })
    rows.write([rec("started", 1), rec("started", 1, { messageId: "m2" }), rec("succeeded", 2, { messageId: "m2" })])
    expect([rows.hasStep("m1", "started"), rows.hasStep("m1", "succeeded"), rows.hasStep("m2", "succeeded"), rows.hasStep("m3", "started")])
      .toEqual([true, false, true, false])
    db.close()
  })

  test("timeText formats epoch ms exactly as SQLite's strftime('%Y-%m-%d %H:%M:%f', ms / 1000.0, 'unixepoch')", () => {
    const db = new BunDatabase(":memory:")
    const sqlite = db.prepare<{ t: string }, [number]>("SELECT strftime('%Y-%m-%d %H:%M:%f', ? / 1000.0, 'unixepoch') AS t")
    const rand = random(7)
    const samples = [0, 999, 1000, 1_700_000_000_999, 4_102_444_799_999]
    for (let i = 0; i < 20_000; i++) samples.push(Math.floor(rand() * 4_102_444_800_000))
    const differ = samples.filter((ms) => AuditRows.timeText(ms) !== sqlite.get(ms)!.t)
    expect(differ).toEqual([])
    db.close()
  })
})
