import { describe, expect, test } from "bun:test"
import { Context, Effect, Layer, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as App from "../../../src/runtime/App.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Client from "../../../src/task/Client.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName, startRuntime } from "../../support/runtime.ts"

const h = natsHarness()

describe("tasks", () => {
  test("typed enqueue → execute → result", async () => {
    const name = actorName("calc")
    const Add = Task.make(`${name}.add`, {
      input: { a: Schema.Number, b: Schema.Number },
      output: { sum: Schema.Number }
    })
    const Calc = Actor.make(name, { protocol: [Add], retry: Retry.none })
    const app = App.make({
      actors: [Calc],
      handlers: Calc.toLayer(Calc.of({ [`${name}.add`]: ({ input }: any) => Effect.succeed({ sum: input.a + input.b }) } as any))
    })
    const settings = h.settings()
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ctx = yield* startRuntime(app, settings)
      const client = Context.get(ctx, Client.Client)
      const handle = yield* client.enqueue(Add, { a: 2, b: 40 })
      const out = yield* client.result(handle, "10 seconds")
      expect(out).toEqual({ sum: 42 })
      const status = yield* client.status(handle.id)
      expect(status.status).toBe("succeeded")
    })))
  }, 30_000)
})
void Layer
