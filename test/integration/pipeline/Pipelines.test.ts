/**
 * Pipelines on a real nats-server: a chain runs its steps in order, each step's output the next
 * step's input; gather collects every task's output (or fails at the first failure); the status
 * shows every step; the steps share the pipeline id as their correlation id in the audit.
 */
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { Context, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import type * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import * as DeadLetters from "../../../src/dlq/DeadLetters.ts"
import * as Pipeline from "../../../src/pipeline/Pipeline.ts"
import * as Pipelines from "../../../src/pipeline/Pipelines.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import * as TaskError from "../../../src/task/TaskError.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName, startRuntime } from "../../support/runtime.ts"
import { type AnyHandler, appOf, deadLetters, Runs, runTest, start, waitFor, withBroker } from "../../support/runtimeTools.ts"

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

describe("failures", () => {
  test("a step that exhausts its retries fails the pipeline, naming the step and the error; replaying its dead letter lets the pipeline go on", async () => {
    const name = actorName("replay")
    const First = Task.make(`${name}.first`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    const Flaky = Task.make(`${name}.flaky`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    const Last = Task.make(`${name}.last`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    let broken = true
    const runs = new Runs()
    const Replay = Actor.make(name, {
      protocol: [First, Flaky, Last],
      retry: Retry.exponential({ base: "50 millis", maxAttempts: 2, jitter: false })
    })
    const app = appOf([Replay, {
      [First.subject]: ({ input }) => Effect.sync(() => (runs.add("first"), { n: (input as { n: number }).n + 1 })),
      [Flaky.subject]: ({ input }) =>
        Effect.suspend(() => {
          runs.add("flaky")
          return broken ? Effect.fail(new Error("the flaky service is down")) : Effect.succeed({ n: (input as { n: number }).n * 10 })
        }),
      [Last.subject]: ({ input }) => Effect.sync(() => (runs.add("last"), { n: (input as { n: number }).n + 1 }))
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, h.settings())
      const run = yield* rt.pipelines.start(Pipeline.chain(First, Flaky, Last), { n: 1 })
      const failed = yield* rt.pipelines.wait(run.id, "20 seconds")
      expect(failed.status).toBe("failed")
      expect(failed.current).toBe(2)
      expect(failed.steps.map((s) => s.status)).toEqual(["succeeded", "dead", "waiting"])
      expect(failed.failure).toMatchObject({ step: 2, subject: Flaky.subject, taskId: `${run.id}.2`, attempt: 2 })
      expect(failed.failure!.error!.message).toContain("the flaky service is down")
      expect(runs.count("flaky")).toBe(2)

      // the fault is fixed; the dead step is replayed, and the pipeline goes on from it
      broken = false
      const [letter] = yield* deadLetters(rt, name)
      expect(letter!.taskId).toBe(`${run.id}.2`)
      yield* withBroker(rt)(DeadLetters.replay(rt.names, letter!.sequence))
      expect(yield* rt.pipelines.result(run, "20 seconds")).toEqual({ n: 21 })
      expect([runs.count("first"), runs.count("flaky"), runs.count("last")]).toEqual([1, 3, 1])
      const done = yield* rt.pipelines.status(run.id)
      expect([done.status, done.failure]).toEqual(["succeeded", undefined])
    }))
  }, 40_000)

  test("a step whose input does not decode from the output before it (definitions out of step) fails the pipeline there, with the reason", async () => {
    const name = actorName("mismatch")
    const Make = Task.make(`${name}.make`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    const Expect = Task.make(`${name}.expect`, { input: { text: Schema.String }, output: { ok: Schema.Boolean } })
    const Mismatch = Actor.make(name, { protocol: [Make, Expect], retry: Retry.none })
    const app = appOf([Mismatch, {
      [Make.subject]: ({ input }) => Effect.succeed(input),
      [Expect.subject]: () => Effect.succeed({ ok: true })
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, h.settings())
      // the compiler refuses this chain; a worker running older definitions could still meet it
      const run = yield* rt.pipelines.start(Pipeline.chain(Make, Expect as unknown as typeof Make), { n: 1 })
      const failed = yield* rt.pipelines.wait(run.id, "20 seconds")
      expect(failed.status).toBe("failed")
      expect(failed.failure).toMatchObject({ step: 2, subject: Expect.subject, status: "dead" })
      expect(failed.failure!.error!.tag).toBe("PayloadDecodeError")
    }))
  }, 40_000)
})

describe("starting and cancelling", () => {
  const define = () => {
    const name = actorName("startc")
    const Slow = Task.make(`${name}.slow`, { input: { ms: Schema.Int }, output: { ms: Schema.Int } })
    const Next = Task.make(`${name}.next`, { input: { ms: Schema.Int }, output: { done: Schema.Boolean } })
    const runs = new Runs()
    const Start = Actor.make(name, { protocol: [Slow, Next], retry: Retry.none })
    const app = appOf([Start, {
      [Slow.subject]: ({ input }) => Effect.andThen(Effect.sync(() => runs.add("slow")), Effect.as(Effect.sleep((input as { ms: number }).ms), input)),
      [Next.subject]: () => Effect.sync(() => (runs.add("next"), { done: true }))
    }])
    return { Slow, Next, runs, app }
  }

  test("starting a pipeline again with its id starts nothing new; an id another pipeline has, or one with a dot, is refused", async () => {
    const { Slow, Next, runs, app } = define()
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, h.settings())
      const P = Pipeline.chain(Slow, Next)
      const first = yield* rt.pipelines.start(P, { ms: 10 }, { id: "order-42" })
      const again = yield* rt.pipelines.start(P, { ms: 10 }, { id: "order-42" })
      expect([first.id, first.duplicate, again.id, again.duplicate]).toEqual(["order-42", false, "order-42", true])
      expect(yield* rt.pipelines.result(first, "20 seconds")).toEqual({ done: true })
      const late = yield* rt.pipelines.start(P, { ms: 10 }, { id: "order-42" })
      expect(late.duplicate).toBe(true)
      yield* Effect.sleep("300 millis")
      expect([runs.count("slow"), runs.count("next")]).toEqual([1, 1])

      const taken = yield* Effect.flip(rt.pipelines.start(Pipeline.chain(Slow), { ms: 10 }, { id: "order-42" }))
      expect(taken._tag).toBe("PipelineIdTaken")
      expect(taken.message).toContain(`steps ${Slow.subject} -> ${Next.subject}`)
      const dotted = yield* Effect.flip(rt.pipelines.start(P, { ms: 10 }, { id: "order.42" }))
      expect(dotted._tag).toBe("InvalidPipelineId")
      expect(dotted.message).toContain("no dots")
      const unknown = yield* Effect.flip(rt.pipelines.status("never-started"))
      expect(unknown._tag).toBe("PipelineNotFound")
    }))
  }, 40_000)

  test("a pipeline with a step no worker has declared (no stream stores its subject) is refused at start, naming the subject; nothing runs", async () => {
    const { Slow, runs, app } = define()
    const Elsewhere = Task.make(`${actorName("nostream")}.step`, { input: { ms: Schema.Int }, output: { ms: Schema.Int } })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, h.settings())
      const refused = yield* Effect.flip(rt.pipelines.start(Pipeline.chain(Slow, Elsewhere), { ms: 1 }))
      expect(refused._tag).toBe("NoStreamForSubject")
      expect(refused.message).toContain(`no JetStream stream stores ${Elsewhere.subject}: start a worker`)
      yield* Effect.sleep("300 millis")
      expect(runs.count("slow")).toBe(0)
    }))
  }, 40_000)

  test("cancelling a pipeline interrupts its running step and its later steps never run", async () => {
    const { Slow, Next, runs, app } = define()
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, h.settings())
      const run = yield* rt.pipelines.start(Pipeline.chain(Slow, Next), { ms: 60_000 })
      yield* waitFor("the first step to run", Effect.sync(() => runs.count("slow") === 1))
      yield* rt.pipelines.cancel(run.id)
      const failed = yield* Effect.flip(rt.pipelines.result(run, "20 seconds"))
      expect(failed._tag).toBe("PipelineFailed")
      expect(failed.message).toContain(`was cancelled at step 1, ${Slow.subject}`)
      const status = yield* rt.pipelines.status(run.id)
      expect([status.status, status.current, status.steps.map((s) => s.status)]).toEqual(["cancelled", 1, ["cancelled", "waiting"]])
      expect(runs.count("next")).toBe(0)
    }))
  }, 40_000)
})

