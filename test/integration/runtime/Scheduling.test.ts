/**
 * When tasks run: one at a time per partition key in arrival order, high priority before normal
 * before low, and delayed tasks never before their run-at time, even across a worker restart.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, now, Runs, runTest, start, taskCount, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

const settings = () => h.settings({ ackWait: Duration.seconds(3), shutdownGrace: Duration.seconds(2) })

describe("scheduling", () => {
  test("partitionBy runs each key's tasks one at a time in enqueue order, and different keys in parallel", async () => {
    const name = actorName("part")
    const Step = Task.make(`${name}.step`, {
      input: { key: Schema.String, seq: Schema.Number },
      output: { ok: Schema.Boolean }
    })
    const A = Actor.make(name, {
      protocol: [Step],
      concurrency: 8,
      retry: Retry.none,
      partitionBy: (input: { key: string }) => input.key
    })
    type Span = { key: string; seq: number; start: number; end: number }
    const spans: Array<Span> = []
    const runs = new Runs()
    let running = 0
    let maxRunning = 0
    const app = appOf([A, {
      [Step.subject]: ({ input, taskId }) =>
        Effect.gen(function*() {
          runs.add(taskId)
          const span: Span = { key: input.key, seq: input.seq, start: performance.now(), end: 0 }
          maxRunning = Math.max(maxRunning, ++running)
          yield* Effect.sleep(Duration.millis(Math.floor(Math.random() * 21)))
          running--
          span.end = performance.now()
          spans.push(span)
          return { ok: true }
        })
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      const keys = ["k0", "k1", "k2", "k3", "k4"]
      const handles = []
      for (let seq = 0; seq < 10; seq++) {
        for (const key of keys) handles.push(yield* rt.client.enqueue(Step, { key, seq }))
      }
      yield* Effect.forEach(handles, (hd) => rt.client.result(hd, "30 seconds"), { concurrency: "unbounded", discard: true })

      expect(runs.total).toBe(50)
      expect(runs.twice).toEqual([])
      for (const key of keys) {
        const mine = spans.filter((s) => s.key === key).sort((a, b) => a.start - b.start)
        expect(mine.map((s) => s.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        const overlaps = mine.slice(1).filter((s, i) => s.start < mine[i]!.end)
        expect(overlaps).toEqual([])
      }
      expect(maxRunning).toBeGreaterThan(1)
    }))
  }, 60_000)

  test("a paused backlog runs high first, then normal, then low, each in enqueue order", async () => {
    const name = actorName("prio")
    const Job = Task.make(`${name}.job`, { input: { label: Schema.String }, output: { ok: Schema.Boolean } })
    const A = Actor.make(name, { protocol: [Job], concurrency: 1, retry: Retry.none })
    const order: Array<string> = []
    const app = appOf([A, {
      [Job.subject]: ({ input }) => Effect.sync(() => order.push(input.label)).pipe(Effect.as({ ok: true }))
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      yield* rt.worker.setPaused({ kind: "actor", name }, true)
      yield* waitFor("the actor to pause", Effect.map(rt.worker.state, (s) => s[0]!.paused))
      yield* Effect.sleep("200 millis") // let a loop iteration that passed the gate finish its empty pull
      const handles = []
      for (let i = 0; i < 10; i++) {
        for (const priority of ["low", "normal", "high"] as const) {
          handles.push(yield* rt.client.enqueue(Job, { label: `${priority}${i}` }, { priority }))
        }
      }
      yield* Effect.sleep("300 millis")
      expect(order).toEqual([])
      expect(yield* taskCount(rt, name)).toBe(30)
      yield* rt.worker.setPaused({ kind: "actor", name }, false)
      yield* Effect.forEach(handles, (hd) => rt.client.result(hd, "20 seconds"), { concurrency: "unbounded", discard: true })
      const expected = ["high", "normal", "low"].flatMap((p) => Array.from({ length: 10 }, (_, i) => `${p}${i}`))
      expect(order).toEqual(expected)
    }))
  }, 60_000)

  test("a delayed task waits queued with its run-at, never starts early, and its wait is not an attempt", async () => {
    const name = actorName("delay")
    const Job = Task.make(`${name}.job`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const A = Actor.make(name, { protocol: [Job], retry: Retry.none })
    const runs = new Runs()
    const started = new Map<string, { at: number; attempt: number }>()
    const app = appOf([A, {
      [Job.subject]: ({ input, taskId, attempt }) =>
        Effect.map(now, (at) => {
          runs.add(taskId)
          started.set(taskId, { at, attempt })
          return { n: input.n }
        })
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      const handle = yield* rt.client.enqueue(Job, { n: 1 }, { delay: "2 seconds" })
      const waiting = yield* rt.client.status(handle.id)
      expect(waiting.status).toBe("queued")
      expect(waiting.runAt).toBeDefined()
      const runAt = waiting.runAt!
      // an undelayed task enqueued after it runs first: the worker is live
      const other = yield* rt.client.enqueue(Job, { n: 2 })
      yield* rt.client.result(other, "10 seconds")
      yield* Effect.sleep("500 millis")
      expect(runs.count(handle.id)).toBe(0)
      expect((yield* rt.client.status(handle.id)).status).toBe("queued")

      expect(yield* rt.client.result(handle, "10 seconds")).toEqual({ n: 1 })
      expect(started.get(handle.id)!.at).toBeGreaterThanOrEqual(runAt)
      expect(started.get(handle.id)!.attempt).toBe(1)
      expect((yield* rt.client.status(handle.id)).attempt).toBe(1)
      expect(runs.count(handle.id)).toBe(1)
    }))
  }, 30_000)

  test("a delayed task survives a worker restart while it waits and runs once, on time", async () => {
    const name = actorName("delayrs")
    const Job = Task.make(`${name}.job`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const A = Actor.make(name, { protocol: [Job], retry: Retry.none })
    const runs = new Runs()
    const started = new Map<string, { at: number; attempt: number }>()
    const app = appOf([A, {
      [Job.subject]: ({ input, taskId, attempt }) =>
        Effect.map(now, (at) => {
          runs.add(taskId)
          started.set(taskId, { at, attempt })
          return { n: input.n }
        })
    }])
    const s = settings()
    await runTest(Effect.gen(function*() {
      const { handle, runAt } = yield* Effect.scoped(Effect.gen(function*() {
        const rt = yield* start(app, s)
        const handle = yield* rt.client.enqueue(Job, { n: 9 }, { delay: "2500 millis" })
        // the delay mover has seen it and handed it back to wait
        yield* Effect.sleep("700 millis")
        return { handle, runAt: (yield* rt.client.status(handle.id)).runAt! }
      }))
      expect(runs.count(handle.id)).toBe(0)

      const rt = yield* start(app, s)
      expect(yield* rt.client.result(handle, "15 seconds")).toEqual({ n: 9 })
      expect(started.get(handle.id)!.at).toBeGreaterThanOrEqual(runAt)
      expect(started.get(handle.id)!.attempt).toBe(1)
      yield* Effect.sleep("500 millis")
      expect(runs.count(handle.id)).toBe(1)
      expect(runs.total).toBe(1)
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
    }))
  }, 30_000)
})
