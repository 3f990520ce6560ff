/**
 * A worker process killed with SIGKILL mid-task: its messages come back within ack_wait, the
 * idempotency lease it held runs out, another worker finishes them, and nothing completes twice
 * (guarantees 2 and 5).
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

describe("worker killed mid-task", () => {
  test(
    "a worker killed with SIGKILL mid-task: another worker finishes it within ack_wait, and with an idempotency key it is not completed twice",
    async () => {
      const ackWaitMs = 3000
      const taskMs = 2000
      const settings = h.settings({ ackWait: Duration.millis(ackWaitMs) })
      const actor = actorName("kill")
      const { Sleep } = define(actor)
      const log = join(settings.dataDir, "chaos.log")
      const workers = ["w1", "w2"].map((label) => spawnWorker({ label, settings, actor, log }))
      await Promise.all(workers.map((w) => ready(w)))

      const rt = clientRuntime(settings)
      try {
        const ids = Array.from({ length: 10 }, (_, i) => `job-${i}`)
        const handles = await rt.runPromise(Effect.forEach(ids, (id) =>
          Client.Client.use((c) => c.enqueue(Sleep, { id, ms: taskMs })), { concurrency: "unbounded" }))
        const taskIdOf = new Map(ids.map((id, i) => [id, handles[i]!.id]))

        // kill the worker that runs the most tasks, while they sleep (none of its runs finished)
        const victim = await waitFor("both workers to run tasks", () => {
          const lines = readLog(log)
          const running = workers.map((w) => lines.filter((l) => l.kind === "start" && l.pid === w.pid).length)
          return running.every((n) => n > 0) ? workers[running[0]! >= running[1]! ? 0 : 1] : undefined
        }, 10_000, 20)
        const survivor = workers.find((w) => w !== victim)!
        victim.proc.kill("SIGKILL")
        const killedAt = Date.now()
        expect(await victim.exited).toBe(137)

        const atKill = readLog(log)
        const heldByVictim = atKill.filter((l) => l.kind === "start" && l.pid === victim.pid).map((l) => l.id)
        // the kill came mid-run: the victim finished none of the tasks it held
        expect(atKill.filter((l) => l.kind === "done" && l.pid === victim.pid)).toEqual([])
        expect(heldByVictim.length).toBeGreaterThan(0)

        const records = await finalRecords(rt, [...taskIdOf.values()], 45_000)
        expect(notSucceeded(records, [...taskIdOf.values()])).toEqual([])

        const t = tally(log, ids)
        expect(t.lost).toEqual([])
        expect(t.twice).toEqual([])
        for (const id of ids) expect(t.started.get(id) ?? 0).toBeGreaterThanOrEqual(1)

        // each task the victim held ran again on the survivor, and finished in bounded time:
        // redelivered within ack_wait of the last heartbeat, then at most one lease (3 heartbeats
        // of ack_wait/3 + 1 s) before the key is free, then the task itself, plus slack
        const leaseMs = ackWaitMs + 1000
        const bound = ackWaitMs + leaseMs + taskMs + 5000
        const doneLines = t.lines.filter((l) => l.kind === "done")
        for (const id of heldByVictim) {
          const done = doneLines.find((l) => l.id === id)!
          expect(done.pid).toBe(survivor.pid)
          expect(t.started.get(id)).toBe(2)
          expect(done.at - killedAt).toBeLessThan(bound)
          // the stored result comes from the run that finished, on the survivor
          const record = records.get(taskIdOf.get(id)!)!
          expect((record.output as { pid: number }).pid).toBe(survivor.pid)
          expect(record.endedAt! - killedAt).toBeLessThan(bound)
        }
        // a lease held by a crashed worker expires, so the task ran again (not stuck, not skipped)
        const rerunStarts = t.lines.filter((l) => l.kind === "start" && l.pid === survivor.pid && heldByVictim.includes(l.id))
        expect(rerunStarts.length).toBe(heldByVictim.length)
        for (const s of rerunStarts) expect(s.at).toBeGreaterThan(killedAt)
      } finally {
        await rt.dispose()
      }
    },
    90_000
  )
})
