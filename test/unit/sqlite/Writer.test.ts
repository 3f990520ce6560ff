import { Database as BunDatabase } from "bun:sqlite"
import { afterAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqliteFile from "../../../src/sqlite/SqliteFile.ts"
import * as Writer from "../../../src/sqlite/Writer.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-writer-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let n = 0
const open = (busyTimeoutMs = 20) => {
  const path = join(dir, `w${++n}.db`)
  const db = SqliteFile.open({ path, synchronous: "normal", busyTimeoutMs, migrations: [], now: 0 })
  db.run("CREATE TABLE t (x INTEGER NOT NULL)")
  return { db, path }
}
const count = (db: BunDatabase) => db.query<{ n: number }, []>("SELECT count(*) AS n FROM t").get()!.n
const insert = (x: number | null) => (db: BunDatabase) => db.run("INSERT INTO t VALUES (?)", [x])

describe("Writer", () => {
  test("operations submitted in one turn of the event loop commit in one transaction", async () => {
    const { db } = open()
    const writer = Writer.make(db)
    await Promise.all(Array.from({ length: 500 }, (_, i) => Effect.runPromise(writer.write("insert", insert(i)))))
    expect(count(db)).toBe(500)
    expect(writer.stats()).toMatchObject({ commits: 1, operations: 500, largestBatch: 500, failures: 0 })
    db.close()
  })

  test("an operation resolves only after its transaction committed (another connection sees it)", async () => {
    const { db, path } = open()
    const writer = Writer.make(db)
    await Effect.runPromise(writer.write("insert", insert(7)))
    const other = new BunDatabase(path, { readonly: true })
    expect(count(other)).toBe(1)
    other.close()
    db.close()
  })

  test("a failing operation fails alone; the others of its batch commit", async () => {
    const { db } = open()
    const writer = Writer.make(db)
    const results = await Promise.all([
      Effect.runPromise(Effect.result(writer.write("a", insert(1)))),
      Effect.runPromise(Effect.result(writer.write("null is refused", insert(null)))),
      Effect.runPromise(Effect.result(writer.write("b", insert(2))))
    ])
    expect(results.map((r) => r._tag)).toEqual(["Success", "Failure", "Success"])
    const failed = results[1]!
    if (failed._tag === "Failure") expect(failed.failure.operation).toBe("null is refused")
    expect(count(db)).toBe(2)
    db.close()
  })

  test("a file locked by another process is waited for on a timer: the event loop keeps running", async () => {
    const { db, path } = open(5)
    const writer = Writer.make(db)
    const holder = new BunDatabase(path)
    holder.run("BEGIN IMMEDIATE")
    let ticks = 0
    const ticker = setInterval(() => ticks++, 10)
    const written = Effect.runPromise(writer.write("insert", insert(1)))
    await Bun.sleep(200)
    // the lock is still held and the write is still waiting, yet timers ran all along
    expect(count(db)).toBe(0)
    expect(ticks).toBeGreaterThan(10)
    holder.run("COMMIT")
    await written
    clearInterval(ticker)
    holder.close()
    expect(count(db)).toBe(1)
    expect(writer.stats().busyWaits).toBeGreaterThan(0)
    db.close()
  })

  test("a lock held past the limit fails the waiting operations with SQLITE_BUSY", async () => {
    const { db, path } = open(5)
    const writer = Writer.make(db, { busyLimitMs: 100 })
    const holder = new BunDatabase(path)
    holder.run("BEGIN IMMEDIATE")
    const r = await Effect.runPromise(Effect.result(writer.write("insert", insert(1))))
    holder.run("ROLLBACK")
    holder.close()
    expect(r._tag).toBe("Failure")
    if (r._tag === "Failure") expect(SqliteFile.isBusy(r.failure.cause)).toBe(true)
    db.close()
  })

  test("close commits what is queued, then refuses new operations", async () => {
    const { db } = open()
    const writer = Writer.make(db)
    const queued = Array.from({ length: 10 }, (_, i) => Effect.runPromise(writer.write("insert", insert(i))))
    await writer.close()
    await Promise.all(queued)
    expect(count(db)).toBe(10)
    const late = await Effect.runPromise(Effect.result(writer.write("late", insert(99))))
    expect(late._tag).toBe("Failure")
    expect(count(db)).toBe(10)
    db.close()
  })

  test("more operations than one batch holds commit in several transactions, in order", async () => {
    const { db } = open()
    const writer = Writer.make(db, { maxBatch: 100 })
    await Promise.all(Array.from({ length: 250 }, (_, i) => Effect.runPromise(writer.write("insert", insert(i)))))
    const xs = db.query<{ x: number }, []>("SELECT x FROM t ORDER BY rowid").all().map((r) => r.x)
    expect(xs).toEqual(Array.from({ length: 250 }, (_, i) => i))
    expect(writer.stats()).toMatchObject({ commits: 3, largestBatch: 100 })
    db.close()
  })
})
