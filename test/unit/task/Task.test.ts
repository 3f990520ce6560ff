import { describe, expect, test } from "bun:test"
import { Effect, Option, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import type * as Client from "../../../src/client/Client.ts"
import * as Task from "../../../src/task/Task.ts"

const Extract = Task.make("etl.extract", {
  input: { tenant: Schema.String, rows: Schema.Int },
  output: { extracted: Schema.Int }
})

describe("task definitions", () => {
  test("enqueue and handlers are typed by the task's schemas (checked by tsc in scripts/test)", () => {
    // a function that is type-checked but never called: the @ts-expect-error lines fail the
    // type-check if the wrong call ever compiles
    const typed = (client: Client.Client["Service"]) => {
      client.enqueue(Extract, { tenant: "acme", rows: 3 })
      // @ts-expect-error rows must be a number
      client.enqueue(Extract, { tenant: "acme", rows: "3" })
      // @ts-expect-error tenant is missing
      client.enqueue(Extract, { rows: 3 })
      const Etl = Actor.make("etl", { protocol: [Extract] })
      Etl.of({ "etl.extract": ({ input }) => Effect.succeed({ extracted: input.rows }) })
      // @ts-expect-error the output must match the output schema
      Etl.of({ "etl.extract": () => Effect.succeed({ extracted: "many" }) })
      // @ts-expect-error every task of the protocol needs a handler
      Etl.of({})
    }
    expect(typeof typed).toBe("function")
  })

  test("a subject that is not <actor>.<name> is refused with the reason", () => {
    expect(() => Task.make("extract", { input: {}, output: {} })).toThrow(/at least two tokens/)
    expect(() => Task.make("etl.ex tract", { input: {}, output: {} })).toThrow(/spaces or wildcards/)
    expect(() => Task.make("etl.*", { input: {}, output: {} })).toThrow(/wildcards/)
  })

  test("an actor refuses a task outside its domain and says where it belongs", () => {
    const Render = Task.make("reports.render", { input: {}, output: {} })
    expect(() => Actor.make("etl", { protocol: [Render] })).toThrow(/rename the task to etl.render or move it to actor reports/)
    expect(() => Actor.make("etl", { protocol: [Extract, Extract] })).toThrow(/listed twice/)
    expect(() => Actor.make("etl", { protocol: [Extract], concurrency: 0 })).toThrow(/concurrency must be a whole number/)
  })

  test("the retry policy decides the delay of each attempt and when to give up", () => {
    const policy = Retry.exponential({ base: "100 millis", factor: 2, maxAttempts: 4, jitter: false, cap: "300 millis" })
    expect([1, 2, 3].map((n) => Option.getOrUndefined(Retry.nextDelay(policy, n)))).toEqual([100, 200, 300])
    expect(Retry.nextDelay(policy, 4)._tag).toBe("None")
    expect(Retry.maxAttempts(policy)).toBe(4)
    expect(Retry.maxAttempts(Retry.none)).toBe(1)
  })
})
