import { afterAll, describe, expect, test } from "bun:test"
import { Database as BunDatabase } from "bun:sqlite"
import { Effect } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Database from "../../../src/sqlite/Database.ts"
import { migrations } from "../../../src/sqlite/internal/migrations.ts"
import * as SqliteFile from "../../../src/sqlite/SqliteFile.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const withDb = <A, E>(options: Database.Options, f: (db: Database.Database["Service"]) => Effect.Effect<A, E>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(Database.make(options), f)))

describe("Database", () => {
  test("opens a new file in a missing directory with WAL, NORMAL sync and a 20 ms busy timeout", async () => {
    const path = join(dir, "nested", "deeper", "a.db")
    const pragmas = await withDb({ path }, (db) =>
      db.use("pragmas", (h) => ({
        journal: h.query<{ journal_mode: string }, []>("PRAGMA journal_mode").get()?.journal_mode,
        sync: h.query<{ synchronous: number }, []>("PRAGMA synchronous").get()?.synchronous,
        busy: h.query<{ timeout: number }, []>("PRAGMA busy_timeout").get()?.timeout
      })))
    expect(pragmas).toEqual({ journal: "wal", sync: 1, busy: 20 })
  })

  test("pins synchronous=FULL and a custom busy timeout when asked", async () => {
    const pragmas = await withDb({ path: join(dir, "full.db"), synchronous: "full", busyTimeoutMs: 1234 }, (db) =>
      db.use("pragmas", (h) => ({
        sync: h.query<{ synchronous: number }, []>("PRAGMA synchronous").get()?.synchronous,
        busy: h.query<{ timeout: number }, []>("PRAGMA busy_timeout").get()?.timeout
      })))
    expect(pragmas).toEqual({ sync: 2, busy: 1234 })
  })

  test("applies each migration exactly once across reopenings", async () => {
    const path = join(dir, "migrate.db")
    await withDb({ path }, () => Effect.void)
    const rows = await withDb({ path }, (db) =>
      db.use("read", (h) => {
        // a third run on the open connection applies nothing
        const again = SqliteFile.migrate(h, migrations, 0)
        const versions = h.query<{ version: number }, []>("SELECT version FROM schema_migrations ORDER BY version").all()
        return { again, versions: versions.map((v) => v.version) }
      }))
    expect(rows.again).toEqual([])
    expect(rows.versions).toEqual(migrations.map((m) => m.version))
  })

  test("write commits on return and rolls back on throw", async () => {
    const counts = await withDb({ path: join(dir, "tx.db") }, (db) =>
      Effect.gen(function*() {
        yield* db.use("t", (h) => h.run("CREATE TABLE t (x)"))
        yield* db.write("ok", (h) => h.run("INSERT INTO t VALUES (1)"))
        const failed = yield* Effect.flip(db.write("boom", (h) => {
          h.run("INSERT INTO t VALUES (2)")
          throw new Error("boom")
        }))
        const n = yield* db.use("count", (h) => h.query<{ n: number }, []>("SELECT count(*) AS n FROM t").get()?.n)
        return { n, failed }
      }))
    expect(counts.n).toBe(1)
    expect(counts.failed._tag).toBe("DatabaseError")
    expect(counts.failed.operation).toBe("boom")
  })

  test("a path it cannot create fails with a DatabaseError that names the path and the fix", async () => {
    const blocker = join(dir, "a-file")
    writeFileSync(blocker, "not a directory")
    const error = await Effect.runPromise(Effect.scoped(Effect.flip(Database.make({ path: join(blocker, "x.db") }))))
    expect(error._tag).toBe("DatabaseError")
    expect(error.message).toContain(join(blocker, "x.db"))
  })

  test("a file that is not SQLite fails with SQLITE_NOTADB and says to move it aside", async () => {
    const path = join(dir, "garbage.db")
    writeFileSync(path, "x".repeat(4096))
    const error = await Effect.runPromise(Effect.scoped(Effect.flip(Database.make({ path }))))
    expect(error.code).toStartWith("SQLITE_NOTADB")
    expect(error.message).toContain("move it aside")
  })

  test("retries SQLITE_BUSY while another connection locks a new file, then opens it", async () => {
    const path = join(dir, "locked.db")
    const holder = new BunDatabase(path, { create: true })
    holder.run("BEGIN EXCLUSIVE")
    holder.run("CREATE TABLE other (x)")
    setTimeout(() => holder.run("COMMIT"), 150)
    // a 10 ms busy_timeout makes each try fail fast; only the retry gets past the lock
    const version = await withDb({ path, busyTimeoutMs: 10 }, (db) =>
      db.use("read", (h) => h.query<{ v: number }, []>("SELECT max(version) AS v FROM schema_migrations").get()?.v))
    holder.close()
    expect(version).toBe(migrations.at(-1)!.version)
  })

  test("gives up with SQLITE_BUSY and says to raise busyTimeoutMs when the lock is never released", async () => {
    const path = join(dir, "stuck.db")
    const holder = new BunDatabase(path, { create: true })
    holder.run("BEGIN EXCLUSIVE")
    holder.run("CREATE TABLE other (x)")
    const error = await Effect.runPromise(Effect.scoped(Effect.flip(Database.make({ path, busyTimeoutMs: 1 }))))
    holder.run("ROLLBACK")
    holder.close()
    expect(error.code).toStartWith("SQLITE_BUSY")
    expect(error.message).toContain("busyTimeoutMs")
  }, 20_000)
})
