import { afterAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AuditRecord } from "../../../src/audit/AuditLog.ts"
import { fieldSet, payloadText } from "../../../src/audit/internal/redact.ts"
import * as SqliteAuditLog from "../../../src/audit/SqliteAuditLog.ts"
import * as Database from "../../../src/sqlite/Database.ts"
import { migrations } from "../../../src/sqlite/internal/migrations.ts"
import * as SqliteFile from "../../../src/sqlite/SqliteFile.ts"
import { insertOld, lifecycles, stepColumns, taskColumns } from "./fixtures/lifecycles.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-migrate-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("migration 5: task_audit becomes a table", () => {
  test("a file written by the schema before it gives the same task_audit and audit_log answers after it", async () => {
    const path = join(dir, "old.db")
    // the file as the previous version wrote it: migrations 1-4, one audit_log row per record
    const old = SqliteFile.open({ path, synchronous: "normal", busyTimeoutMs: 20, migrations: migrations.slice(0, 4), now: 0 })
    const fields = fieldSet(["password"])
    const writes = lifecycles(11, 600, 1_760_000_000_000)
    for (let i = 0; i < writes.length; i += 50) {
      old.transaction(() => writes.slice(i, i + 50).forEach((w) => insertOld(old, w, (r) => payloadText(r.payload, "redacted", fields))))()
    }
    const viewBefore = old.query(`SELECT ${taskColumns} FROM task_audit ORDER BY task_id`).all()
    const stepsBefore = old.query(`SELECT ${stepColumns} FROM audit_log ORDER BY id`).all()
    const running = old.query<{ task_id: string }, []>(
      "SELECT task_id FROM task_audit WHERE status = 'started' ORDER BY task_id LIMIT 1"
    ).get()!.task_id
    SqliteFile.close(old)
    expect(viewBefore).toHaveLength(600)

    const after = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Database.make({ path })
      const read = <A>(sql: string) => db.use("read", (h) => h.query(sql).all() as Array<A>)
      const kinds = yield* read<{ name: string; type: string }>(
        "SELECT name, type FROM sqlite_schema WHERE name IN ('task_audit', 'audit_log', 'audit_steps') ORDER BY name"
      )
      const versions = yield* read<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version")
      const view = yield* read(`SELECT ${taskColumns} FROM task_audit ORDER BY task_id`)
      const steps = yield* read(`SELECT ${stepColumns} FROM audit_log ORDER BY id`)
      // and the writer carries on where the old rows stopped
      const audit = yield* SqliteAuditLog.make({ payload: "redacted", redactFields: ["password"] }).pipe(
        Effect.provideService(Database.Database, db)
      )
      const succeeded: AuditRecord = {
        messageId: running,
        subject: "etl.load",
        actor: "etl",
        pool: "fast",
        tenant: "acme",
        correlationId: running,
        attempt: 1,
        step: "succeeded",
        at: 1_770_000_000_000,
        durationMs: 12
      }
      yield* audit.service.record(succeeded)
      const continued = yield* read<{ status: string; duration_ms: number }>(
        `SELECT status, duration_ms FROM task_audit WHERE task_id = '${running}'`
      )
      const newest = yield* read<{ id: number; message_id: string; step: string }>(
        "SELECT id, message_id, step FROM audit_log ORDER BY id DESC LIMIT 1"
      )
      return { kinds, versions, view, steps, continued, newest }
    })))
    expect(after.kinds).toEqual([
      { name: "audit_log", type: "view" },
      { name: "audit_steps", type: "table" },
      { name: "task_audit", type: "table" }
    ])
    expect(after.versions.map((v) => v.version)).toEqual(migrations.map((m) => m.version))
    expect(after.view).toEqual(viewBefore)
    expect(after.steps).toEqual(stepsBefore)
    expect(after.continued).toEqual([{ status: "completed", duration_ms: 12 }])
    expect(after.newest).toEqual([{ id: stepsBefore.length + 1, message_id: running, step: "succeeded" }])
  })
})
