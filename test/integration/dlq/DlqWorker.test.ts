/**
 * The DLQ worker against a real nats-server (guarantee 4): it retries dead letters with backoff
 * through the normal path, and stores what still fails (or what a retry cannot fix) as exhausted,
 * with an audit row, removing it from the dead-letter stream. Backoff is short here, by config.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Option, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as DeadLetter from "../../../src/dlq/DeadLetter.ts"
import type * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, auditRows, deadLetters, type LogLine, type Runtime, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

/** Settings with the DLQ worker on and its backoff in milliseconds. */
const dlqSettings = (overrides: Partial<MsgsysConfig.MsgsysSettings> = {}) =>
  h.settings({
    ackWait: Duration.seconds(2),
    shutdownGrace: Duration.seconds(2),
    dlqWorker: true,
    dlqRetryAttempts: 2,
    dlqRetryBase: Duration.millis(300),
    dlqRetryCap: Duration.millis(600),
    ...overrides
  })

/** An actor whose one task fails while `state.broken`, never retried by the actor itself. */
const setup = (base: string) => {
  const name = actorName(base)
  const Charge = Task.make(`${name}.charge`, { input: { account: Schema.String }, output: { charged: Schema.Boolean } })
  const Billing = Actor.make(name, { protocol: [Charge], retry: Retry.none })
  const state = { broken: true, runs: [] as Array<{ at: number; retries: string | undefined }> }
  const app = appOf([Billing, {
    [Charge.subject]: ({ envelope }) =>
      Effect.suspend(() => {
        state.runs.push({ at: Date.now(), retries: envelope.extra[DeadLetter.RetriesHeader] })
        return state.broken ? Effect.fail(new Error("gateway down")) : Effect.succeed({ charged: true })
      })
  }])
  return { name, Charge, app, state }
}

// as `msgsys audit show` lists them: the DLQ worker may commit its step before the worker's
// "dead_lettered" step, which is older
const stepsInTimeOrder = (sqlitePath: string, id: string) =>
  [...auditRows(sqlitePath, id)].sort((a, b) => a.at - b.at).map((r) => r.step)

const exhaustedRow = (rt: Runtime, id: string) => Effect.map(Effect.orDie(rt.exhausted.get(id)), Option.getOrUndefined)

