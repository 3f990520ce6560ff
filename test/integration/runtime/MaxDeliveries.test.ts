import { describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Pull from "../../../src/broker/Pull.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, auditSteps, deadLetters, type LogLine, runTest, start, taskCount, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

describe("max_deliver", () => {
  test("a message whose deliveries run out without being settled is moved to dead letters, never stranded", () => {
    const logs: Array<LogLine> = []
    return runTest(Effect.gen(function*() {
      const name = actorName("strand")
      const Job = Task.make(`${name}.job`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
      // one attempt: the consumers get max_deliver 1 + 2 = 3
      const Stranded = Actor.make(name, { protocol: [Job], retry: Retry.none, ackWait: "1 second" })
      let runs = 0
      const rt = yield* start(
        appOf([Stranded, { [`${name}.job`]: ({ input }) => Effect.sync(() => (runs++, input)) }]),
        h.settings({ ackWait: Duration.seconds(1) })
      )
      // this worker never pulls the task: a "worker" that crashes on it every time does, below
      yield* rt.worker.setPaused({ kind: "actor", name }, true)
      const handle = yield* rt.client.enqueue(Job, { n: 7 })

      const stream = rt.names.taskStream(name)
      const consumer = rt.names.taskConsumer(name, "normal")
      // A crashing worker keeps pulling: a pull after the last ack_wait is when the server finds
      // the deliveries exhausted and announces it. Every message taken is never acked.
      let deliveries = 0
      const crashing = yield* Pull.make(rt.nats.connection, stream, consumer, {
        onMessage: () => void deliveries++,
        onEnd: () => {},
        onFailure: () => {}
      }, { answerTimeoutMs: 150, consumerExists: () => Promise.resolve(true) })
      yield* waitFor("the dead letter", Effect.gen(function*() {
        crashing.check(Date.now())
        crashing.fetch(1)
        return (yield* deadLetters(rt, name)).length === 1
      }), "30 seconds", "200 millis")
      expect(deliveries).toBe(3)
      const [letter] = yield* deadLetters(rt, name)
      expect(letter!.taskId).toBe(handle.id)
      expect(letter!.reason).toBe("max_deliveries")
      expect(letter!.attempts).toBe(3)
      expect(letter!.error.message).toContain("without being settled")
      expect(JSON.parse(new TextDecoder().decode(letter!.body))).toEqual({ n: 7 })
      // nothing left behind in the work queue, and the client learns the outcome
      yield* waitFor("the original to be deleted", Effect.map(taskCount(rt, name), (n) => n === 0))
      expect((yield* rt.client.wait(handle.id, "5 seconds")).status).toBe("dead")
      expect(runs).toBe(0)
      // the audit trail has the move too
      expect(auditSteps(rt.settings.sqlitePath, handle.id)).toContain("dead_lettered")
      // and its log line names the message
      expect(logs.filter((l) => l.message.includes("ran out of deliveries")).map((l) => l.annotations)).toEqual([
        expect.objectContaining({ messageId: handle.id, subject: Job.subject, actor: name, tenant: "default", attempt: 3 })
      ])
    }), logs)
  }, 60_000)
})
