/**
 * Graceful shutdown of a worker process (guarantee 7): on SIGTERM it stops pulling, lets in-flight
 * work finish within the grace period, hands back (nak) what is left so another worker takes it at
 * once, and exits 0. Nothing is lost, nothing runs to completion twice.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { Duration, Effect } from "effect"
import { join } from "node:path"
import * as Client from "../../../src/client/Client.ts"
import { define } from "../../fixtures/chaosApp.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import {
  clientRuntime,
  finalRecords,
  killAll,
  notSucceeded,
  readLog,
  ready,
  spawnWorker,
  tally,
  waitFor
} from "./support.ts"

const h = natsHarness()
afterEach(killAll)

describe("graceful shutdown", () => {
  test("SIGTERM with tasks in flight: exit 0, in-flight tasks finish first, queued ones run elsewhere, nothing lost or run twice", async () => {
    const graceMs = 10_000
    const settings = h.settings({ ackWait: Duration.seconds(3) })
    const actor = actorName("term")
    const { Sleep } = define(actor)
    const log = join(settings.dataDir, "chaos.log")
    const env = { CHAOS_CONCURRENCY: "6", MSGSYS_SHUTDOWN_GRACE: `${graceMs}ms` }
    const first = spawnWorker({ label: "w1", settings, actor, log, env })
    await ready(first)

    const rt = clientRuntime(settings)
    try {
      const ids = Array.from({ length: 10 }, (_, i) => `job-${i}`)
      const handles = await rt.runPromise(Effect.forEach(ids, (id) =>
        Client.Client.use((c) => c.enqueue(Sleep, { id, ms: 1500 })), { concurrency: "unbounded" }))
      const taskIds = handles.map((x) => x.id)

      await waitFor("6 tasks in flight", () => readLog(log).filter((l) => l.kind === "start").length >= 6, 10_000, 10)
      first.proc.kill("SIGTERM")
      const termAt = Date.now()
      const atTerm = readLog(log)
      const inFlight = atTerm.filter((l) => l.kind === "start" && l.pid === first.pid).map((l) => l.id)
      expect(atTerm.filter((l) => l.kind === "done")).toEqual([])
      expect(inFlight.length).toBe(6)

      expect(await first.exited).toBe(0)
      expect(first.exitedAt()! - termAt).toBeLessThan(graceMs)
      // every task in flight at SIGTERM finished on the first worker before it exited
      const atExit = readLog(log)
      const doneByFirst = atExit.filter((l) => l.kind === "done" && l.pid === first.pid)
      expect(doneByFirst.map((l) => l.id).sort()).toEqual([...inFlight].sort())
      for (const l of doneByFirst) expect(l.at).toBeLessThanOrEqual(first.exitedAt()!)
      // and nothing new was started after the signal
      expect(atExit.filter((l) => l.kind === "start").length).toBe(6)

      // the queued rest runs on a second worker
      const second = spawnWorker({ label: "w2", settings, actor, log, env })
      await ready(second)
      const records = await finalRecords(rt, taskIds, 30_000)
      expect(notSucceeded(records, taskIds)).toEqual([])

      const t = tally(log, ids)
      expect(t.lost).toEqual([])
      expect(t.twice).toEqual([])
      // nothing was interrupted, so nothing even started twice
      expect(ids.filter((id) => t.started.get(id) !== 1)).toEqual([])
      for (const id of ids.filter((x) => !inFlight.includes(x))) {
        expect(t.lines.find((l) => l.kind === "done" && l.id === id)!.pid).toBe(second.pid)
      }
    } finally {
      await rt.dispose()
    }
  }, 60_000)

  test("SIGTERM with a grace shorter than the tasks: exit 0, unfinished tasks are handed back and finished promptly by another worker", async () => {
    // ack_wait is long, so only a nak (not a redelivery timeout) can bring them back in time
    const settings = h.settings({ ackWait: Duration.seconds(30) })
    const actor = actorName("grace")
    const { Sleep } = define(actor)
    const log = join(settings.dataDir, "chaos.log")
    const env = { MSGSYS_SHUTDOWN_GRACE: "500ms" }
    const first = spawnWorker({ label: "w1", settings, actor, log, env })
    await ready(first)

    const rt = clientRuntime(settings)
    try {
      const ids = Array.from({ length: 4 }, (_, i) => `long-${i}`)
      const handles = await rt.runPromise(Effect.forEach(ids, (id) =>
        Client.Client.use((c) => c.enqueue(Sleep, { id, ms: 5000 })), { concurrency: "unbounded" }))
      const taskIds = handles.map((x) => x.id)

      await waitFor("4 tasks in flight", () => readLog(log).filter((l) => l.kind === "start").length >= 4, 10_000, 10)
      first.proc.kill("SIGTERM")
      expect(await first.exited).toBe(0)
      const exitedAt = first.exitedAt()!
      // none finished on the first worker: the grace ran out
      expect(readLog(log).filter((l) => l.kind === "done")).toEqual([])

      const second = spawnWorker({ label: "w2", settings, actor, log, env })
      await ready(second)
      const records = await finalRecords(rt, taskIds, 40_000)
      expect(notSucceeded(records, taskIds)).toEqual([])

      const t = tally(log, ids)
      expect(t.lost).toEqual([])
      expect(t.twice).toEqual([])
      for (const id of ids) {
        expect(t.started.get(id)).toBe(2)
        const done = t.lines.find((l) => l.kind === "done" && l.id === id)!
        expect(done.pid).toBe(second.pid)
        // handed back at once (and its idempotency key released), not after ack_wait (30 s)
        expect(done.at - exitedAt).toBeLessThan(15_000)
      }
    } finally {
      await rt.dispose()
    }
  }, 60_000)
})
