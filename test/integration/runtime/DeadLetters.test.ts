/**
 * Poison messages (guarantees 3 and 8): a body that cannot be decoded, or a subject no task
 * handles, goes to the dead-letter stream at once, with the reason, without running a handler
 * and without retries, and leaves the task stream.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, deadLetters, type Runtime, Runs, runTest, start, taskCount, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

/** An actor with one task `<name>.work` taking `{ n: number }`, retrying a lot (so a retry would show). */
const setup = (base: string) => {
  const name = actorName(base)
  const Work = Task.make(`${name}.work`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
  const A = Actor.make(name, {
    protocol: [Work],
    retry: Retry.exponential({ base: "100 millis", maxAttempts: 5, jitter: false })
  })
  const runs = new Runs()
  const app = appOf([A, {
    [Work.subject]: ({ input, taskId }) => Effect.sync(() => runs.add(taskId)).pipe(Effect.as({ n: input.n }))
  }])
  return { name, Work, app, runs }
}

/** Publishes raw bytes on `subject` with a plain JetStream publish: no msgsys headers. */
const publishRaw = (rt: Runtime, subject: string, body: string) =>
  Effect.promise(() => rt.nats.jetstream.publish(subject, new TextEncoder().encode(body)))

const settings = () => h.settings({ ackWait: Duration.seconds(2), shutdownGrace: Duration.seconds(2) })

describe("poison messages", () => {
  test("a body that is not JSON goes to dead letters once, as poison, without running the handler or retrying", async () => {
    const { name, Work, app, runs } = setup("garbage")
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      yield* publishRaw(rt, Work.subject, "\u0000not json{{")
      yield* waitFor("a dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length > 0))
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
      // wait past two retry delays: a retry would run the handler or add a second letter
      yield* Effect.sleep("600 millis")
      const letters = yield* deadLetters(rt, name)
      expect(letters).toHaveLength(1)
      const [letter] = letters
      expect(letter!.reason).toBe("poison")
      expect(letter!.attempts).toBe(1)
      expect(letter!.error.tag).toBe("PayloadDecodeError")
      expect(letter!.error.message).toContain(`cannot decode the payload of ${Work.subject}`)
      expect(letter!.subject).toBe(Work.subject)
      expect(new TextDecoder().decode(letter!.body)).toBe("\u0000not json{{")
      expect(runs.total).toBe(0)
      expect(yield* taskCount(rt, name)).toBe(0)
    }))
  }, 30_000)

  test("valid JSON that fails the schema goes to dead letters once, naming the bad field", async () => {
    const { name, Work, app, runs } = setup("badshape")
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      yield* publishRaw(rt, Work.subject, JSON.stringify({ n: "seven" }))
      yield* waitFor("a dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length > 0))
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
      yield* Effect.sleep("600 millis")
      const letters = yield* deadLetters(rt, name)
      expect(letters).toHaveLength(1)
      expect(letters[0]!.reason).toBe("poison")
      expect(letters[0]!.attempts).toBe(1)
      expect(letters[0]!.error.tag).toBe("PayloadDecodeError")
      expect(letters[0]!.error.message).toContain(Work.subject)
      expect(letters[0]!.error.message).toMatch(/"n"|\bn\b/)
      expect(letters[0]!.history).toHaveLength(1)
      expect(runs.total).toBe(0)
      // the status of a plain-publisher message is recorded under its fallback id
      const status = yield* rt.client.status(letters[0]!.taskId)
      expect(status.status).toBe("dead")
    }))
  }, 30_000)

  test("a subject under the actor's domain that no task handles goes to dead letters naming the known subjects", async () => {
    const { name, Work, app, runs } = setup("unknown")
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      yield* publishRaw(rt, `${name}.nope`, JSON.stringify({ n: 1 }))
      yield* waitFor("a dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length > 0))
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
      yield* Effect.sleep("600 millis")
      const letters = yield* deadLetters(rt, name)
      expect(letters).toHaveLength(1)
      expect(letters[0]!.reason).toBe("poison")
      expect(letters[0]!.subject).toBe(`${name}.nope`)
      expect(letters[0]!.error.tag).toBe("UnknownSubject")
      expect(letters[0]!.error.message).toContain(`${name}.nope`)
      expect(letters[0]!.error.message).toContain(Work.subject)
      expect(runs.total).toBe(0)
    }))
  }, 30_000)

  test("a 900 KB payload (server max_payload 1 MB) ends in a dead letter with its reason, its status dead, its stream empty", async () => {
    const { name, Work, app, runs } = setup("big")
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      expect(rt.nats.server.maxPayload).toBe(1024 * 1024)
      // a JSON string where an object is expected: poison, as issue 13 found it
      const body = JSON.stringify("r".repeat(900 * 1024))
      yield* publishRaw(rt, Work.subject, body)
      yield* waitFor("a dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length > 0))
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
      const [letter, ...others] = yield* deadLetters(rt, name)
      expect(others).toHaveLength(0)
      expect(letter!.reason).toBe("poison")
      expect(letter!.error.tag).toBe("PayloadDecodeError")
      expect(letter!.bodySize).toBe(body.length)
      expect(new TextDecoder().decode(letter!.body)).toBe(body)
      expect((yield* rt.client.status(letter!.taskId)).status).toBe("dead")
      expect(runs.total).toBe(0)
    }))
  }, 30_000)

  test("a poison message does not stop the actor: a good task published after it runs once", async () => {
    const { name, Work, app, runs } = setup("after")
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      yield* publishRaw(rt, Work.subject, "garbage")
      const handle = yield* rt.client.enqueue(Work, { n: 7 })
      expect(yield* rt.client.result(handle, "10 seconds")).toEqual({ n: 7 })
      yield* waitFor("a dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length === 1))
      expect(runs.count(handle.id)).toBe(1)
      expect(runs.total).toBe(1)
    }))
  }, 30_000)
})