describe("the DLQ worker", () => {
  test("retries a dead letter with growing waits, then stores it as exhausted with an audit row and removes the letter", async () => {
    const { name, Charge, app, state } = setup("dlqexh")
    const settings = dlqSettings()
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      const handle = yield* rt.client.enqueue(Charge, { account: "a-1" })
      yield* waitFor("the task to be stored as exhausted", Effect.map(exhaustedRow(rt, handle.id), (r) => r !== undefined), "20 seconds")
      const row = (yield* exhaustedRow(rt, handle.id))!
      // the first run, then two retries by the DLQ worker, each counted on the replayed task
      expect(state.runs.map((r) => r.retries)).toEqual([undefined, "1", "2"])
      // each retry waited at least its backoff (300 ms, then 600 ms, less the ±20% spread)
      expect(state.runs[1]!.at - state.runs[0]!.at).toBeGreaterThanOrEqual(240)
      expect(state.runs[2]!.at - state.runs[1]!.at).toBeGreaterThanOrEqual(480)
      expect(row).toMatchObject({
        id: handle.id,
        originalSubject: Charge.subject,
        actor: name,
        tenant: "default",
        reason: "exhausted",
        retries: 2,
        error: { tag: "Error", message: "gateway down" },
        replayedAt: undefined
      })
      expect(JSON.parse(Buffer.from(row.payload, "base64").toString())).toEqual({ account: "a-1" })
      expect(row.attempts).toHaveLength(3)
      // gone from the dead-letter stream (the last of exhausting it: stored, audited, removed);
      // its status stays dead; one exhausted audit row
      yield* waitFor("the letter to go", Effect.map(deadLetters(rt, name), (ls) => ls.length === 0))
      expect((yield* rt.client.status(handle.id)).status).toBe("dead")
      const steps = stepsInTimeOrder(settings.sqlitePath, handle.id)
      expect(steps.filter((s) => s === "exhausted")).toHaveLength(1)
      expect(steps.at(-1)).toBe("exhausted")
      // nothing more happens
      yield* Effect.sleep("1500 millis")
      expect(state.runs).toHaveLength(3)
    }))
  }, 40_000)

  test("a retry that succeeds stores the task's result as usual and leaves nothing behind", async () => {
    const { name, Charge, app, state } = setup("dlqfix")
    const settings = dlqSettings({ dlqRetryAttempts: 5 })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      const handle = yield* rt.client.enqueue(Charge, { account: "a-2" })
      yield* waitFor("the first run to fail", Effect.sync(() => state.runs.length >= 1))
      state.broken = false
      // dead first, then queued again by the retry, then succeeded
      yield* waitFor("the retry to succeed", Effect.map(rt.client.status(handle.id), (s) => s.status === "succeeded"), "20 seconds")
      expect(yield* rt.client.result(handle, "1 second")).toEqual({ charged: true })
      expect(state.runs.map((r) => r.retries)).toEqual([undefined, "1"])
      yield* waitFor("the letter to go", Effect.map(deadLetters(rt, name), (ls) => ls.length === 0))
      expect(yield* exhaustedRow(rt, handle.id)).toBeUndefined()
      yield* Effect.sleep("1500 millis")
      expect(state.runs).toHaveLength(2)
    }))
  }, 40_000)

  test("a poison letter goes straight to exhausted, without a retry", async () => {
    const { name, Charge, app, state } = setup("dlqpoison")
    const settings = dlqSettings({ dlqRetryBase: Duration.seconds(30), dlqRetryCap: Duration.seconds(30) })
    const logs: Array<LogLine> = []
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      const ack = yield* Effect.promise(() =>
        rt.nats.jetstream.publish(Charge.subject, new TextEncoder().encode("not json"), { headers: undefined })
      )
      // the task id of a message with no msgsys headers: its stream and sequence
      const id = `${rt.names.taskStream(name)}-${ack.seq}`
      yield* waitFor("the poison letter to be exhausted", Effect.map(exhaustedRow(rt, id), (r) => r !== undefined))
      const row = (yield* exhaustedRow(rt, id))!
      expect(row).toMatchObject({ reason: "poison", retries: 0, error: { tag: "PayloadDecodeError" } })
      expect(Buffer.from(row.payload, "base64").toString()).toBe("not json")
      // removed last, after the exhausted row and its audit step are stored
      yield* waitFor("the letter to go", Effect.map(deadLetters(rt, name), (ls) => ls.length === 0))
      expect(state.runs).toHaveLength(0)
      expect(stepsInTimeOrder(settings.sqlitePath, id).at(-1)).toBe("exhausted")
      // the DLQ worker's line names the task as the worker's lines did
      expect(logs.filter((l) => l.message.includes("as exhausted")).map((l) => l.annotations)).toEqual([
        expect.objectContaining({ messageId: id, subject: Charge.subject, actor: name, tenant: "default" })
      ])
    }), logs)
  }, 40_000)

  test("a reason that is not retried goes straight to exhausted; a worker with MSGSYS_DLQ_WORKER off leaves letters alone", async () => {
    const { name, Charge, app, state } = setup("dlqreasons")
    const settings = dlqSettings({ dlqRetryReasons: ["permanent"] })
    await runTest(Effect.gen(function*() {
      // first, no DLQ worker: the letter stays
      const off = yield* Effect.scoped(Effect.gen(function*() {
        const rt = yield* start(app, { ...settings, dlqWorker: false })
        const handle = yield* rt.client.enqueue(Charge, { account: "a-3" })
        yield* waitFor("a dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length === 1))
        yield* Effect.sleep("1 second")
        expect(yield* deadLetters(rt, name)).toHaveLength(1)
        return handle.id
      }))
      // then one with the worker on, retrying only permanent failures: this "exhausted" letter is not retried
      const rt = yield* start(app, settings)
      yield* waitFor("the letter to be exhausted", Effect.map(exhaustedRow(rt, off), (r) => r !== undefined))
      expect((yield* exhaustedRow(rt, off))!).toMatchObject({ reason: "exhausted", retries: 0 })
      expect(state.runs).toHaveLength(1)
    }))
  }, 40_000)
})
