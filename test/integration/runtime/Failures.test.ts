/**
 * How handler failures are classified and retried (guarantee 3): permanent errors dead-letter at
 * once, retryable ones are retried with growing delays and then dead-lettered with their history,
 * a throw or defect fails only its own message, and a timeout is a retryable failure.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Client from "../../../src/client/Client.ts"
import * as Task from "../../../src/task/Task.ts"
import * as TaskError from "../../../src/task/TaskError.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, auditRows, deadLetters, Runs, runTest, start, taskCount, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

const settings = () => h.settings({ ackWait: Duration.seconds(2), shutdownGrace: Duration.seconds(2) })

class BadInput extends Schema.TaggedError<BadInput>()("BadInput", { why: Schema.String }) {
  override get message() {
    return `bad input: ${this.why}`
  }
}

describe("handler failures", () => {
  test("a TaskError.permanent failure dead-letters at once: one run, status dead, reason permanent", async () => {
    const name = actorName("perm")
    const Work = Task.make(`${name}.work`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const A = Actor.make(name, { protocol: [Work], retry: Retry.exponential({ base: "100 millis", maxAttempts: 5 }) })
    const runs = new Runs()
    const app = appOf([A, {
      [Work.subject]: ({ taskId }) =>
        Effect.sync(() => runs.add(taskId)).pipe(
          Effect.andThen(Effect.fail(TaskError.permanent(new Error("the account is closed"))))
        )
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      const handle = yield* rt.client.enqueue(Work, { n: 1 })
      const record = yield* rt.client.wait(handle.id, "10 seconds")
      expect(record.status).toBe("dead")
      expect(record.error?.message).toContain("the account is closed")
      yield* Effect.sleep("500 millis") // past several retry delays
      expect(runs.count(handle.id)).toBe(1)
      const letters = yield* deadLetters(rt, name)
      expect(letters).toHaveLength(1)
      expect(letters[0]!.taskId).toBe(handle.id)
      expect(letters[0]!.reason).toBe("permanent")
      expect(letters[0]!.attempts).toBe(1)
      expect(yield* taskCount(rt, name)).toBe(0)
    }))
  }, 30_000)

  test("an error whose tag the task lists as permanent dead-letters at once with its encoded error", async () => {
    const name = actorName("permtag")
    const Work = Task.make(`${name}.work`, {
      input: { n: Schema.Number },
      output: { n: Schema.Number },
      error: BadInput,
      permanent: ["BadInput"]
    })
    const A = Actor.make(name, { protocol: [Work], retry: Retry.exponential({ base: "100 millis", maxAttempts: 5 }) })
    const runs = new Runs()
    const app = appOf([A, {
      [Work.subject]: ({ taskId }) =>
        Effect.sync(() => runs.add(taskId)).pipe(Effect.andThen(Effect.fail(new BadInput({ why: "n is odd" }))))
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      const handle = yield* rt.client.enqueue(Work, { n: 1 })
      const record = yield* rt.client.wait(handle.id, "10 seconds")
      expect(record.status).toBe("dead")
      expect(record.error?.tag).toBe("BadInput")
      expect(record.error?.encoded).toEqual({ _tag: "BadInput", why: "n is odd" })
      yield* Effect.sleep("500 millis")
      expect(runs.count(handle.id)).toBe(1)
      const letters = yield* deadLetters(rt, name)
      expect(letters.map((l) => [l.taskId, l.reason, l.attempts])).toEqual([[handle.id, "permanent", 1]])
    }))
  }, 30_000)

  test("a retryable error is retried with growing delays, then dead-lettered with the whole attempt history", async () => {
    const name = actorName("retry")
    const Work = Task.make(`${name}.work`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    // delays 200, 400, 800 ms; 4 attempts in all
    const A = Actor.make(name, {
      protocol: [Work],
      retry: Retry.exponential({ base: "200 millis", factor: 2, jitter: false, maxAttempts: 4 })
    })
    const runs = new Runs()
    const app = appOf([A, {
      [Work.subject]: ({ taskId, attempt }) =>
        Effect.sync(() => runs.add(taskId)).pipe(Effect.andThen(Effect.fail(new Error(`flaky on attempt ${attempt}`))))
    }])
    const s = settings()
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, s)
      const handle = yield* rt.client.enqueue(Work, { n: 1 })
      // watch the statuses it goes through
      const seen: Array<string> = []
      yield* waitFor("status dead", Effect.map(rt.client.status(handle.id), (r) => {
        if (seen[seen.length - 1] !== r.status) seen.push(r.status)
        return r.status === "dead"
      }), "15 seconds", "20 millis")
      expect(seen).toContain("failed")
      expect(seen.indexOf("failed")).toBeLessThan(seen.indexOf("dead"))

      const failed = yield* Effect.flip(rt.client.result(handle, "1 second"))
      expect(failed).toBeInstanceOf(Client.TaskFailed)
      expect((failed as Client.TaskFailed).status).toBe("dead")

      const letters = yield* deadLetters(rt, name)
      expect(letters).toHaveLength(1)
      const letter = letters[0]!
      expect(letter.reason).toBe("exhausted")
      expect(letter.attempts).toBe(4)
      expect(letter.history.map((a) => a.attempt)).toEqual([1, 2, 3, 4])
      expect(letter.history.map((a) => a.error.message)).toEqual([1, 2, 3, 4].map((n) => `flaky on attempt ${n}`))
      expect(letter.history.slice(0, 3).map((a) => a.retryDelayMs)).toEqual([200, 400, 800])
      const at = letter.history.map((a) => a.at)
      const gaps = [at[1]! - at[0]!, at[2]! - at[1]!, at[3]! - at[2]!]
      // never earlier than the policy's delay, and growing (slack for the 50 ms poll)
      expect(gaps[0]!).toBeGreaterThanOrEqual(190)
      expect(gaps[1]!).toBeGreaterThanOrEqual(390)
      expect(gaps[2]!).toBeGreaterThanOrEqual(790)
      expect(gaps[1]!).toBeGreaterThan(gaps[0]!)
      expect(gaps[2]!).toBeGreaterThan(gaps[1]!)

      expect(runs.count(handle.id)).toBe(4)
      expect(yield* taskCount(rt, name)).toBe(0)
      const steps = auditRows(s.sqlitePath, handle.id).map((r) => `${r.step}@${r.attempt}`)
      expect(steps.filter((x) => x.startsWith("retry_scheduled"))).toEqual(
        ["retry_scheduled@1", "retry_scheduled@2", "retry_scheduled@3"]
      )
      expect(steps.at(-1)).toBe("dead_lettered@4")
    }))
  }, 30_000)

  test("a handler that throws or dies fails only its own message; the others succeed and it is retried", async () => {
    const name = actorName("throw")
    const Work = Task.make(`${name}.work`, {
      input: { n: Schema.Number, mode: Schema.Literals(["ok", "throw", "die"]) },
      output: { n: Schema.Number }
    })
    const A = Actor.make(name, {
      protocol: [Work],
      concurrency: 4,
      retry: Retry.exponential({ base: "100 millis", jitter: false, maxAttempts: 3 })
    })
    const runs = new Runs()
    const app = appOf([A, {
      [Work.subject]: ({ input, taskId, attempt }) =>
        Effect.gen(function*() {
          runs.add(taskId)
          // the bad ones crash on their first attempt only
          if (attempt === 1 && input.mode === "throw") {
            yield* Effect.sync(() => {
              throw new Error(`thrown by ${input.n}`)
            })
          }
          if (attempt === 1 && input.mode === "die") return yield* Effect.die(new Error(`died in ${input.n}`))
          return { n: input.n }
        })
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      const modes = ["ok", "throw", "ok", "die", "ok", "ok", "throw", "ok"] as const
      const handles = yield* Effect.forEach(modes, (mode, n) => rt.client.enqueue(Work, { n, mode }))
      const outs = yield* Effect.forEach(handles, (hd) => rt.client.result(hd, "15 seconds"), { concurrency: "unbounded" })
      expect([...outs]).toEqual(modes.map((_, n) => ({ n })))
      handles.forEach((hd, i) => expect(runs.count(hd.id)).toBe(modes[i] === "ok" ? 1 : 2))
      // the crash of attempt 1 is recorded as a defect of that message
      const thrower = handles[1]!
      const rows = auditRows(rt.settings.sqlitePath, thrower.id)
      const failedRow = rows.find((r) => r.step === "failed")
      expect(failedRow?.error).toContain("thrown by 1")
      expect(rows.map((r) => r.step)).toContain("retry_scheduled")
      const dier = auditRows(rt.settings.sqlitePath, handles[3]!.id).find((r) => r.step === "failed")
      expect(dier?.error).toContain("died in 3")
      expect(yield* deadLetters(rt, name)).toHaveLength(0)
      expect((yield* rt.worker.state)[0]!.restarts).toBe(0)
    }))
  }, 30_000)

  test("a run past its timeout is interrupted and retried, with TaskTimeout in its history", async () => {
    const name = actorName("timeout")
    const Work = Task.make(`${name}.work`, { input: { n: Schema.Number }, output: { n: Schema.Number }, timeout: "300 millis" })
    const A = Actor.make(name, {
      protocol: [Work],
      retry: Retry.exponential({ base: "700 millis", jitter: false, maxAttempts: 3 })
    })
    const runs = new Runs()
    let interrupted = 0
    const app = appOf([A, {
      [Work.subject]: ({ input, taskId, attempt }) =>
        Effect.gen(function*() {
          runs.add(taskId)
          if (attempt === 1) {
            yield* Effect.sleep("5 seconds").pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted++)))
          }
          return { n: input.n }
        })
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      const handle = yield* rt.client.enqueue(Work, { n: 5 })
      // between the attempts the status is failed, with the timeout in its history
      yield* waitFor("status failed", Effect.map(rt.client.status(handle.id), (r) => r.status === "failed"), "5 seconds", "20 millis")
      const failed = yield* rt.client.status(handle.id)
      expect(failed.history?.map((a) => a.error.tag)).toEqual(["TaskTimeout"])
      expect(failed.history?.[0]!.error.message).toContain("300 ms")
      expect(interrupted).toBe(1)
      expect(yield* rt.client.result(handle, "10 seconds")).toEqual({ n: 5 })
      const done = yield* rt.client.status(handle.id)
      expect(done.attempt).toBe(2)
      expect(runs.count(handle.id)).toBe(2)
    }))
  }, 30_000)
})
