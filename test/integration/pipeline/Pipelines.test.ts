/**
 * Pipelines on a real nats-server: a chain runs its steps in order, each step's output the next
 * step's input; gather collects every task's output (or fails at the first failure); the status
 * shows every step; the steps share the pipeline id as their correlation id in the audit.
 */
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { Context, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Pipeline from "../../../src/pipeline/Pipeline.ts"
import * as Pipelines from "../../../src/pipeline/Pipelines.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import * as TaskError from "../../../src/task/TaskError.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName, startRuntime } from "../../support/runtime.ts"
import { type AnyHandler, appOf } from "../../support/runtimeTools.ts"

const h = natsHarness()

const correlated = (sqlitePath: string, correlationId: string) => {
  const db = new Database(sqlitePath, { readonly: true })
  try {
    return db.query<{ message_id: string; subject: string; step: string }, [string]>(
      "SELECT message_id, subject, step FROM audit_log WHERE correlation_id = ? ORDER BY id"
    ).all(correlationId)
  } finally {
    db.close()
  }
}

describe("chain", () => {
  test("a 3-step chain runs its steps in order, each step's output the next step's input, with a typed result", async () => {
    const text = actorName("text")
    const stats = actorName("stats")
    const Split = Task.make(`${text}.split`, { input: { text: Schema.String }, output: { words: Schema.Array(Schema.String) } })
    const Count = Task.make(`${stats}.count`, {
      input: { words: Schema.Array(Schema.String) },
      output: { count: Schema.Int, longest: Schema.String }
    })
    const Report = Task.make(`${text}.report`, { input: { count: Schema.Int, longest: Schema.String }, output: { line: Schema.String } })
    const Words = Pipeline.chain(Split, Count, Report)
    const ran: Array<string> = []
    const Text = Actor.make(text, { protocol: [Split, Report], retry: Retry.none })
    const Stats = Actor.make(stats, { protocol: [Count], retry: Retry.none })
    const app = appOf(
      [Text, {
        [Split.subject]: ({ input }) => Effect.sync(() => {
          ran.push("split")
          return { words: (input as { text: string }).text.split(" ") }
        }),
        [Report.subject]: ({ input }) => Effect.sync(() => {
          ran.push("report")
          const i = input as { count: number; longest: string }
          return { line: `${i.count} words, the longest ${i.longest}` }
        })
      } satisfies Record<string, AnyHandler>],
      [Stats, {
        [Count.subject]: ({ input }) => Effect.sync(() => {
          ran.push("count")
          const words = (input as { words: ReadonlyArray<string> }).words
          return { count: words.length, longest: [...words].sort((a, b) => b.length - a.length)[0]! }
        })
      }]
    )
    const settings = h.settings()
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ctx = yield* startRuntime(app, settings)
      const pipelines = Context.get(ctx, Pipelines.Pipelines)
      const run = yield* pipelines.start(Words, { text: "a pipeline of three steps" })
      const out: { readonly line: string } = yield* pipelines.result(run, "20 seconds")
      expect(out).toEqual({ line: "5 words, the longest pipeline" })
      expect(ran).toEqual(["split", "count", "report"])

      const status = yield* pipelines.status(run.id)
      expect(status.status).toBe("succeeded")
      expect(status.output).toEqual({ line: "5 words, the longest pipeline" })
      expect(status.steps.map((s) => [s.step, s.subject, s.taskId, s.status])).toEqual([
        [1, Split.subject, `${run.id}.1`, "succeeded"],
        [2, Count.subject, `${run.id}.2`, "succeeded"],
        [3, Report.subject, `${run.id}.3`, "succeeded"]
      ])
      expect(status.steps[1]!.output).toEqual({ count: 5, longest: "pipeline" })

      // every step's audit rows carry the pipeline id as their correlation id
      const rows = correlated(settings.sqlitePath, run.id)
      expect([...new Set(rows.filter((r) => r.step === "succeeded").map((r) => r.message_id))]).toEqual([
        `${run.id}.1`,
        `${run.id}.2`,
        `${run.id}.3`
      ])
    })))
  }, 40_000)
})

