import { afterAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Database from "../../../src/sqlite/Database.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const fixture = join(import.meta.dir, "fixtures", "recordMany.ts")

const runChild = (path: string, count: number, tag: string, startAt: number) => {
  const child = Bun.spawn([process.execPath, fixture, path, String(count), tag, String(startAt)], {
    stdout: "pipe",
    stderr: "pipe",
    timeout: 60_000
  })
  return Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]).then(
    ([out, err, code]) => ({ code, err, result: JSON.parse(out.trim().split("\n").pop() || "{}") as {
      committed: number
      errors: Array<string>
    } })
  )
}

describe("two processes, one audit file", () => {
  test("two processes creating and writing one NEW file at once commit all 10000 rows with no SQLITE_BUSY", async () => {
    // several rounds, each on a new file: the WAL switch race on a new file is what bites (PITFALLS §6)
    for (let round = 0; round < 3; round++) {
      const path = join(dir, `shared-${round}`, "audit.db")
      const startAt = Date.now() + 400
      const [a, b] = await Promise.all([runChild(path, 5000, "a", startAt), runChild(path, 5000, "b", startAt)])
      expect({ code: a.code, errors: a.result.errors, stderr: a.err }).toEqual({ code: 0, errors: [], stderr: "" })
      expect({ code: b.code, errors: b.result.errors, stderr: b.err }).toEqual({ code: 0, errors: [], stderr: "" })
      expect(a.result.committed + b.result.committed).toBe(10_000)
      const counts = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const db = yield* Database.make({ path })
        return yield* db.use("count", (h) =>
          h.query<{ tenant: string; n: number }, []>(
            "SELECT tenant, count(DISTINCT message_id) AS n FROM audit_log GROUP BY tenant ORDER BY tenant"
          ).all())
      })))
      expect(counts).toEqual([{ tenant: "a", n: 5000 }, { tenant: "b", n: 5000 }])
    }
  }, 120_000)

  test("four processes opening one NEW file in the same millisecond all open it (SQLITE_BUSY on the WAL switch is retried)", async () => {
    for (let round = 0; round < 3; round++) {
      const path = join(dir, `open-race-${round}.db`)
      const startAt = Date.now() + 300
      const children = await Promise.all(["a", "b", "c", "d"].map((tag) => runChild(path, 0, tag, startAt)))
      for (const c of children) expect({ code: c.code, errors: c.result.errors }).toEqual({ code: 0, errors: [] })
    }
  }, 120_000)
})
