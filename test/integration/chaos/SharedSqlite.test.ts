/**
 * Two worker processes on one SQLite file (WAL, busy_timeout), both opening it new at once: under
 * load each task runs once and is audited "succeeded" exactly once, and no writer gives up with
 * SQLITE_BUSY.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { Duration, Effect } from "effect"
import { existsSync } from "node:fs"
import { join } from "node:path"
import * as Client from "../../../src/client/Client.ts"
import { define } from "../../fixtures/chaosApp.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { auditCounts, clientRuntime, finalRecords, killAll, notSucceeded, ready, spawnWorker, tally } from "./support.ts"

const h = natsHarness()
afterEach(killAll)

describe("shared SQLite", () => {
  test("two worker processes share one SQLite file under load: 500 tasks, one succeeded audit row each, no SQLITE_BUSY", async () => {
    const settings = h.settings({ ackWait: Duration.seconds(10) })
    const actor = actorName("sqlite")
    const { Sleep } = define(actor)
    const log = join(settings.dataDir, "chaos.log")
    // both open the NEW file at the same moment (the WAL switch races, PITFALLS §6)
    expect(existsSync(settings.sqlitePath)).toBe(false)
    const env = { CHAOS_CONCURRENCY: "16" }
    const workers = ["w1", "w2"].map((label) => spawnWorker({ label, settings, actor, log, env }))
    await Promise.all(workers.map((w) => ready(w)))

    const rt = clientRuntime(settings)
    try {
      const ids = Array.from({ length: 500 }, (_, i) => `row-${i}`)
      const handles = await rt.runPromise(Effect.forEach(ids, (id) =>
        Client.Client.use((c) => c.enqueue(Sleep, { id, ms: 2 })), { concurrency: 64 }))
      const taskIds = handles.map((x) => x.id)

      const records = await finalRecords(rt, taskIds, 90_000)
      expect(notSucceeded(records, taskIds)).toEqual([])

      const t = tally(log, ids)
      expect(t.lost).toEqual([])
      expect(t.twice).toEqual([])
      // both did part of the work, on the one file
      const pids = new Set(t.lines.filter((l) => l.kind === "done").map((l) => l.pid))
      expect(pids).toEqual(new Set(workers.map((w) => w.pid)))

      const succeeded = auditCounts(settings.sqlitePath, "succeeded")
      expect(taskIds.filter((id) => succeeded.get(id) !== 1)).toEqual([])
      expect(succeeded.size).toBe(500)

      for (const w of workers) {
        expect(w.alive()).toBe(true)
        expect(w.output()).not.toMatch(/SQLITE_BUSY|database is locked/i)
      }
      // a graceful stop flushes and closes the file cleanly, still without SQLITE_BUSY
      for (const w of workers) w.proc.kill("SIGTERM")
      for (const w of workers) {
        expect(await w.exited).toBe(0)
        expect(w.output()).not.toMatch(/SQLITE_BUSY|database is locked/i)
      }
    } finally {
      await rt.dispose()
    }
  }, 120_000)
})
