/**
 * Pipelines on the in-memory broker (msgsys/testing), as users' tests run them: the actors' real
 * dispatchers enqueue each next step; the TestClock drives retries.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Fiber, Layer, Schema, type Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Pipeline from "../../../src/pipeline/Pipeline.ts"
import * as Pipelines from "../../../src/pipeline/Pipelines.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import * as Memory from "../../../src/testing/MemoryBroker.ts"

const Parse = Task.make("mem.parse", { input: { csv: Schema.String }, output: { rows: Schema.Array(Schema.Int) } })
class NotYet extends Schema.TaggedError<NotYet>()("NotYet", {}) {}
const Sum = Task.make("mem.sum", { input: { rows: Schema.Array(Schema.Int) }, output: { total: Schema.Int }, error: NotYet })
const Max = Task.make("mem.max", { input: { rows: Schema.Array(Schema.Int) }, output: { max: Schema.Int } })
const Report = Task.make("mem.report", {
  input: Schema.Tuple([Schema.Struct({ total: Schema.Int }), Schema.Struct({ max: Schema.Int })]),
  output: { text: Schema.String }
})

let sumFailures = 0
const Mem = Actor.make("mem", {
  protocol: [Parse, Sum, Max, Report],
  retry: Retry.exponential({ base: "10 seconds", maxAttempts: 3, jitter: false })
})
const MemLive = Mem.toLayer(Mem.of({
  "mem.parse": ({ input }) => Effect.succeed({ rows: input.csv.split(",").map(Number) }),
  "mem.sum": ({ input }) =>
    sumFailures-- > 0 ? Effect.fail(new NotYet()) : Effect.succeed({ total: input.rows.reduce((a, b) => a + b, 0) }),
  "mem.max": ({ input }) => Effect.succeed({ max: Math.max(...input.rows) }),
  "mem.report": ({ input: [{ total }, { max }] }) => Effect.succeed({ text: `total ${total}, max ${max}` })
}))

const run = <A, E>(body: Effect.Effect<A, E, Pipelines.Pipelines | Scope.Scope>) =>
  Effect.runPromise(body.pipe(
    Effect.provide(Memory.layer([Mem]).pipe(Layer.provide(MemLive))),
    Effect.scoped,
    Effect.provide(TestClock.layer())
  ))

describe("pipelines on the in-memory broker", () => {
  test("a chain with a gather runs to its typed output; a step that fails once is retried when the TestClock passes its delay", () =>
    run(Effect.gen(function*() {
      sumFailures = 1
      const pipelines = yield* Pipelines.Pipelines
      const Stats = Pipeline.chain(Parse, Pipeline.gather([Sum, Max]), Report)
      const started = yield* pipelines.start(Stats, { csv: "3,9,4" })
      const result = yield* Effect.forkChild(pipelines.result(started, "1 minute"))
      yield* TestClock.adjust("11 seconds")
      expect(yield* Fiber.join(result)).toEqual({ text: "total 16, max 9" })
      const status = yield* pipelines.status(started.id)
      expect(status.steps.map((s) => `${s.taskId.slice(started.id.length)}:${s.status}:${s.attempt}`)).toEqual([
        ".1:succeeded:1",
        ".2.1:succeeded:2",
        ".2.2:succeeded:1",
        ".3:succeeded:1"
      ])
    })))
})
