/**
 * The audit trail has a row for every step of every task, in order: enqueued, started, then
 * succeeded, or failed and retry_scheduled, or dead_lettered.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, auditRows, Runs, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

describe("audit trail", () => {
  test("every step of a task has its row: success, retry then success, and dead letter", async () => {
    const name = actorName("audit")
    const Job = Task.make(`${name}.job`, {
      input: { mode: Schema.Literals(["ok", "flaky", "bad"]) },
      output: { ok: Schema.Boolean }
    })
    const A = Actor.make(name, {
      protocol: [Job],
      retry: Retry.exponential({ base: "100 millis", jitter: false, maxAttempts: 2 })
    })
    const runs = new Runs()
    const app = appOf([A, {
      [Job.subject]: ({ input, taskId, attempt }) =>
        Effect.gen(function*() {
          runs.add(taskId)
          if (input.mode === "bad" || (input.mode === "flaky" && attempt === 1)) {
            return yield* Effect.fail(new Error(`${input.mode} on attempt ${attempt}`))
          }
          return { ok: true }
        })
    }])
    const s = h.settings({ ackWait: Duration.seconds(3), shutdownGrace: Duration.seconds(2) })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, s)
      const ok = yield* rt.client.enqueue(Job, { mode: "ok" })
      const flaky = yield* rt.client.enqueue(Job, { mode: "flaky" })
      const bad = yield* rt.client.enqueue(Job, { mode: "bad" })
      yield* Effect.forEach([ok, flaky, bad], (hd) => rt.client.wait(hd.id, "10 seconds"), { discard: true })

      const expected = {
        [ok.id]: ["enqueued@0", "started@1", "succeeded@1"],
        [flaky.id]: ["enqueued@0", "started@1", "failed@1", "retry_scheduled@1", "started@2", "succeeded@2"],
        [bad.id]: ["enqueued@0", "started@1", "failed@1", "retry_scheduled@1", "started@2", "failed@2", "dead_lettered@2"]
      }
      // in commit order
      const stepsOf = (id: string) => auditRows(s.sqlitePath, id).map((r) => `${r.step}@${r.attempt}`)
      // acks follow the rows, but "started" is written beside the handler: wait for all of them
      yield* waitFor(
        "every audit row",
        Effect.sync(() => Object.entries(expected).every(([id, steps]) => stepsOf(id).length >= steps.length))
      )
      for (const [id, steps] of Object.entries(expected)) expect(stepsOf(id)).toEqual(steps)
      // and their times never go backwards
      for (const id of Object.keys(expected)) {
        const at = auditRows(s.sqlitePath, id).map((r) => r.at)
        expect(at).toEqual([...at].sort((a, b) => a - b))
      }

      const failed = auditRows(s.sqlitePath, bad.id).filter((r) => r.step === "failed")
      expect(failed.map((r) => r.error)).toEqual(["bad on attempt 1", "bad on attempt 2"])
      const retry = auditRows(s.sqlitePath, flaky.id).find((r) => r.step === "retry_scheduled")
      expect(retry?.delay_ms).toBe(100)
      expect(runs.count(ok.id)).toBe(1)
      expect(runs.count(flaky.id)).toBe(2)
      expect(runs.count(bad.id)).toBe(2)
    }))
  }, 30_000)
})
