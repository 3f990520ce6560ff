/**
 * A worker that dies (SIGKILL) between storing a task's outcome and acking it: the message comes
 * back to another worker, which does not run the handler again and leaves exactly one "succeeded"
 * audit row (guarantees 1 and 2: the ack comes only after the audit commit). With keys in SQLite
 * the outcome and its row commit together; with keys in NATS KV they are two writes, and a crash
 * between them is reconciled on the redelivery.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { Duration } from "effect"
import { join } from "node:path"
import * as Client from "../../../src/client/Client.ts"
import { define } from "../../fixtures/chaosApp.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import {
  auditCounts,
  auditRows,
  clientRuntime,
  finalRecords,
  killAll,
  messagesLeft,
  notSucceeded,
  ready,
  spawnWorker,
  tally,
  waitFor
} from "./support.ts"

const h = natsHarness()
afterEach(killAll)

type Failpoint = "after-outcome-stored" | "after-commit" | "before-ack"

const crashAt = (failpoint: Failpoint, env: Record<string, string> = {}) => async () => {
  const settings = h.settings({ ackWait: Duration.seconds(3) })
  const actor = actorName(failpoint === "before-ack" ? "fpack" : failpoint === "after-commit" ? "fpcom" : "fpout")
  const { Sleep } = define(actor)
  const log = join(settings.dataDir, "chaos.log")
  // the outcome is audited in the same commit unless it was stored alone (keys in NATS KV)
  const auditedWithOutcome = failpoint !== "after-outcome-stored"
  const doomed = spawnWorker({ label: "doomed", settings, actor, log, env: { ...env, MSGSYS_FAILPOINTS: failpoint } })
  await ready(doomed)

  const rt = clientRuntime(settings)
  try {
    const handle = await rt.runPromise(Client.Client.use((c) => c.enqueue(Sleep, { id: "once", ms: 50 })))
    // the failpoint makes it SIGKILL itself after the handler ran
    expect(await doomed.exited).toBe(137)
    expect(doomed.proc.signalCode).toBe("SIGKILL")
    const before = tally(log, ["once"])
    expect(before.done.get("once")).toBe(1)
    expect(auditCounts(settings.sqlitePath, "succeeded").get(handle.id) ?? 0).toBe(auditedWithOutcome ? 1 : 0)

    // the message was never acked: a healthy worker gets it after ack_wait
    const healthy = spawnWorker({ label: "healthy", settings, actor, log, env })
    await ready(healthy)
    const records = await finalRecords(rt, [handle.id], 30_000)
    expect(notSucceeded(records, [handle.id])).toEqual([])
    expect(records.get(handle.id)!.output).toEqual({ id: "once", pid: doomed.pid })

    // the redelivery was settled on the healthy worker: acked, so the work-queue stream is empty
    await waitFor("the redelivery to be acked", async () => (await messagesLeft(rt, settings, actor)) === 0, 30_000, 100)

    // the handler's side effect happened once, and the task is audited "succeeded" exactly once
    const after = tally(log, ["once"])
    expect(after.started.get("once")).toBe(1)
    expect(after.done.get("once")).toBe(1)
    expect(auditCounts(settings.sqlitePath, "succeeded").get(handle.id)).toBe(1)
    // by the worker that got that far: the doomed one (attempt 1) when its row committed before
    // the crash, else a redelivery on the healthy one, which recorded the stored outcome
    const settled = auditRows(settings.sqlitePath, handle.id).filter((r) => r.step !== "started" && r.step !== "enqueued")
    if (auditedWithOutcome) {
      expect(settled).toEqual([{ step: "succeeded", attempt: 1 }, { step: "skipped_duplicate", attempt: 2 }])
    } else {
      expect(settled.map((r) => r.step)).toEqual(["succeeded"])
      expect(settled[0]!.attempt).toBeGreaterThan(1)
    }
    expect(healthy.alive()).toBe(true)
  } finally {
    await rt.dispose()
  }
}

describe("ack only after the audit commit", () => {
  test(
    "ack happens only after the audit commit: with keys in NATS KV, a crash after the outcome is stored, before its audit row, leaves one succeeded audit row and one run",
    crashAt("after-outcome-stored", { MSGSYS_IDEMPOTENCY_STORE: "kv" }),
    60_000
  )
  test(
    "ack happens only after the audit commit: a crash after the outcome and its audit row commit, before the result is stored, leaves one succeeded audit row, one run and the result",
    crashAt("after-commit"),
    60_000
  )
  test(
    "ack happens only after the audit commit: a crash after the audit commit, before the ack, leaves one succeeded audit row and one run",
    crashAt("before-ack"),
    60_000
  )
})
