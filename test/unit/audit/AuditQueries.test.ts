import { afterAll, describe, expect, test } from "bun:test"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AuditRecord } from "../../../src/audit/AuditLog.ts"
import * as AuditQueries from "../../../src/audit/AuditQueries.ts"
import * as Database from "../../../src/sqlite/Database.ts"
import * as SqliteAuditLog from "../../../src/audit/SqliteAuditLog.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

const rec = (id: string, step: AuditRecord["step"], at: number, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  messageId: id,
  subject: "etl.load",
  actor: "etl",
  pool: "fast",
  tenant: "acme",
  correlationId: id,
  attempt: 1,
  step,
  at,
  ...extra
})

/** Fresh database with `rows` committed, then `f` with the Database provided. */
const withRows = <A, E>(rows: ReadonlyArray<AuditRecord>, f: Effect.Effect<A, E, Database.Database>) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* Database.make({ path: join(dir, `q-${++n}.db`) })
    const audit = yield* SqliteAuditLog.make({ payload: "full", redactFields: [] }).pipe(
      Effect.provideService(Database.Database, db)
    )
    yield* audit.service.recordAll(rows)
    return yield* f.pipe(Effect.provideService(Database.Database, db))
  })))

describe("AuditQueries", () => {
  test("show returns every step of one message in order, with its payload parsed", async () => {
    const rows = [
      rec("m1", "enqueued", 10, { payload: { a: 1 } }),
      rec("m2", "enqueued", 11),
      rec("m1", "started", 12),
      rec("m1", "succeeded", 15, { durationMs: 3 })
    ]
    const shown = await withRows(rows, AuditQueries.show("m1"))
    expect(shown.map((r) => [r.step, r.at])).toEqual([["enqueued", 10], ["started", 12], ["succeeded", 15]])
    expect(shown[0]!.payload).toEqual({ a: 1 })
    expect(shown[2]!.durationMs).toBe(3)
  })

  test("tail pages through the log by id", async () => {
    const rows = Array.from({ length: 25 }, (_, i) => rec(`m${i}`, "enqueued", i))
    const pages = await withRows(rows, Effect.gen(function*() {
      const first = yield* AuditQueries.tail({ limit: 10 })
      const second = yield* AuditQueries.tail({ afterId: first.at(-1)!.id, limit: 10 })
      const rest = yield* AuditQueries.tail({ afterId: second.at(-1)!.id, limit: 10 })
      return [first, second, rest].map((p) => p.map((r) => r.messageId))
    }))
    expect(pages.flat()).toEqual(rows.map((r) => r.messageId))
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5])
  })

  test("stats gives counts by status, mean and p95 duration, and failure rate by task since a time", async () => {
    const now = Date.now()
    const rows: Array<AuditRecord> = []
    for (let i = 1; i <= 20; i++) {
      rows.push(rec(`ok${i}`, "started", now - 1000))
      rows.push(rec(`ok${i}`, "succeeded", now - 1000 + i, { durationMs: i }))
    }
    for (let i = 0; i < 5; i++) {
      rows.push(rec(`bad${i}`, "started", now - 1000, { subject: "reports.build" }))
      rows.push(rec(`bad${i}`, "failed", now - 990, { subject: "reports.build", durationMs: 10, error: "x" }))
      if (i > 0) rows.push(rec(`bad${i}`, "dead_lettered", now - 989, { subject: "reports.build", error: "x" }))
    }
    rows.push(rec("old", "started", now - 10 * 86_400_000))
    rows.push(rec("old", "succeeded", now - 10 * 86_400_000, { durationMs: 5000 }))
    const s = await withRows(rows, AuditQueries.stats({ since: now - 86_400_000 }))
    expect(s.byStatus).toEqual([{ status: "completed", count: 20 }, { status: "failed", count: 5 }])
    expect(s.durations).toEqual([{ task: "etl.load", runs: 20, avgMs: 10.5, p95Ms: 19 }])
    expect(s.failures).toEqual([
      { task: "reports.build", total: 5, failed: 5, rate: 1 },
      { task: "etl.load", total: 20, failed: 0, rate: 0 }
    ])
  })

  test("prune archives exactly the steps it deletes (count and ids) and keeps newer tasks", async () => {
    const rows = Array.from({ length: 1000 }, (_, i) => rec(`m${i}`, "succeeded", i * 10, { payload: { i } }))
    const archive = join(dir, "archive", "audit.jsonl")
    const progress: Array<[number, number]> = []
    const result = await withRows(rows, Effect.gen(function*() {
      const db = yield* Database.Database
      const expectedIds = yield* db.use("ids", (h) =>
        h.query<{ id: number }, []>("SELECT id FROM audit_log WHERE at < 6005 ORDER BY id").all().map((r) => r.id))
      const pruned = yield* AuditQueries.prune({
        olderThan: 6005,
        archive,
        batchSize: 128,
        onProgress: (done, total) => progress.push([done, total])
      })
      const left = yield* db.use("left", (h) =>
        h.query<{ n: number; min: number }, []>("SELECT count(*) AS n, min(at) AS min FROM audit_log").get()!)
      return { pruned, expectedIds, left }
    }))
    const lines = readFileSync(archive, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l))
    expect(result.pruned).toMatchObject({ archived: 601, deleted: 601, tasks: 601 })
    expect(lines.map((l) => l.id)).toEqual(result.expectedIds)
    expect(lines[5]).toMatchObject({ messageId: "m5", step: "succeeded", at: 50, payload: { i: 5 } })
    expect(result.left).toEqual({ n: 399, min: 6010 })
    expect(progress.at(-1)).toEqual([601, 601])
    // in batches of at most 128 tasks, each reported
    const sizes = progress.map(([done], i) => done - (progress[i - 1]?.[0] ?? 0))
    expect(sizes.every((n) => n > 0 && n <= 128)).toBe(true)
    expect(progress.length).toBeGreaterThanOrEqual(Math.ceil(601 / 128))
  })

  test("prune without an archive deletes, and a second prune finds nothing", async () => {
    const rows = Array.from({ length: 50 }, (_, i) => rec(`m${i}`, "enqueued", i))
    const results = await withRows(rows, Effect.gen(function*() {
      const first = yield* AuditQueries.prune({ olderThan: 25, vacuum: "full" })
      const second = yield* AuditQueries.prune({ olderThan: 25 })
      return [first, second]
    }))
    expect(results).toMatchObject([{ archived: 0, deleted: 25, tasks: 25 }, { archived: 0, deleted: 0, tasks: 0 }])
  })

  test("prune gives the pages it freed back to the file system (incremental vacuum): the file shrinks", async () => {
    const rows = Array.from({ length: 4000 }, (_, i) => [
      rec(`m${i}`, "started", i * 10, { payload: { i, text: "x".repeat(200) } }),
      rec(`m${i}`, "succeeded", i * 10 + 5, { durationMs: 5 })
    ]).flat()
    const out = await withRows(rows, Effect.gen(function*() {
      const db = yield* Database.Database
      const pages = () =>
        db.use("pages", (h) => ({
          count: h.query<{ page_count: number }, []>("PRAGMA page_count").get()!.page_count,
          free: h.query<{ freelist_count: number }, []>("PRAGMA freelist_count").get()!.freelist_count
        }))
      const before = yield* pages()
      const pruned = yield* AuditQueries.prune({ olderThan: 36_000 })
      const after = yield* pages()
      return { before, pruned, after }
    }))
    expect(out.pruned).toMatchObject({ tasks: 3600, deleted: 7200 })
    expect(out.after.free).toBe(0)
    expect(out.after.count).toBeLessThan(out.before.count * 0.3)
    expect(out.pruned.freedBytes).toBe((out.before.count - out.after.count) * 4096)
  })

  test("an unwritable archive fails with ArchiveError and deletes nothing", async () => {
    const rows = Array.from({ length: 10 }, (_, i) => rec(`m${i}`, "enqueued", i))
    const out = await withRows(rows, Effect.gen(function*() {
      const error = yield* Effect.flip(AuditQueries.prune({ olderThan: 100, archive: "/proc/msgsys-no/archive.jsonl" }))
      const left = (yield* AuditQueries.tail({ limit: 100 })).length
      return { tag: error._tag, message: error.message, left }
    }))
    expect(out).toMatchObject({ tag: "ArchiveError", left: 10 })
    expect(out.message).toContain("writable")
  })

  test("pruneLoop prunes by retention on each tick of the clock", async () => {
    const rows = [rec("old", "enqueued", 0), rec("mid", "enqueued", 50_000), rec("new", "enqueued", 200_000)]
    const left = await withRows(rows, Effect.gen(function*() {
      yield* TestClock.setTime(100_000)
      const loop = yield* Effect.forkChild(AuditQueries.pruneLoop("60 seconds", "1 minute"))
      yield* TestClock.adjust("1 second")
      const afterFirst = (yield* AuditQueries.tail()).map((r) => r.messageId)
      yield* TestClock.adjust("1 minute")
      const afterSecond = (yield* AuditQueries.tail()).map((r) => r.messageId)
      yield* Fiber.interrupt(loop)
      return [afterFirst, afterSecond]
    }).pipe(Effect.provide(TestClock.layer())))
    expect(left).toEqual([["mid", "new"], ["new"]])
  })

  test("failures lists failed runs, dead letters and exhausted letters since a time, newest first", async () => {
    const rows = [
      rec("a", "started", 100), rec("a", "failed", 110, { error: "boom a" }),
      rec("b", "started", 120), rec("b", "succeeded", 130),
      rec("c", "started", 140), rec("c", "dead_lettered", 150, { error: "dead c" }),
      rec("d", "exhausted", 160, { error: "gave up d" }),
      rec("e", "failed", 50, { error: "too old" })
    ]
    const found = await withRows(rows, AuditQueries.failures({ since: 100 }))
    expect(found.map((f) => [f.taskId, f.step, f.error])).toEqual([
      ["d", "exhausted", "gave up d"],
      ["c", "dead_lettered", "dead c"],
      ["a", "failed", "boom a"]
    ])
    expect(await withRows(rows, AuditQueries.failures({ since: 0, limit: 1 }))).toHaveLength(1)
  })

  test("search finds tasks by subject across statuses, by status, by tenant, newest first, up to the limit", async () => {
    const day = Date.UTC(2026, 10, 30)
    const rows = [
      rec("t1", "started", day + 1, { subject: "etl.load" }), rec("t1", "succeeded", day + 2, { subject: "etl.load" }),
      rec("t2", "started", day + 3, { subject: "etl.load" }), rec("t2", "failed", day + 4, { subject: "etl.load" }),
      rec("t3", "started", day + 5, { subject: "etl.load", tenant: "globex" }),
      rec("t4", "started", day + 6, { subject: "reports.daily" }), rec("t4", "succeeded", day + 7, { subject: "reports.daily" })
    ]
    const ids = (o: AuditQueries.SearchOptions) => withRows(rows, AuditQueries.search(o)).then((r) => r.map((t) => t.taskId))
    expect(await ids({})).toEqual(["t4", "t3", "t2", "t1"])
    expect(await ids({ subject: "etl.load" })).toEqual(["t3", "t2", "t1"])
    expect(await ids({ subject: "etl.load", limit: 2 })).toEqual(["t3", "t2"])
    expect(await ids({ status: "completed" })).toEqual(["t4", "t1"])
    expect(await ids({ subject: "etl.load", status: "failed" })).toEqual(["t2"])
    expect(await ids({ tenant: "globex" })).toEqual(["t3"])
    expect(await ids({ taskId: "t1" })).toEqual(["t1"])
  })
})