describe("msgsys pipeline", () => {
  /** Runs the CLI on the test's server and prefix, with a clean MSGSYS_* environment. */
  const msgsys = async (settings: MsgsysConfig.MsgsysSettings, args: ReadonlyArray<string>) => {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MSGSYS_")))
    const proc = Bun.spawn(["bun", "src/cli/main.ts", ...args], {
      env: { ...base, MSGSYS_DATA_DIR: settings.dataDir, MSGSYS_NATS_URL: settings.nats.servers[0]!, MSGSYS_STREAM_PREFIX: settings.streamPrefix },
      stdout: "pipe",
      stderr: "pipe"
    })
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
    return { stdout, stderr, code }
  }

  test("msgsys pipeline status prints each step with its task id and status, the output or the step that failed and why; --json prints the status", async () => {
    const name = actorName("cli")
    const One = Task.make(`${name}.one`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    const Two = Task.make(`${name}.two`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    const Bad = Task.make(`${name}.bad`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    const Cli = Actor.make(name, { protocol: [One, Two, Bad], retry: Retry.none })
    const app = appOf([Cli, {
      [One.subject]: ({ input }) => Effect.succeed(input),
      [Two.subject]: ({ input }) => Effect.succeed({ n: (input as { n: number }).n * 2 }),
      [Bad.subject]: () => Effect.fail(new Error("the bad step broke"))
    }])
    const settings = h.settings()
    const [good, bad] = await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      const good = yield* rt.pipelines.start(Pipeline.chain(One, Pipeline.gather([Two, One])), { n: 21 })
      const bad = yield* rt.pipelines.start(Pipeline.chain(One, Bad, Two), { n: 1 })
      yield* rt.pipelines.wait(good.id, "20 seconds")
      yield* rt.pipelines.wait(bad.id, "20 seconds")
      return [good.id, bad.id] as const
    }))

    const ok = await msgsys(settings, ["pipeline", "status", good])
    expect(ok.stderr).toBe("")
    expect(ok.code).toBe(0)
    const lines = ok.stdout.trim().split("\n")
    expect(lines[0]).toMatch(new RegExp(`^pipeline ${good}  succeeded  \\(tenant default, started \\d{4}-`))
    expect(lines.slice(1, 5).map((l) => l.trim().split(/\s+/))).toEqual([
      ["step", "subject", "task", "status", "attempt"],
      ["1", One.subject, `${good}.1`, "succeeded", "1"],
      ["2.1", Two.subject, `${good}.2.1`, "succeeded", "1"],
      ["2.2", One.subject, `${good}.2.2`, "succeeded", "1"]
    ])
    expect(lines[5]).toBe(`output: [{"n":42},{"n":21}]`)

    const failed = await msgsys(settings, ["pipeline", "status", bad])
    expect(failed.code).toBe(0)
    expect(failed.stdout).toContain(`pipeline ${bad}  failed`)
    expect(failed.stdout).toMatch(new RegExp(`2\\s+${Bad.subject}\\s+${bad}\\.2\\s+dead`))
    expect(failed.stdout).toMatch(new RegExp(`3\\s+${Two.subject}\\s+${bad}\\.3\\s+waiting`))
    expect(failed.stdout).toContain(`failed at step 2, ${Bad.subject}, task ${bad}.2: `)
    expect(failed.stdout).toContain("the bad step broke")

    const asJson = await msgsys(settings, ["pipeline", "status", bad, "--json"])
    expect(asJson.code).toBe(0)
    const parsed = JSON.parse(asJson.stdout)
    expect(parsed).toMatchObject({ id: bad, status: "failed", current: 2, length: 3, failure: { step: 2, taskId: `${bad}.2` } })
    expect(parsed.steps.map((s: { status: string }) => s.status)).toEqual(["succeeded", "dead", "waiting"])

    const missing = await msgsys(settings, ["pipeline", "status", "nosuchpipeline"])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("no pipeline nosuchpipeline")
  }, 60_000)
})
