/**
 * Every message a task stream accepted can be dead-lettered (guarantee 4), end to end through a
 * worker, on a server whose max_payload is 64 KB (small, so the test stays fast): a message that
 * fills max_payload exactly ends in a dead letter with its reason, from the dispatcher and from the
 * max-deliveries sweeper, and replays; a full dead-letter stream leaves the message in its task
 * stream and says so once, loudly, without a stack per try.
 */
import { describe, expect, test } from "bun:test"
import { headers as natsHeaders } from "@nats-io/transport-node"
import { Duration, Effect, Metric, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as DeadLetters from "../../../src/dlq/DeadLetters.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as ActorTopology from "../../../src/actor/ActorTopology.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import {
  appOf,
  auditSteps,
  deadLetters,
  type LogLine,
  neverSettling,
  type Runtime,
  Runs,
  runTest,
  start,
  streamCount,
  taskCount,
  waitFor,
  withBroker
} from "../../support/runtimeTools.ts"

const maxPayload = 64 * 1024
const h = natsHarness({ config: `max_payload: ${maxPayload}` })

const settings = () => h.settings({ ackWait: Duration.seconds(1), shutdownGrace: Duration.seconds(2) })

/** The bytes of these headers on the wire: `NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`. */
const headerBytes = (record: Record<string, string>) =>
  Object.entries(record).reduce((n, [k, v]) => n + Buffer.byteLength(`${k}: ${v}\r\n`), "NATS/1.0\r\n\r\n".length)

/** `{"text":"xxx…"}` of exactly `size` bytes. */
const jsonOfSize = (size: number) => JSON.stringify({ text: "x".repeat(size - '{"text":""}'.length) })

/** Publishes `body` with `headers` exactly as given (no dedup id added). */
const publish = (rt: Runtime, subject: string, body: string, headers: Record<string, string> = {}) =>
  Effect.promise(() => {
    const hs = natsHeaders()
    for (const [k, v] of Object.entries(headers)) hs.set(k, v)
    return rt.nats.jetstream.publish(subject, new TextEncoder().encode(body), { headers: hs })
  })

const setup = (base: string, options: { readonly broken?: () => boolean } = {}) => {
  const name = actorName(base)
  const Render = Task.make(`${name}.render`, { input: { text: Schema.String }, output: { length: Schema.Number } })
  const A = Actor.make(name, { protocol: [Render], retry: Retry.none, ackWait: "1 second" })
  const runs = new Runs()
  const app = appOf([A, {
    [Render.subject]: ({ input, taskId }) =>
      Effect.suspend(() => {
        runs.add(taskId)
        return options.broken?.() ? Effect.fail(new Error("renderer down")) : Effect.succeed({ length: input.text.length })
      })
  }])
  return { name, Render, app, runs }
}

describe("dead letters of messages that fill max_payload", () => {
  test("a payload that fills max_payload exactly ends in a dead letter with its reason, its status dead, its stream empty", async () => {
    const { name, Render, app, runs } = setup("exact")
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      expect(rt.nats.server.maxPayload).toBe(maxPayload)
      // a JSON string where an object is expected: poison; no headers, so the body is the whole message
      const body = JSON.stringify("p".repeat(maxPayload - 2))
      expect(body.length).toBe(maxPayload)
      yield* publish(rt, Render.subject, body)
      yield* waitFor("a dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length > 0))
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
      const [letter, ...others] = yield* deadLetters(rt, name)
      expect(others).toHaveLength(0)
      expect(letter!.reason).toBe("poison")
      expect(letter!.error.tag).toBe("PayloadDecodeError")
      expect(letter!.bodySequence).toBeDefined()
      expect(new TextDecoder().decode(letter!.body)).toBe(body)
      expect((yield* rt.client.status(letter!.taskId)).status).toBe("dead")
      expect(auditSteps(rt.settings.sqlitePath, letter!.taskId)).toContain("dead_lettered")
      expect(runs.total).toBe(0)
    }))
  }, 30_000)

  test("a task whose body and headers fill max_payload is dead-lettered when it fails, and replays after the fix", async () => {
    let broken = true
    const { name, Render, app, runs } = setup("replaybig", { broken: () => broken })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      const taskId = `big-${name}`
      const headers = { "Msgsys-Id": taskId, "Msgsys-Tenant": "acme" }
      const body = jsonOfSize(maxPayload - headerBytes(headers))
      yield* publish(rt, Render.subject, body, headers)
      expect((yield* rt.client.wait(taskId, "10 seconds")).status).toBe("dead")
      const [letter] = yield* deadLetters(rt, name, "acme")
      expect(letter!.reason).toBe("exhausted")
      expect(letter!.error.message).toContain("renderer down")
      expect(letter!.bodySequence).toBeDefined()
      expect(letter!.headers).toEqual(headers)
      expect(yield* taskCount(rt, name)).toBe(0)

      broken = false
      const replayed = yield* withBroker(rt)(DeadLetters.replay(rt.names, letter!.sequence))
      expect(replayed).toBe(taskId)
      const done = yield* rt.client.wait(taskId, "10 seconds")
      expect(done.status).toBe("succeeded")
      expect(done.output).toEqual({ length: body.length - '{"text":""}'.length })
      expect(runs.count(taskId)).toBe(2)
      // the letter and its body part are gone
      yield* waitFor("the dead-letter stream to empty", Effect.map(streamCount(rt, rt.names.deadLetterStream), (n) => n === 0))
    }))
  }, 30_000)

  test("the max-deliveries sweeper moves a message that fills max_payload and never settled", async () => {
    const { name, Render, app, runs } = setup("sweepbig")
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      // this worker never pulls the task: a "worker" that crashes on it every time does, below
      yield* rt.worker.setPaused({ kind: "actor", name }, true)
      const taskId = `sweep-${name}`
      const headers = { "Msgsys-Id": taskId }
      const body = jsonOfSize(maxPayload - headerBytes(headers))
      yield* publish(rt, Render.subject, body, headers)
      const crashing = yield* neverSettling(rt, rt.names.taskStream(name), rt.names.taskConsumer(name, "normal"))
      yield* waitFor("the dead letter", Effect.gen(function*() {
        yield* crashing.take
        return (yield* deadLetters(rt, name)).length === 1
      }), "30 seconds", "200 millis")
      const [letter] = yield* deadLetters(rt, name)
      expect(letter!.taskId).toBe(taskId)
      expect(letter!.reason).toBe("max_deliveries")
      expect(letter!.bodySequence).toBeDefined()
      expect(new TextDecoder().decode(letter!.body)).toBe(body)
      yield* waitFor("the original to be deleted", Effect.map(taskCount(rt, name), (n) => n === 0))
      expect((yield* rt.client.wait(taskId, "5 seconds")).status).toBe("dead")
      expect(runs.total).toBe(0)
    }))
  }, 60_000)
})

