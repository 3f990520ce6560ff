import { afterAll, describe, expect, test } from "bun:test"
import { Effect, Exit, Fiber, Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AuditRecord } from "../../../src/audit/AuditLog.ts"
import * as Database from "../../../src/sqlite/Database.ts"
import * as SqliteAuditLog from "../../../src/audit/SqliteAuditLog.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const freshPath = () => join(dir, `audit-${++n}.db`)

const row = (i: number, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  messageId: `m${i}`,
  subject: "etl.extract",
  actor: "etl",
  pool: "slow",
  tenant: "acme",
  correlationId: `c${i}`,
  attempt: 1,
  step: "succeeded",
  at: 1_700_000_000_000 + i,
  ...extra
})

const defaults: SqliteAuditLog.Options = { payload: "full", redactFields: [] }

/** Runs `f` with a fresh audit log on `path`, closing both when done. */
const withAudit = <A, E>(
  path: string,
  options: SqliteAuditLog.Options,
  f: (audit: Effect.Success<ReturnType<typeof SqliteAuditLog.make>>, db: Database.Database["Service"]) => Effect.Effect<A, E>
) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* Database.make({ path })
    const audit = yield* SqliteAuditLog.make(options).pipe(Effect.provideService(Database.Database, db))
    return yield* f(audit, db)
  })))

/** Reads with a separate connection, so only committed rows are seen. */
const readOther = <A>(path: string, sql: string, params: ReadonlyArray<string | number> = []) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* Database.make({ path })
    return yield* db.use("read", (h) => h.query(sql).all(...params) as Array<A>)
  })))

describe("SqliteAuditLog group commit", () => {
  test("2000 concurrent record() calls all commit, in far fewer transactions than rows", async () => {
    const path = freshPath()
    const stats = await withAudit(path, defaults, (audit) =>
      Effect.gen(function*() {
        yield* Effect.forEach(Array.from({ length: 2000 }, (_, i) => i), (i) => audit.service.record(row(i)), {
          concurrency: "unbounded",
          discard: true
        })
        return yield* audit.stats
      }))
    const [count] = await readOther<{ n: number; ids: number }>(
      path,
      "SELECT count(*) AS n, count(DISTINCT message_id) AS ids FROM audit_log"
    )
    expect(count).toEqual({ n: 2000, ids: 2000 })
    expect(stats.operations).toBe(2000)
    expect(stats.commits).toBeLessThanOrEqual(100)
    expect(stats.failures).toBe(0)
  })

  test("record resolves only after its row is visible to another connection", async () => {
    const path = freshPath()
    await withAudit(path, defaults, (audit) =>
      Effect.gen(function*() {
        for (let i = 0; i < 20; i++) {
          yield* audit.service.record(row(i))
          const seen = yield* Effect.promise(() =>
            readOther<{ n: number }>(path, "SELECT count(*) AS n FROM audit_log WHERE message_id = ?", [`m${i}`])
          )
          expect(seen[0]?.n).toBe(1)
        }
      }))
  })

  test("recordAll writes its rows in one transaction", async () => {
    const path = freshPath()
    const stats = await withAudit(path, defaults, (audit) =>
      Effect.gen(function*() {
        yield* audit.service.recordAll([row(1, { step: "failed" }), row(1, { step: "retry_scheduled", delayMs: 500 })])
        return yield* audit.stats
      }))
    expect(stats).toMatchObject({ commits: 1, failures: 0, operations: 1, largestBatch: 1 })
    const rows = await readOther<{ step: string; delay_ms: number | null }>(
      path,
      "SELECT step, delay_ms FROM audit_log ORDER BY id"
    )
    expect(rows).toEqual([{ step: "failed", delay_ms: null }, { step: "retry_scheduled", delay_ms: 500 }])
  })

  test("a failed commit fails every caller of that batch, and the writer recovers", async () => {
    const path = freshPath()
    const result = await withAudit(path, defaults, (audit, db) =>
      Effect.gen(function*() {
        yield* db.use("read-only trigger", (h) =>
          h.run("CREATE TRIGGER audit_ro BEFORE INSERT ON audit_steps BEGIN SELECT RAISE(ABORT, 'audit is read-only'); END"))
        const exits = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) => Effect.exit(audit.service.record(row(i))),
          { concurrency: "unbounded" }
        )
        const failedStats = yield* audit.stats
        yield* db.use("drop trigger", (h) => h.run("DROP TRIGGER audit_ro"))
        yield* audit.service.record(row(1000))
        return { exits, failedStats }
      }))
    expect(result.exits.every(Exit.isFailure)).toBe(true)
    const first = result.exits[0]!
    if (Exit.isFailure(first)) {
      const reason = first.cause.reasons[0]
      expect(reason?._tag).toBe("Fail")
      if (reason?._tag === "Fail") {
        expect((reason.error as { _tag: string })._tag).toBe("AuditError")
        expect((reason.error as Error).message).toContain("audit is read-only")
        expect((reason.error as Error).message).toContain("redelivered")
      }
    }
    expect(result.failedStats.failures).toBeGreaterThanOrEqual(1)
    expect(result.failedStats.operations).toBe(0)
    const rows = await readOther<{ message_id: string }>(path, "SELECT message_id FROM audit_log")
    expect(rows).toEqual([{ message_id: "m1000" }])
  })

  test("closing the scope commits every row already queued before the writer stops", async () => {
    const path = freshPath()
    const scope = Effect.runSync(Scope.make())
    const audit = await Effect.runPromise(Effect.gen(function*() {
      const db = yield* Database.make({ path })
      return yield* SqliteAuditLog.make(defaults).pipe(
        Effect.provideService(Database.Database, db)
      )
    }).pipe(Scope.provide(scope)))
    const fibers = await Effect.runPromise(Effect.forEach(
      Array.from({ length: 300 }, (_, i) => i),
      (i) => Effect.forkDetach(audit.service.record(row(i)), { startImmediately: true })
    ))
    await Effect.runPromise(Scope.close(scope, Exit.void))
    const exits = await Effect.runPromise(Effect.forEach(fibers, Fiber.await))
    expect(exits.every(Exit.isSuccess)).toBe(true)
    const [count] = await readOther<{ n: number }>(path, "SELECT count(*) AS n FROM audit_log")
    expect(count?.n).toBe(300)
    const late = await Effect.runPromise(Effect.flip(audit.service.record(row(999))))
    expect(late.message).toContain("closed")
  })

  test("flush resolves after everything recorded before it has committed", async () => {
    const path = freshPath()
    await withAudit(path, defaults, (audit) =>
      Effect.gen(function*() {
        yield* Effect.forEach([1, 2, 3], (i) => Effect.forkChild(audit.service.record(row(i)), { startImmediately: true }))
        yield* audit.service.flush
        const seen = yield* Effect.promise(() => readOther<{ n: number }>(path, "SELECT count(*) AS n FROM audit_log"))
        expect(seen[0]?.n).toBe(3)
      }))
  })

  test("hasStep sees committed steps only for the asked message and step", async () => {
    const found = await withAudit(freshPath(), defaults, (audit) =>
      Effect.gen(function*() {
        yield* audit.service.record(row(1, { step: "started" }))
        return [
          yield* audit.service.hasStep("m1", "started"),
          yield* audit.service.hasStep("m1", "succeeded"),
          yield* audit.service.hasStep("m2", "started")
        ]
      }))
    expect(found).toEqual([true, false, false])
  })
})

