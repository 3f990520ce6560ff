/**
 * `pipeline`: three-step pipelines of no-op tasks on one worker (this process, concurrency 64,
 * audit, idempotency and results on). Each step is its own task; the worker enqueues the next step
 * before it acks the one that finished.
 * - throughput: K pipelines started 256 at a time (`Pipelines.start`: the plan stored, step 1
 *   enqueued), timed until the last step of every one has run and the stream is empty;
 * - latency: one pipeline at a time, `start` -> `result` (the client waits on the steps' records);
 * - beside it, the same three tasks chained by the client (enqueue, wait for the result, enqueue
 *   the next with it), the way a program without pipelines does it.
 */
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { Actor, Client, MsgsysConfig, Pipeline, Pipelines, Retry, Task } from "msgsys"
import * as Main from "../../../src/app/Main.ts"
import * as Services from "../../../src/app/Services.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as Worker from "../../../src/runtime/Worker.ts"
import * as Js from "./support/jetstream.ts"
import * as Runtime from "./support/runtime.ts"
import type { Env, Runner, Section, Settings } from "./support/Section.ts"
import { latencySummary, perSecond } from "./support/stats.ts"
import * as Logging from "../../../src/trace/Logging.ts"

const pipelinesPerRun = (s: Settings) => (s.quick ? 200 : 2_000)
const latencyRuns = (s: Settings) => (s.quick ? 10 : 50)
const logging = Logging.logging({ logLevel: "Warn", logFormat: "pretty" })

export const section: Section = {
  name: "pipeline",
  title: "msgsys pipelines (3 steps, one worker)",
  figures: (s) => [
    { key: "throughput", label: `${pipelinesPerRun(s)} pipelines started at once, 3 steps each`, unit: "pipelines/s" },
    { key: "latencyP50", label: `one pipeline at a time, start -> result p50 (${latencyRuns(s)})`, unit: "ms", digits: 1 },
    { key: "clientChainP50", label: "the 3 tasks chained by the client (enqueue, result, next) p50", unit: "ms", digits: 1 }
  ],
  setup: async (env: Env): Promise<Runner> => {
    const tag = env.unique("pipe")
    const prefix = tag.toUpperCase()
    const actor = tag.toLowerCase()
    const dir = join(env.dir, tag)
    mkdirSync(dir, { recursive: true })
    const settings = Runtime.settingsOf({ url: env.url, dir, prefix, actor, concurrency: 64, audit: true, results: true })
    const step = (k: number) => Task.make(`${actor}.step${k}`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    const [S1, S2, S3] = [step(1), step(2), step(3)]
    const Three = Pipeline.chain(S1, S2, S3)
    const last = Runtime.counter()
    const Steps = Actor.make(actor, { protocol: [S1, S2, S3], retry: Retry.none, concurrency: 64 })
    const handlers = Steps.toLayer({
      [S1.subject]: ({ input }: { input: { n: number } }) => Effect.succeed(input),
      [S2.subject]: ({ input }: { input: { n: number } }) => Effect.succeed(input),
      [S3.subject]: ({ input }: { input: { n: number } }) => Effect.sync(() => (last.tick(), input))
    } as never) as Layer.Layer<Actor.HandlersOf<string>>
    const layer = Worker.layer({ actors: [Steps] }).pipe(
      Layer.provide(handlers),
      Layer.provideMerge(Services.layerWith(Layer.succeed(MsgsysConfig.MsgsysConfig, settings)))
    )
    const scope = await Effect.runPromise(Scope.make())
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect.pipe(Effect.provide(logging)))
    const c = await Js.connect(env.url)
    const stream = Subjects.make(prefix).taskStream(actor)
    const close = async () => {
      await run(Scope.close(scope, Exit.void))
      await Js.deleteStreams(c.jsm, `${prefix}_`, `KV_${prefix}_`)
      await c.nc.drain()
      rmSync(dir, { recursive: true, force: true })
    }
    try {
      const context = await run(Layer.buildWithScope(layer, scope))
      const pipelines = Context.get(context, Pipelines.Pipelines)
      const client = Context.get(context, Client.Client)
      // warm up: the pipelines bucket is declared by the first start
      await run(Effect.flatMap(pipelines.start(Three, { n: 0 }), (r) => pipelines.result(r, "30 seconds")))
      return {
        run: async () => {
          const k = pipelinesPerRun(env.settings)
          const before = last.count
          const started = performance.now()
          await run(Effect.forEach(Array.from({ length: k }, (_, n) => n), (n) => pipelines.start(Three, { n }), {
            concurrency: 256,
            discard: true
          }))
          await last.reached(before + k)
          await Js.waitForCount(c.jsm, stream, 0, Js.stallTimeout(3 * k))
          const throughput = perSecond(k, performance.now() - started)

          const timed = async (effect: Effect.Effect<unknown, unknown>) => {
            const t = performance.now()
            await run(effect)
            return performance.now() - t
          }
          const pipelined: Array<number> = []
          const chained: Array<number> = []
          for (let i = 0; i < latencyRuns(env.settings); i++) {
            pipelined.push(await timed(Effect.flatMap(pipelines.start(Three, { n: i }), (r) => pipelines.result(r, "30 seconds"))))
            chained.push(await timed(Effect.gen(function*() {
              const a = yield* client.result(yield* client.enqueue(S1, { n: i }), "30 seconds")
              const b = yield* client.result(yield* client.enqueue(S2, a), "30 seconds")
              return yield* client.result(yield* client.enqueue(S3, b), "30 seconds")
            })))
          }
          return { throughput, latencyP50: latencySummary(pipelined).p50, clientChainP50: latencySummary(chained).p50 }
        },
        close
      }
    } catch (e) {
      await close()
      throw e
    }
  }
}