/** What MSGSYS_DLQ_MAX_BYTES with `discard: new` does once reached: the stream refuses new letters. */
const fill = (rt: Runtime) =>
  Effect.promise(async () => {
    const { config } = await rt.nats.manager.streams.info(rt.names.deadLetterStream)
    await rt.nats.manager.streams.update(rt.names.deadLetterStream, { ...config, discard: "new" as never, max_bytes: 1 })
  })

describe("a full dead-letter stream", () => {
  test("leaves the messages in their task stream, logs it at error level once, and counts every refusal", async () => {
    const { name, Render, app, runs } = setup("full")
    const logs: Array<LogLine> = []
    const refused = Metric.withAttributes(DeadLetters.refusedCounter, { actor: name })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      yield* fill(rt)
      for (const n of [1, 2, 3]) yield* publish(rt, Render.subject, `not json ${n}`)
      yield* waitFor("three refusals", Effect.map(Metric.value(refused), (s) => s.count >= 3))
      // the nak delay is long: nothing comes back within the test, nothing is lost either
      yield* Effect.sleep("1 second")
      expect(yield* taskCount(rt, name)).toBe(3)
      expect(yield* streamCount(rt, rt.names.deadLetterStream)).toBe(0)
      const full = logs.filter((l) => l.message.includes(`${rt.names.deadLetterStream} is full`))
      expect(full).toHaveLength(1)
      expect(full[0]!.level).toBe("Error")
      expect(full[0]!.message).toContain("maximum bytes exceeded")
      expect(full[0]!.message).toContain("stays in its task stream")
      // no stack trace per try: the generic "could not settle" path was not taken
      expect(logs.filter((l) => l.message.includes("could not settle"))).toHaveLength(0)
      expect(runs.total).toBe(0)
    }), logs)
  }, 30_000)

  test("the max-deliveries sweeper keeps the advisory when the stream is full: the message is not stranded", async () => {
    const { name, Render, app, runs } = setup("sweepfull")
    const logs: Array<LogLine> = []
    const refused = Metric.withAttributes(DeadLetters.refusedCounter, { actor: name })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      yield* rt.worker.setPaused({ kind: "actor", name }, true)
      yield* fill(rt)
      const taskId = `sweepfull-${name}`
      yield* publish(rt, Render.subject, jsonOfSize(1_000), { "Msgsys-Id": taskId })
      const crashing = yield* neverSettling(rt, rt.names.taskStream(name), rt.names.taskConsumer(name, "normal"))
      yield* waitFor("a refusal", Effect.gen(function*() {
        yield* crashing.take
        return (yield* Metric.value(refused)).count >= 1
      }), "30 seconds", "200 millis").pipe(
        // what the consumer and the advisory stream say, for a failure to be read from CI's output
        Effect.tapCause(() =>
          Effect.promise(async () => {
            const consumer = await rt.nats.manager.consumers.info(rt.names.taskStream(name), rt.names.taskConsumer(name, "normal"))
            const advisories = await rt.nats.manager.streams.info(ActorTopology.advisoryStream(rt.names, name))
            console.error(JSON.stringify({
              delivered: consumer.delivered,
              ackPending: consumer.num_ack_pending,
              redelivered: consumer.num_redelivered,
              maxDeliver: consumer.config.max_deliver,
              advisories: advisories.state.messages
            }))
          }).pipe(Effect.ignore)
        )
      )
      yield* Effect.sleep("500 millis")
      // the advisory is kept (nak'ed, not acked) so the sweeper tries again; the message is still there
      expect(yield* streamCount(rt, ActorTopology.advisoryStream(rt.names, name))).toBe(1)
      expect(yield* taskCount(rt, name)).toBe(1)
      expect(yield* streamCount(rt, rt.names.deadLetterStream)).toBe(0)
      // never marked dead (a raw publish has no status record until it settles)
      expect((yield* Effect.flip(rt.client.status(taskId)))._tag).toBe("TaskNotFound")
      expect(runs.total).toBe(0)
      // said once at error level, not as a warning with a stack per try
      expect(logs.filter((l) => l.level === "Error" && l.message.includes("is full"))).toHaveLength(1)
      expect(logs.filter((l) => l.message.includes("could not move"))).toHaveLength(0)
    }), logs)
  }, 60_000)
})
