/**
 * The disk under the SQLite file fills up while a worker is busy. The handlers run, but their
 * outcomes cannot be stored: the messages stay held (heartbeated) and their settlements are tried
 * again, so none is redelivered to run a second time. Once space is freed, every task completes
 * once, with one "succeeded" audit row. Needs root (a small tmpfs); skipped otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import { closeSync, openSync, rmSync, writeSync } from "node:fs"
import { join } from "node:path"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness, tempDir } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, auditSteps, type LogLine, runTest, Runs, start, waitFor } from "../../support/runtimeTools.ts"

const canMount = process.getuid?.() === 0 && Bun.which("mount") !== null
if (!canMount) console.warn("DiskFull.test.ts skipped: it mounts a small tmpfs, which needs root")

const h = natsHarness()
let disk = ""
beforeAll(() => {
  if (!canMount) return
  disk = tempDir("msgsys-disk-")
  const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", disk], { stderr: "pipe" })
  if (mounted.exitCode !== 0) throw new Error(`mount tmpfs: ${mounted.stderr.toString()}`)
})
afterAll(() => {
  if (disk === "") return
  Bun.spawnSync(["umount", "-l", disk])
  rmSync(disk, { recursive: true, force: true })
})

/** Writes zeros into `path` until the file system says it is full. */
const fill = (path: string) => {
  const fd = openSync(path, "w")
  const chunk = new Uint8Array(64 * 1024)
  try {
    for (;;) writeSync(fd, chunk)
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOSPC") throw e
  } finally {
    closeSync(fd)
  }
}

describe.skipIf(!canMount)("a full disk", () => {
  test("the SQLite disk fills up mid-load: no handler runs twice while outcomes cannot be stored, and every task completes once when space is freed", async () => {
    const name = actorName("diskfull")
    const Work = Task.make(`${name}.work`, { input: { n: Schema.Number, blob: Schema.String }, output: { n: Schema.Number } })
    const A = Actor.make(name, { protocol: [Work], concurrency: 8, retry: Retry.none })
    const done = new Runs()
    const app = appOf([A, { [Work.subject]: ({ input, taskId }) => Effect.sync(() => done.add(taskId)).pipe(Effect.as({ n: input.n })) }])
    // the payloads go into the audit, so each settlement needs ~50 KB of new log: more than the
    // file system has left once it is full
    const settings = h.settings({ ackWait: Duration.seconds(2), auditPayload: "full" })
    const sqlitePath = join(disk, "msgsys.sqlite")
    const logs: Array<LogLine> = []
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, { ...settings, sqlitePath })
      const blob = "x".repeat(50_000)
      const filler = join(disk, "filler")
      fill(filler)

      const handles = yield* Effect.forEach(Array.from({ length: 30 }, (_, n) => n), (n) => rt.client.enqueue(Work, { n, blob }), {
        concurrency: 8
      })
      yield* waitFor("the handlers to run and their settlements to fail",
        Effect.sync(() => done.total >= 8 && logs.some((l) => l.message.includes("could not settle"))), "20 seconds")
      // well past ack_wait (2 s) and two retries: a message handed back would have run again
      yield* Effect.sleep("4 seconds")
      expect(done.twice).toEqual([])

      rmSync(filler)
      const outs = yield* Effect.forEach(handles, (h) => rt.client.result(h, "60 seconds"), { concurrency: 8 })
      expect(outs.map((o) => o.n)).toEqual(handles.map((_, n) => n))
      expect(done.total).toBe(30)
      expect(done.twice).toEqual([])
      for (const h of handles) expect(auditSteps(sqlitePath, h.id).filter((s) => s === "succeeded")).toHaveLength(1)
    }), logs)
  }, 120_000)
})
