import { afterAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Database from "../../../src/sqlite/Database.ts"
import type * as Checkpointer from "../../../src/sqlite/Checkpointer.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-ckpt-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Writes ~30,000 rows in steady batches; returns the largest size the log file reached and the rows. */
const writeSteadily = (path: string, checkpoints: Checkpointer.Options) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* Database.make({ path, checkpoints })
    let largest = 0
    for (let batch = 0; batch < 150; batch++) {
      yield* db.write("filling", (h) => {
        const insert = h.prepare("INSERT INTO idempotency_keys (key, owner, held_until, done) VALUES (?, ?, 0, 0)")
        for (let i = 0; i < 200; i++) insert.run(`k-${batch}-${i}`, "x".repeat(300))
      })
      largest = Math.max(largest, statSync(`${path}-wal`).size)
      yield* Effect.sleep("5 millis")
    }
    const rows = (db.handle.query("SELECT count(*) AS n FROM idempotency_keys").get() as { n: number }).n
    return { largest, rows }
  })))

describe("WAL checkpoints on their own thread", () => {
  test("under steady writing the log is copied into the file and starts over: it stays bounded, nothing is lost", async () => {
    // the writer's own automatic checkpoint is set far above what is written: only the thread acts
    const withThread = await writeSteadily(join(dir, "thread.sqlite"), { intervalMs: 20, restartFrames: 500, backstopPages: 1_000_000 })
    const withoutThread = await writeSteadily(join(dir, "none.sqlite"), { intervalMs: 3_600_000, restartFrames: 500, backstopPages: 1_000_000 })
    expect(withThread.rows).toBe(150 * 200)
    expect(withoutThread.rows).toBe(150 * 200)
    // some 3,000 pages are written: the log of the control run holds them all, the thread's a part
    expect(withoutThread.largest).toBeGreaterThan(10 * 1024 * 1024)
    expect(withThread.largest).toBeLessThan(withoutThread.largest / 2)
  }, 60_000)
})
