/**
 * The DLQ worker killed (SIGKILL) between a letter's replay and the letter's delete: the letter
 * comes back to another DLQ worker after ack_wait, which replays it again with the same
 * `Nats-Msg-Id`; the task stream drops the copy, so the task runs once (guarantee 4 without
 * breaking guarantee 2). The DLQ workers run as `msgsys dlq-worker` processes, apart from the task
 * worker, so the kill hits the DLQ worker only.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { Duration, Effect, Option } from "effect"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import type * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import * as DeadLetters from "../../../src/dlq/DeadLetters.ts"
import * as Client from "../../../src/client/Client.ts"
import { Results } from "../../../src/task/Results.ts"
import { define } from "../../fixtures/chaosApp.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { auditRows, cleanEnv, clientRuntime, killAll, type Proc, ready, spawn, spawnWorker, tally, waitFor } from "./support.ts"

const h = natsHarness()
afterEach(killAll)

/** `msgsys dlq-worker` on the test's server, prefix and SQLite file. */
const spawnDlqWorker = (label: string, settings: MsgsysConfig.MsgsysSettings, env: Record<string, string> = {}): Proc =>
  spawn(label, ["bun", "src/cli/main.ts", "dlq-worker"], {
    ...cleanEnv(),
    MSGSYS_NATS_URL: settings.nats.servers.join(","),
    MSGSYS_STREAM_PREFIX: settings.streamPrefix,
    MSGSYS_DATA_DIR: settings.dataDir,
    MSGSYS_SQLITE_PATH: settings.sqlitePath,
    MSGSYS_HTTP_PORT: "0",
    MSGSYS_ACK_WAIT: `${Duration.toMillis(settings.ackWait)}ms`,
    MSGSYS_LOG_LEVEL: "Info",
    MSGSYS_LOG_FORMAT: "logfmt",
    MSGSYS_DLQ_RETRY_BASE: "300ms",
    MSGSYS_DLQ_RETRY_CAP: "300ms",
    ...env
  })

const dlqReady = (p: Proc) =>
  waitFor(`${p.label} to start\n${p.output()}`, () => {
    if (!p.alive()) throw new Error(`${p.label} exited before it was ready:\n${p.output()}`)
    return p.output().includes("DLQ worker running")
  }, 20_000)

describe("the DLQ worker killed between replay and delete", () => {
  test("a SIGKILL of the DLQ worker after a letter's replay was stored, before the letter was deleted, makes no second task run", async () => {
    const settings = h.settings({ ackWait: Duration.seconds(2) })
    const actor = actorName("dlqkill")
    const { Gated } = define(actor)
    const log = join(settings.dataDir, "chaos.log")
    const gate = join(settings.dataDir, "gate")
    const names = Subjects.make(settings.streamPrefix)
    const worker = spawnWorker({ label: "tasks", settings, actor, log, env: { CHAOS_GATE: gate } })
    await ready(worker)
    const rt = clientRuntime(settings)
    try {
      const handle = await rt.runPromise(Client.Client.use((c) => c.enqueue(Gated, { id: "g1" })))
      await waitFor("the task to die", async () =>
        (await rt.runPromise(Results.use((r) => r.get(handle.id)))).pipe(Option.exists((r) => r.status === "dead")), 20_000)
      const letters = () => rt.runPromise(Nats.use(() => DeadLetters.list(names, { actor })).pipe(Effect.map((p) => p.letters)))
      const [letter] = await letters()
      expect(letter?.letter.taskId).toBe(handle.id)
      writeFileSync(gate, "fixed")

      // the first DLQ worker replays the letter, then dies before deleting it
      const doomed = spawnDlqWorker("doomed dlq", settings, { MSGSYS_FAILPOINTS: "dlq-after-replay" })
      expect(await doomed.exited).toBe(137)
      expect(doomed.proc.signalCode).toBe("SIGKILL")
      expect(doomed.output()).toContain("DLQ worker running")
      // the replay was stored and runs; the letter is still there
      await waitFor("the replay to succeed", async () =>
        (await rt.runPromise(Results.use((r) => r.get(handle.id)))).pipe(Option.exists((r) => r.status === "succeeded")), 20_000)
      expect((await letters()).map((l) => l.sequence)).toEqual([letter!.sequence])

      // a healthy DLQ worker gets the letter back after ack_wait, replays it again (dropped as a
      // duplicate) and deletes it
      const healthy = spawnDlqWorker("healthy dlq", settings)
      await dlqReady(healthy)
      await waitFor("the letter to be deleted", async () => (await letters()).length === 0, 30_000, 100)
      expect(healthy.output()).toContain(`DLQ worker replayed dead letter #${letter!.sequence}`)
      // time for a second run to show, had the copy been stored
      await Bun.sleep(3_000)

      const runs = tally(log, ["g1"])
      expect(runs.started.get("g1")).toBe(2) // the failing run, then the replay
      expect(runs.done.get("g1")).toBe(1)
      // one delivery of the replay: no duplicate reached the task worker at all
      expect(auditRows(settings.sqlitePath, handle.id).filter((r) => r.step === "skipped_duplicate")).toEqual([])
      const record = Option.getOrThrow(await rt.runPromise(Results.use((r) => r.get(handle.id))))
      expect(record.status).toBe("succeeded")
      expect(worker.alive()).toBe(true)
    } finally {
      await rt.dispose()
    }
  }, 90_000)
})
