import { describe, expect, test } from "bun:test"
import { headers as natsHeaders } from "@nats-io/transport-node"
import { Context, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import type * as Nats from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as DeadLetters from "../../../src/dlq/DeadLetters.ts"
import * as App from "../../../src/app/App.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Client from "../../../src/client/Client.ts"
import type * as Results from "../../../src/task/Results.ts"
import * as Task from "../../../src/task/Task.ts"
import * as DeadLetter from "../../../src/dlq/DeadLetter.ts"
import * as Envelope from "../../../src/envelope/Envelope.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName, startRuntime } from "../../support/runtime.ts"
import { appOf, Runs, runTest, start, withBroker } from "../../support/runtimeTools.ts"

const h = natsHarness()

describe("dead letters", () => {
  test("a dead letter can be listed, inspected and replayed once, and the replay runs the task", async () => {
    const name = actorName("replay")
    const Charge = Task.make(`${name}.charge`, {
      input: { account: Schema.String },
      output: { charged: Schema.Boolean }
    })
    // the first run fails for good; once "fixed", the replay succeeds
    let broken = true
    let runs = 0
    const Billing = Actor.make(name, { protocol: [Charge], retry: Retry.none })
    const app = App.make({
      actors: [Billing],
      handlers: Billing.toLayer({
        [`${name}.charge`]: () =>
          Effect.suspend(() => {
            runs++
            return broken ? Effect.fail(new Error("gateway down")) : Effect.succeed({ charged: true })
          })
      } as never)
    })
    const settings = h.settings()
    const names = Subjects.make(settings.streamPrefix)
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ctx = yield* startRuntime(app, settings)
      const client = Context.get(ctx, Client.Client)
      const withNats = <A, E>(effect: Effect.Effect<A, E, Nats.Nats | Results.Results>) => Effect.provideContext(effect, ctx)
      const handle = yield* client.enqueue(Charge, { account: "a-1" })
      const dead = yield* client.wait(handle.id, "10 seconds")
      expect(dead.status).toBe("dead")

      const { letters } = yield* withNats(DeadLetters.list(names, { actor: name }))
      expect(letters).toHaveLength(1)
      const { sequence, letter } = letters[0]!
      expect(letter.taskId).toBe(handle.id)
      expect(letter.reason).toBe("exhausted")
      expect(letter.error.message).toContain("gateway down")
      const { body } = yield* withNats(DeadLetters.read(names, sequence))
      expect(new TextDecoder().decode(body)).toContain("a-1")

      broken = false
      expect(yield* withNats(DeadLetters.replay(names, sequence))).toBe(handle.id)
      const out = yield* client.result(handle, "10 seconds")
      expect(out).toEqual({ charged: true })
      expect((yield* withNats(DeadLetters.list(names, { actor: name }))).letters).toHaveLength(0)
      // replaying a letter that is gone names the problem
      const again = yield* Effect.flip(withNats(DeadLetters.replay(names, sequence)))
      expect(again._tag).toBe("LetterNotFound")
      expect(runs).toBe(2)
    })))
  }, 30_000)
})

describe("dead letters written before format 2", () => {
  test("an old letter (JSON with a base64 body) still lists, shows and replays, and the replay runs the task", () =>
    runTest(Effect.gen(function*() {
      const name = actorName("oldfmt")
      const Charge = Task.make(`${name}.charge`, { input: { account: Schema.String }, output: { charged: Schema.Boolean } })
      const Billing = Actor.make(name, { protocol: [Charge], retry: Retry.none })
      const runs = new Runs()
      const rt = yield* start(
        appOf([Billing, { [Charge.subject]: ({ taskId }) => Effect.sync(() => runs.add(taskId)).pipe(Effect.as({ charged: true })) }]),
        h.settings()
      )
      // the letter as the previous version's dispatcher wrote it: envelope headers, JSON body
      const envelope = yield* Envelope.make(Charge.subject, { tenant: "acme" })
      const body = JSON.stringify({ account: "a-9" })
      const stream = rt.names.taskStream(name)
      const ack = yield* Effect.promise(() => {
        const hs = natsHeaders()
        for (const [k, v] of Object.entries(Envelope.toHeaders(envelope))) if (k !== "Nats-Msg-Id") hs.set(k, v)
        return rt.nats.jetstream.publish(rt.names.deadLetterSubject(name, "acme"), DeadLetter.encodeLegacy({
          taskId: envelope.id,
          subject: Charge.subject,
          storedSubject: Charge.subject,
          actor: name,
          tenant: "acme",
          reason: "exhausted",
          error: { tag: "Error", message: "gateway down" },
          attempts: 1,
          history: [{ attempt: 1, at: 1, error: { tag: "Error", message: "gateway down" } }],
          headers: Envelope.toHeaders(envelope),
          payload: Buffer.from(body).toString("base64"),
          stream,
          streamSequence: 1,
          storedAt: 1,
          deadLetteredAt: 2
        }), { headers: hs, msgID: DeadLetter.dedupId(stream, 1) })
      })

      const page = yield* withBroker(rt)(DeadLetters.list(rt.names, { actor: name }))
      expect(page.letters.map((l) => [l.sequence, l.letter.format, l.letter.taskId, l.letter.bodySize])).toEqual([
        [ack.seq, 1, envelope.id, body.length]
      ])
      const full = yield* withBroker(rt)(DeadLetters.read(rt.names, ack.seq))
      expect(new TextDecoder().decode(full.body)).toBe(body)
      expect(full.letter.error.message).toBe("gateway down")

      expect(yield* withBroker(rt)(DeadLetters.replay(rt.names, ack.seq))).toBe(envelope.id)
      const done = yield* rt.client.wait(envelope.id, "10 seconds")
      expect(done.status).toBe("succeeded")
      expect(done.output).toEqual({ charged: true })
      expect(runs.count(envelope.id)).toBe(1)
      expect((yield* withBroker(rt)(DeadLetters.list(rt.names, { actor: name }))).letters).toHaveLength(0)
    })), 30_000)
})
