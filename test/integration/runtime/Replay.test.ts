import { describe, expect, test } from "bun:test"
import { Context, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import type * as Nats from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as DeadLetters from "../../../src/dlq/DeadLetters.ts"
import * as App from "../../../src/runtime/App.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Client from "../../../src/task/Client.ts"
import type * as Results from "../../../src/task/Results.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName, startRuntime } from "../../support/runtime.ts"

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
