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
import { ackPending, appOf, Runs, runTest, start, waitFor } from "../../support/runtimeTools.ts"

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
})