describe("gather", () => {
  const define = () => {
    const name = actorName("fan")
    const Source = Task.make(`${name}.source`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    const Double = Task.make(`${name}.double`, { input: { n: Schema.Int }, output: { doubled: Schema.Int } })
    const Square = Task.make(`${name}.square`, { input: { n: Schema.Int }, output: { squared: Schema.Int } })
    const Fail = Task.make(`${name}.fail`, { input: { n: Schema.Int }, output: { never: Schema.Int } })
    const Sum = Task.make(`${name}.sum`, {
      input: Schema.Tuple([Schema.Struct({ doubled: Schema.Int }), Schema.Struct({ squared: Schema.Int })]),
      output: { total: Schema.Int }
    })
    const Fan = Actor.make(name, { protocol: [Source, Double, Square, Fail, Sum], retry: Retry.none, concurrency: 8 })
    const app = appOf([Fan, {
      [Source.subject]: ({ input }) => Effect.succeed({ n: (input as { n: number }).n }),
      [Double.subject]: ({ input }) => Effect.succeed({ doubled: (input as { n: number }).n * 2 }),
      [Square.subject]: ({ input }) => Effect.delay(Effect.succeed({ squared: (input as { n: number }).n ** 2 }), "200 millis"),
      [Fail.subject]: () => Effect.fail(TaskError.permanent(new Error("told to fail"))),
      [Sum.subject]: ({ input }) => {
        const [d, s] = input as readonly [{ doubled: number }, { squared: number }]
        return Effect.succeed({ total: d.doubled + s.squared })
      }
    }])
    return { Source, Double, Square, Fail, Sum, app }
  }

  test("gather returns every task's output, in the order of its tasks, as the next step's input", async () => {
    const { Source, Double, Square, Sum, app } = define()
    const settings = h.settings()
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ctx = yield* startRuntime(app, settings)
      const pipelines = Context.get(ctx, Pipelines.Pipelines)
      // alone: the output is the tuple of the outputs
      const both = yield* pipelines.start(Pipeline.gather([Square, Double]), { n: 3 })
      const tuple: readonly [{ readonly squared: number }, { readonly doubled: number }] = yield* pipelines.result(both, "20 seconds")
      expect(tuple).toEqual([{ squared: 9 }, { doubled: 6 }])
      // in a chain: the next step gets the tuple
      const run = yield* pipelines.start(Pipeline.chain(Source, Pipeline.gather([Double, Square]), Sum), { n: 4 })
      expect(yield* pipelines.result(run, "20 seconds")).toEqual({ total: 8 + 16 })
      const status = yield* pipelines.status(run.id)
      expect(status.steps.map((s) => [s.step, s.child, s.taskId, s.status])).toEqual([
        [1, undefined, `${run.id}.1`, "succeeded"],
        [2, 1, `${run.id}.2.1`, "succeeded"],
        [2, 2, `${run.id}.2.2`, "succeeded"],
        [3, undefined, `${run.id}.3`, "succeeded"]
      ])
    })))
  }, 40_000)

  test("a gather with a failing task fails the pipeline at its first failure, naming the step, the task and the error", async () => {
    const { Source, Square, Fail, app } = define()
    const settings = h.settings()
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ctx = yield* startRuntime(app, settings)
      const pipelines = Context.get(ctx, Pipelines.Pipelines)
      const run = yield* pipelines.start(Pipeline.chain(Source, Pipeline.gather([Square, Fail])), { n: 2 })
      const failed = yield* Effect.flip(pipelines.result(run, "20 seconds"))
      expect(failed._tag).toBe("PipelineFailed")
      const status = (failed as Pipelines.PipelineFailed).status
      expect(status.status).toBe("failed")
      expect(status.current).toBe(2)
      expect(status.failure).toMatchObject({ step: 2, child: 2, subject: Fail.subject, taskId: `${run.id}.2.2`, status: "dead" })
      expect(status.failure!.error!.message).toContain("told to fail")
      expect(failed.message).toContain(`failed at step 2 (task 2 of its gather), ${Fail.subject}`)
    })))
  }, 40_000)
})
