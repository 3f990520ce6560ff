/**
 * Run-time control: cancelling a queued or running task, and pausing and resuming an actor or a
 * pool through the control bucket (so it reaches every worker). Nothing is lost, nothing runs twice.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, auditSteps, now, Runs, runTest, start, taskCount, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

const settings = () => h.settings({ ackWait: Duration.seconds(3), shutdownGrace: Duration.seconds(2) })

/** An actor whose task sleeps `ms` (interruptibly) and counts its runs and aborts. */
const sleeper = (base: string, options: { readonly pool?: string } = {}) => {
  const name = actorName(base)
  const Nap = Task.make(`${name}.nap`, { input: { ms: Schema.Number }, output: { ok: Schema.Boolean } })
  const A = Actor.make(name, {
    protocol: [Nap],
    concurrency: 4,
    retry: Retry.exponential({ base: "100 millis", jitter: false, maxAttempts: 3 }),
    ...options
  })
  const runs = new Runs()
  const aborted = new Runs()
  const app = appOf([A, {
    [Nap.subject]: ({ input, taskId, signal }) =>
      Effect.gen(function*() {
        runs.add(taskId)
        signal.addEventListener("abort", () => aborted.add(taskId))
        yield* Effect.sleep(Duration.millis(input.ms))
        return { ok: true }
      })
  }])
  return { name, Nap, app, runs, aborted }
}

describe("cancel", () => {
  test("a queued task that is cancelled never runs and ends cancelled", async () => {
    const { name, Nap, app, runs } = sleeper("cnq")
    const s = settings()
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, s)
      yield* rt.worker.setPaused({ kind: "actor", name }, true)
      yield* Effect.sleep("200 millis")
      const doomed = yield* rt.client.enqueue(Nap, { ms: 10 })
      const kept = yield* rt.client.enqueue(Nap, { ms: 10 })
      yield* rt.client.cancel(doomed.id)
      yield* Effect.sleep("300 millis") // the cancel request reaches the worker through the results bucket
      yield* rt.worker.setPaused({ kind: "actor", name }, false)
      expect((yield* rt.client.wait(doomed.id, "10 seconds")).status).toBe("cancelled")
      expect(yield* rt.client.result(kept, "10 seconds")).toEqual({ ok: true })
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
      expect(runs.count(doomed.id)).toBe(0)
      expect(runs.count(kept.id)).toBe(1)
      expect(auditSteps(s.sqlitePath, doomed.id)).toContain("cancelled")
    }))
  }, 30_000)

  test("a running task that is cancelled is interrupted promptly, its signal aborts, and it is not retried", async () => {
    const { name, Nap, app, runs, aborted } = sleeper("cnr")
    const s = settings()
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, s)
      const handle = yield* rt.client.enqueue(Nap, { ms: 10_000 })
      yield* waitFor("the task to run", Effect.map(rt.client.status(handle.id), (r) => r.status === "running"))
      const t0 = yield* now
      yield* rt.client.cancel(handle.id)
      const record = yield* rt.client.wait(handle.id, "5 seconds")
      const took = (yield* now) - t0
      expect(record.status).toBe("cancelled")
      expect(took).toBeLessThan(1500)
      expect(aborted.count(handle.id)).toBe(1)
      // past the retry delays: no second run, nothing left in the stream
      yield* Effect.sleep("800 millis")
      expect(runs.count(handle.id)).toBe(1)
      expect((yield* rt.client.status(handle.id)).status).toBe("cancelled")
      expect(yield* taskCount(rt, name)).toBe(0)
      const steps = auditSteps(s.sqlitePath, handle.id)
      expect(steps).toContain("cancelled")
      expect(steps).not.toContain("retry_scheduled")
    }))
  }, 30_000)
})

describe("pause and resume through Control", () => {
  const pauseCase = (kind: "actor" | "pool") => async () => {
    const { name, Nap, app, runs } = sleeper(kind === "actor" ? "pa" : "pp", { pool: "slow" })
    const target = { kind, name: kind === "actor" ? name : "slow" } as const
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      yield* rt.control.pause(target)
      yield* waitFor("the pause to reach the worker", Effect.map(rt.worker.state, (st) => st[0]!.paused))
      expect(yield* rt.control.paused).toContainEqual(target)
      yield* Effect.sleep("200 millis")
      const handles = yield* Effect.forEach([0, 1, 2, 3, 4, 5], () => rt.client.enqueue(Nap, { ms: 20 }))
      yield* Effect.sleep("1 second")
      expect(runs.total).toBe(0)
      expect(yield* taskCount(rt, name)).toBe(6)
      for (const hd of handles) expect((yield* rt.client.status(hd.id)).status).toBe("queued")

      yield* rt.control.resume(target)
      yield* Effect.forEach(handles, (hd) => rt.client.result(hd, "10 seconds"), { concurrency: "unbounded", discard: true })
      expect(runs.total).toBe(6)
      expect(runs.twice).toEqual([])
      expect((yield* rt.worker.state)[0]!.paused).toBe(false)
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
    }))
  }

  test("a paused actor leaves its tasks queued in the stream; on resume every one runs once", pauseCase("actor"), 30_000)

  test("a pause spends no delivery and keeps priority: tasks enqueued while paused run once, on their first delivery, high before normal before low", () =>
    runTest(Effect.gen(function*() {
      const name = actorName("pprio")
      const Job = Task.make(`${name}.job`, { input: { id: Schema.String }, output: { id: Schema.String } })
      const A = Actor.make(name, { protocol: [Job], concurrency: 1, retry: Retry.none })
      const order: Array<string> = []
      const rt = yield* start(appOf([A, {
        [Job.subject]: ({ input, attempt }) => Effect.sync(() => (order.push(`${input.id}@${attempt}`), input))
      }]), settings())
      const target = { kind: "actor", name } as const
      for (let round = 0; round < 3; round++) {
        order.length = 0
        yield* rt.control.pause(target)
        yield* waitFor("the pause to reach the worker", Effect.map(rt.worker.state, (st) => st[0]!.paused))
        const handles = []
        for (const priority of ["low", "normal", "high"] as const) {
          handles.push(yield* rt.client.enqueue(Job, { id: priority }, { priority }))
          // the worker's long polls bring each one while it is paused
          yield* Effect.sleep("100 millis")
        }
        expect(order).toEqual([])
        yield* rt.control.resume(target)
        yield* Effect.forEach(handles, (hd) => rt.client.result(hd, "10 seconds"), { discard: true })
        expect(order).toEqual(["high@1", "normal@1", "low@1"])
      }
    })), 60_000)
  test("a paused pool leaves its actors' tasks queued in the stream; on resume every one runs once", pauseCase("pool"), 30_000)
})
