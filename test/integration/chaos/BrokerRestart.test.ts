/**
 * The broker restarts (SIGKILL, then start on the same port and store) while two worker processes
 * are busy: every task still completes, and redeliveries of work already done are absorbed by the
 * idempotency store, with keys in SQLite and in NATS KV (whose bucket restarts with the broker),
 * so no handler completes twice (guarantees 1 and 2).
 */
import { afterEach, describe, expect, test } from "bun:test"
import { Duration, Effect } from "effect"
import { join } from "node:path"
import * as Client from "../../../src/client/Client.ts"
import { define } from "../../fixtures/chaosApp.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import {
  auditCounts,
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

describe("broker restart", () => {
  test.each(["sqlite", "kv"] as const)("broker restart mid-load: every task completes, none twice beyond what idempotency absorbs (keys in %s)", async (idempotencyStore) => {
    const base = h.settings({ ackWait: Duration.seconds(3), idempotencyStore })
    // reconnect quickly after the restart (the client here and the workers alike)
    const settings = { ...base, nats: { ...base.nats, reconnectWait: Duration.millis(250) } }
    const actor = actorName("restart")
    const { Sleep } = define(actor)
    const log = join(settings.dataDir, "chaos.log")
    const workers = ["w1", "w2"].map((label) =>
      spawnWorker({ label, settings, actor, log, env: { MSGSYS_NATS_RECONNECT_WAIT: "250ms", MSGSYS_IDEMPOTENCY_STORE: idempotencyStore } })
    )
    await Promise.all(workers.map((w) => ready(w)))

    const rt = clientRuntime(settings)
    try {
      const ids = Array.from({ length: 200 }, (_, i) => `t-${i}`)
      const handles = await rt.runPromise(Effect.forEach(ids, (id) =>
        Client.Client.use((c) => c.enqueue(Sleep, { id, ms: 20 })), { concurrency: 32 }))
      const taskIds = handles.map((x) => x.id)

      // restart in the middle: some done, most not
      await waitFor("a quarter of the tasks to finish", () =>
        readLog(log).filter((l) => l.kind === "done").length >= 50, 30_000, 5)
      await Effect.runPromise(h.server.restart)
      const doneAtRestart = readLog(log).filter((l) => l.kind === "done").length
      expect(doneAtRestart).toBeLessThan(200)

      const records = await finalRecords(rt, taskIds, 60_000)
      expect(notSucceeded(records, taskIds)).toEqual([])

      const t = tally(log, ids)
      expect(t.lost).toEqual([])
      expect(t.twice).toEqual([])
      // every task has exactly one "succeeded" audit row in the SQLite file the workers share
      const succeeded = auditCounts(settings.sqlitePath, "succeeded")
      expect(taskIds.filter((id) => succeeded.get(id) !== 1)).toEqual([])
      // the workers rode the restart out
      for (const w of workers) expect(w.alive()).toBe(true)
    } finally {
      await rt.dispose()
    }
  }, 120_000)
})
