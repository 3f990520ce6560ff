/**
 * Guarantee 5: long work stays alive (in-progress acks keep a short ack_wait from redelivering it).
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { ackPending, appOf, type LogLine, Runs, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

describe("long tasks", () => {
  test("a task running 4x its ack_wait is kept alive by in-progress acks: delivered once, run once", async () => {
    const name = actorName("long")
    const Crunch = Task.make(`${name}.crunch`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const Long = Actor.make(name, { protocol: [Crunch], concurrency: 2, retry: Retry.none, timeout: "1 minute" })
    const runs = new Runs()
    const attempts: Array<number> = []
    const app = appOf([Long, {
      [Crunch.subject]: ({ input, taskId, attempt }) =>
        Effect.sync(() => {
          runs.add(taskId)
          attempts.push(attempt)
        }).pipe(Effect.andThen(Effect.sleep("4 seconds")), Effect.as({ n: input.n }))
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, h.settings({ ackWait: Duration.seconds(1) }))
      const handles = yield* Effect.forEach([1, 2], (n) => rt.client.enqueue(Crunch, { n }))
      const outs = yield* Effect.forEach(handles, (hd) => rt.client.result(hd, "20 seconds"), { concurrency: "unbounded" })
      expect(outs).toEqual([{ n: 1 }, { n: 2 }])
      expect(runs.total).toBe(2)
      expect(runs.twice).toEqual([])
      expect(attempts).toEqual([1, 1])
      // the acks follow the stored results; after them nothing is pending or waiting for redelivery
      yield* waitFor("the acks", Effect.map(ackPending(rt, name), (n) => n === 0))
      expect(runs.total).toBe(2)
    }))
  }, 60_000)

  test("a handler that blocks the event loop past a heartbeat is named in a warning that says why it is dangerous and what to do", async () => {
    const name = actorName("hog")
    const Crunch = Task.make(`${name}.crunch`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const Hog = Actor.make(name, { protocol: [Crunch], concurrency: 1, retry: Retry.none })
    const runs = new Runs()
    const app = appOf([Hog, {
      [Crunch.subject]: ({ input, taskId }) =>
        Effect.sync(() => {
          runs.add(taskId)
          // computes for 1.5 s without yielding: heartbeats (every ~0.67 s at a 2 s ack_wait) are late
          const until = performance.now() + 1500
          while (performance.now() < until) Math.sqrt(until)
          return { n: input.n }
        })
    }])
    const logs: Array<LogLine> = []
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, h.settings({ ackWait: Duration.seconds(2) }))
      const out = yield* rt.client.result(yield* rt.client.enqueue(Crunch, { n: 1 }), "20 seconds")
      expect(out).toEqual({ n: 1 })
      expect(runs.twice).toEqual([])
      const warnings = logs.filter((l) => l.message.includes("the event loop was blocked"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]!.level).toBe("Warn")
      expect(warnings[0]!.message).toContain(`while ${name} held 1 message(s) (${Crunch.subject})`)
      expect(warnings[0]!.message).toContain("Move CPU-bound work off the event loop")
    }), logs)
  }, 60_000)
})
