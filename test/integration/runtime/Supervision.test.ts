/**
 * Supervision: a consume loop that loses its consumer is restarted (the consumer re-declared),
 * the restart is logged and counted, and the actor goes on working.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, type LogLine, Runs, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

describe("supervision", () => {
  test("a consumer deleted from under a running worker is re-created, the restart is logged and counted, and new tasks complete", async () => {
    const name = actorName("sup")
    const Echo = Task.make(`${name}.echo`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const A = Actor.make(name, { protocol: [Echo], retry: Retry.none })
    const runs = new Runs()
    const app = appOf([A, {
      [Echo.subject]: ({ input, taskId }) => Effect.sync(() => runs.add(taskId)).pipe(Effect.as({ n: input.n }))
    }])
    const logs: Array<LogLine> = []
    const settings = h.settings({ ackWait: Duration.seconds(3), shutdownGrace: Duration.seconds(2) })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      const before = yield* rt.client.enqueue(Echo, { n: 1 })
      expect(yield* rt.client.result(before, "10 seconds")).toEqual({ n: 1 })
      expect((yield* rt.worker.state)[0]!.restarts).toBe(0)

      const stream = rt.names.taskStream(name)
      const consumer = rt.names.taskConsumer(name, "normal")
      yield* Effect.promise(() => rt.nats.manager.consumers.delete(stream, consumer))

      yield* waitFor("a restart", Effect.map(rt.worker.state, (s) => s[0]!.restarts >= 1), "15 seconds", "50 millis")
      expect(logs.some((l) => l.message.includes(`consume loop of ${name} stopped; restart #1`))).toBe(true)
      yield* waitFor(
        "the consumer to be re-created",
        Effect.promise(() => rt.nats.manager.consumers.info(stream, consumer).then(() => true, () => false)),
        "10 seconds",
        "100 millis"
      )
      const after = yield* Effect.forEach([2, 3, 4], (n) => rt.client.enqueue(Echo, { n }))
      const outs = yield* Effect.forEach(after, (hd) => rt.client.result(hd, "15 seconds"), { concurrency: "unbounded" })
      expect(outs.map((o) => o.n)).toEqual([2, 3, 4])
      expect(runs.total).toBe(4)
      expect(runs.twice).toEqual([])
    }), logs)
  }, 40_000)
})