describe("SqliteAuditLog payload modes (MSGSYS_AUDIT_PAYLOAD)", () => {
  const payload = {
    user: "ann",
    Password: "hunter2",
    nested: { token: "t", keep: 1, deeper: [{ API_KEY: "k", ok: true }] }
  }
  /** task_audit.args and the audit_log payloads after the hot path's claim (enqueued + started with the input) and outcome. */
  const stored = async (options: SqliteAuditLog.Options) => {
    const path = freshPath()
    await withAudit(path, options, (audit) =>
      Effect.andThen(
        audit.service.recordAll([row(1, { step: "enqueued", payload }), row(1, { step: "started", payload })]),
        audit.service.record(row(1, { step: "succeeded", durationMs: 3 }))
      ))
    const parse = (text: string | null | undefined) => (text === null || text === undefined ? null : JSON.parse(text))
    const [task] = await readOther<{ args: string | null }>(path, "SELECT args FROM task_audit")
    const steps = await readOther<{ payload: string | null }>(path, "SELECT payload FROM audit_log ORDER BY id")
    return { args: parse(task?.args), steps: steps.map((r) => parse(r.payload)) }
  }

  test("redacted stores the input in task_audit.args with the listed keys replaced at any depth, case-insensitively", async () => {
    const redacted = {
      user: "ann",
      Password: "[redacted]",
      nested: { token: "[redacted]", keep: 1, deeper: [{ API_KEY: "[redacted]", ok: true }] }
    }
    expect(await stored({ payload: "redacted", redactFields: ["password", "TOKEN", "api_key"] })).toEqual({
      args: redacted,
      steps: [redacted, redacted, null]
    })
  })

  test("off stores no payload anywhere", async () => {
    expect(await stored({ payload: "off", redactFields: ["password"] })).toEqual({ args: null, steps: [null, null, null] })
  })

  test("full stores the input unchanged in task_audit.args", async () => {
    expect(await stored({ payload: "full", redactFields: ["password"] })).toEqual({
      args: payload,
      steps: [payload, payload, null]
    })
  })

  test("a payload JSON cannot encode is stored as a note instead of failing the record", async () => {
    const path = freshPath()
    await withAudit(path, defaults, (audit) => audit.service.record(row(1, { payload: { big: 1n } })))
    const [r] = await readOther<{ args: string }>(path, "SELECT args FROM task_audit")
    expect(JSON.parse(r!.args)).toContain("unserializable payload")
  })
})
