/**
 * Concurrency budgets: a worker never holds more messages than it has free slots (guarantee 6),
 * and a saturated pool never delays another pool.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Fiber, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { ackPending, appOf, now, Runs, runTest, start, taskCount, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

describe("pools and slots", () => {
  test("a worker with 2 free slots never holds more than 2 messages, and all 30 tasks run once", async () => {
    const name = actorName("fetch")
    const Sleep = Task.make(`${name}.sleep`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const A = Actor.make(name, { protocol: [Sleep], concurrency: 2, retry: Retry.none })
    const runs = new Runs()
    const app = appOf([A, {
      [Sleep.subject]: ({ input, taskId }) =>
        Effect.sync(() => runs.add(taskId)).pipe(Effect.andThen(Effect.sleep("300 millis")), Effect.as({ n: input.n }))
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, h.settings({ ackWait: Duration.seconds(5) }))
      const samples: Array<{ readonly pending: number; readonly inFlight: number; readonly held: number }> = []
      const monitor = yield* Effect.gen(function*() {
        while (true) {
          const [pending, inFlight, state] = yield* Effect.all([ackPending(rt, name), rt.worker.inFlight, rt.worker.state], {
            concurrency: 3
          })
          samples.push({ pending, inFlight, held: state.find((a) => a.name === name)?.held ?? 0 })
          yield* Effect.sleep("50 millis")
        }
      }).pipe(Effect.forkChild)
      const handles = yield* Effect.forEach(Array.from({ length: 30 }, (_, n) => n), (n) => rt.client.enqueue(Sleep, { n }), {
        concurrency: 10
      })
      const outs = yield* Effect.forEach(handles, (hd) => rt.client.result(hd, "30 seconds"), { concurrency: "unbounded" })
      yield* Fiber.interrupt(monitor)

      expect(outs.map((o) => o.n).sort((a, b) => a - b)).toEqual(handles.map((_, n) => n))
      expect(runs.total).toBe(30)
      expect(runs.twice).toEqual([])
      // acks follow the stored results
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
      // the monitor saw the work (so the bounds below are not vacuous) ...
      expect(samples.length).toBeGreaterThan(20)
      expect(Math.max(...samples.map((s) => s.held))).toBe(2)
      // ... the worker never held more than its free slots (running, waiting or being settled) ...
      expect(samples.filter((s) => s.held > 2 || s.inFlight > 2)).toEqual([])
      // ... and the server never had more out than that plus the acks on their way: servers since
      // 2.10 may apply an ack after the pull request the worker sent once the ack had freed a slot
      expect(samples.filter((s) => s.pending > 4)).toEqual([])
    }))
  }, 60_000)

  test("a saturated slow pool does not delay the fast pool: fast tasks stay within a generous latency bound", async () => {
    const fastName = actorName("quick")
    const slowName = actorName("heavy")
    const Quick = Task.make(`${fastName}.ping`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const Heavy = Task.make(`${slowName}.crunch`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const Fast = Actor.make(fastName, { protocol: [Quick], pool: "fast", concurrency: 4, retry: Retry.none })
    const Slow = Actor.make(slowName, { protocol: [Heavy], pool: "slow", concurrency: 10, retry: Retry.none })
    const runs = new Runs()
    let heavyRunning = 0
    let heavyMax = 0
    const app = appOf(
      [Fast, { [Quick.subject]: ({ input, taskId }) => Effect.sync(() => runs.add(taskId)).pipe(Effect.as({ n: input.n })) }],
      [Slow, {
        [Heavy.subject]: ({ input, taskId }) =>
          Effect.sync(() => {
            runs.add(taskId)
            heavyMax = Math.max(heavyMax, ++heavyRunning)
          }).pipe(
            Effect.andThen(Effect.sleep("2 seconds")),
            Effect.ensuring(Effect.sync(() => heavyRunning--)),
            Effect.as({ n: input.n })
          )
      }]
    )
    const settings = h.settings({
      ackWait: Duration.seconds(5),
      shutdownGrace: Duration.seconds(2),
      pools: [{ name: "fast", concurrency: 8 }, { name: "slow", concurrency: 2 }]
    })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      const latency = (n: number) =>
        Effect.gen(function*() {
          const t0 = yield* now
          const handle = yield* rt.client.enqueue(Quick, { n })
          expect(yield* rt.client.result(handle, "10 seconds")).toEqual({ n })
          return (yield* now) - t0
        })
      const slowState = Effect.map(rt.worker.state, (s) => s.find((a) => a.name === slowName)!)

      const unloaded = yield* Effect.forEach([0, 1, 2, 3, 4], latency)
      const median = [...unloaded].sort((a, b) => a - b)[2]!

      const heavy = yield* Effect.forEach([0, 1, 2, 3, 4, 5], (n) => rt.client.enqueue(Heavy, { n }))
      yield* waitFor("the slow pool to be full", Effect.map(slowState, (s) => s.inFlight === 2 && heavyRunning === 2), "5 seconds")
      const loaded = yield* Effect.forEach([10, 11, 12, 13, 14], latency)
      // still saturated after the measurement: the fast tasks ran beside a full slow pool
      expect((yield* slowState).inFlight).toBe(2)
      expect(heavyRunning).toBe(2)
      expect(yield* taskCount(rt, slowName)).toBeGreaterThan(0)

      for (const ms of loaded) {
        expect(ms).toBeLessThan(1000)
        expect(ms).toBeLessThan(10 * median + 500)
      }
      // the slow pool never ran more than its budget and lost nothing
      const outs = yield* Effect.forEach(heavy, (hd) => rt.client.result(hd, "20 seconds"), { concurrency: "unbounded" })
      expect(outs.map((o) => o.n)).toEqual([0, 1, 2, 3, 4, 5])
      expect(heavyMax).toBe(2)
      expect(runs.total).toBe(16)
      expect(runs.twice).toEqual([])
    }))
  }, 60_000)
})
