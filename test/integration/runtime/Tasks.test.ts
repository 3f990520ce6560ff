import { describe, expect, test } from "bun:test"
import { Context, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Nats from "../../../src/broker/Nats.ts"
import * as App from "../../../src/app/App.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Client from "../../../src/client/Client.ts"
import * as PromiseClient from "../../../src/client/PromiseClient.ts"
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

describe("clients", () => {
  test("a message from a plain NATS client with no msgsys headers runs, and its status is stored under a fallback id", async () => {
    const name = actorName("plain")
    const Greet = Task.make(`${name}.greet`, { input: { who: Schema.String }, output: { text: Schema.String } })
    const Greeter = Actor.make(name, { protocol: [Greet], retry: Retry.none })
    let seen: { id: string; tenant: string; attempt: number } | undefined
    const app = App.make({
      actors: [Greeter],
      handlers: Greeter.toLayer({
        [`${name}.greet`]: ({ input, envelope }: any) =>
          Effect.sync(() => {
            seen = { id: envelope.id, tenant: envelope.tenant, attempt: envelope.attempt }
            return { text: `hello ${input.who}` }
          })
      } as any)
    })
    const settings = h.settings()
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ctx = yield* startRuntime(app, settings)
      const nats = Context.get(ctx, Nats.Nats)
      // exactly what any NATS client does: JSON on the subject, no headers
      const ack = yield* Effect.promise(() => nats.jetstream.publish(`${name}.greet`, JSON.stringify({ who: "plain" })))
      const client = Context.get(ctx, Client.Client)
      const id = `${ack.stream}-${ack.seq}`
      const record = yield* client.wait(id, "10 seconds")
      expect(record.status).toBe("succeeded")
      expect(record.output).toEqual({ text: "hello plain" })
      expect(seen).toEqual({ id, tenant: "default", attempt: 1 })
    })))
  }, 30_000)

  test("the Promise client enqueues and returns the typed result without Effect", async () => {
    const name = actorName("promise")
    const Double = Task.make(`${name}.double`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const Doubler = Actor.make(name, { protocol: [Double], retry: Retry.none })
    const app = App.make({
      actors: [Doubler],
      handlers: Doubler.toLayer({ [`${name}.double`]: ({ input }: any) => Effect.succeed({ n: input.n * 2 }) } as any)
    })
    const settings = h.settings()
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      yield* startRuntime(app, settings)
      const out = yield* Effect.promise(async () => {
        const client = await PromiseClient.connect({ nats: { servers: settings.nats.servers }, streamPrefix: settings.streamPrefix })
        try {
          const handle = await client.enqueue(Double, { n: 21 })
          return await client.result(handle, "10 seconds")
        } finally {
          await client.close()
        }
      })
      expect(out).toEqual({ n: 42 })
    })))
  }, 30_000)

  test("a body that fits max_payload but not with its headers is refused as PayloadTooLarge, not a bare client error", async () => {
    const settings = h.settings()
    const client = await PromiseClient.connect({ nats: { servers: settings.nats.servers }, streamPrefix: settings.streamPrefix })
    try {
      const max = await Effect.runPromise(Nats.Nats.use((n) => Effect.succeed(n.server.maxPayload)).pipe(
        Effect.provide(Nats.layerFrom({ ...settings.nats }))
      ))
      // a JSON string of max - 8 bytes: the body alone fits
      const error = await client.enqueueJson(`${actorName("big")}.x`, "x".repeat(max - 10)).then(() => undefined, (e) => e)
      expect(error?._tag).toBe("PayloadTooLarge")
      expect(error.message).toContain("headers")
      expect(error.message).toContain("max_payload")
    } finally {
      await client.close()
    }
  }, 30_000)

  test("outputs and errors travel in their JSON form: a Date output comes back a Date", async () => {
    const name = actorName("dated")
    const Stamp = Task.make(`${name}.stamp`, {
      input: { at: Schema.Date },
      output: { next: Schema.Date, count: Schema.BigInt }
    })
    const Stamper = Actor.make(name, { protocol: [Stamp], retry: Retry.none })
    const app = App.make({
      actors: [Stamper],
      handlers: Stamper.toLayer({
        [`${name}.stamp`]: ({ input }: any) => Effect.succeed({ next: new Date(input.at.getTime() + 1000), count: 12345678901234567890n })
      } as any)
    })
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ctx = yield* startRuntime(app, h.settings())
      const client = Context.get(ctx, Client.Client)
      const handle = yield* client.enqueue(Stamp, { at: new Date("2026-11-23T10:00:00.000Z") })
      const out = yield* client.result(handle, "10 seconds")
      expect(out.next).toBeInstanceOf(Date)
      expect(out.next.toISOString()).toBe("2026-11-23T10:00:01.000Z")
      expect(out.count).toBe(12345678901234567890n)
    })))
  }, 30_000)
})
