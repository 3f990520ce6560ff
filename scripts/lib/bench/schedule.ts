/**
 * `schedule`: how late a tick lands. Three scheduler replicas (processes) and a worker (this
 * process) on one stream prefix; each run adds a schedule that ticks every second, waits for ~20
 * ticks (3 with --quick), then removes it. Per tick: tick time -> the enqueue (the task's creation
 * time, written by the replica that won) and tick time -> the handler's start. A run fails if a
 * tick ran twice or was skipped: the figure is only worth reading when the ticks are exact.
 */
import { Context, Effect, Exit, Layer, Option, Schema, Scope } from "effect"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { Actor, MsgsysConfig, Retry, Schedules, Task } from "msgsys"
import * as Main from "../../../src/app/Main.ts"
import * as Services from "../../../src/app/Services.ts"
import * as Ticks from "../../../src/scheduler/Ticks.ts"
import * as Worker from "../../../src/runtime/Worker.ts"
import * as Children from "./support/children.ts"
import { now } from "./support/clock.ts"
import * as Js from "./support/jetstream.ts"
import type { Env, Runner, Section, Settings } from "./support/Section.ts"
import { latencySummary } from "./support/stats.ts"
import * as Logging from "../../../src/trace/Logging.ts"

const replicas = 3
const ticksPerRun = (s: Settings) => (s.quick ? 3 : 20)

/** One tick as the handler saw it. */
interface Sample {
  readonly taskId: string
  readonly tick: number
  readonly enqueuedAt: number
  readonly startedAt: number
}

const logging = Logging.logging({ logLevel: "Warn", logFormat: "pretty" })

export const section: Section = {
  name: "schedule",
  title: `scheduler tick jitter, ${replicas} replicas, a tick a second`,
  figures: (s) => [
    { key: "enqueueP99", label: `tick -> enqueue p99 (${ticksPerRun(s)} ticks)`, unit: "ms", digits: 1 },
    { key: "startP50", label: "tick -> handler start p50", unit: "ms", digits: 1 },
    { key: "startP99", label: `tick -> handler start p99 (${ticksPerRun(s)} ticks)`, unit: "ms", digits: 1 }
  ],
  setup: async (env: Env): Promise<Runner> => {
    const tag = env.unique("sched")
    const prefix = tag.toUpperCase()
    const actor = tag.toLowerCase()
    const dir = join(env.dir, tag)
    mkdirSync(dir, { recursive: true })
    const settings: MsgsysConfig.MsgsysSettings = {
      ...MsgsysConfig.defaults,
      streamPrefix: prefix,
      dataDir: dir,
      sqlitePath: join(dir, "msgsys.sqlite"),
      httpPort: 0,
      logLevel: "Warn",
      nats: { ...MsgsysConfig.defaults.nats, servers: [env.url], connectAttempts: 1 }
    }
    const samples: Array<Sample> = []
    const TickTask = Task.make(`${actor}.tick`, { input: { run: Schema.Int }, output: { ok: Schema.Boolean } })
    const Ticker = Actor.make(actor, { protocol: [TickTask], retry: Retry.none, concurrency: 8 })
    const handlers = Ticker.toLayer({
      [TickTask.subject]: ({ envelope, taskId }: { envelope: Parameters<typeof Ticks.fromEnvelope>[0]; taskId: string }) =>
        Effect.sync(() => {
          const startedAt = now()
          Option.map(Ticks.fromEnvelope(envelope), (info) =>
            samples.push({ taskId, tick: info.at, enqueuedAt: envelope.createdAt, startedAt }))
          return { ok: true }
        })
    } as never) as Layer.Layer<Actor.HandlersOf<string>>
    const config = Layer.succeed(MsgsysConfig.MsgsysConfig, settings)
    const layer = Layer.merge(
      Worker.layer({ actors: [Ticker] }).pipe(Layer.provide(handlers)),
      Schedules.layer({ tasks: [TickTask] })
    ).pipe(Layer.provideMerge(Services.layerWith(config)))
    const scope = await Effect.runPromise(Scope.make())
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect.pipe(Effect.provide(logging)))
    const children: Array<Children.Child> = []
    const c = await Js.connect(env.url)
    const close = async () => {
      for (const child of children) await child.stop()
      await run(Scope.close(scope, Exit.void))
      await Js.deleteStreams(c.jsm, `${prefix}_`, `KV_${prefix}_`)
      await c.nc.drain()
      rmSync(dir, { recursive: true, force: true })
    }
    try {
      const context = await run(Layer.buildWithScope(layer, scope))
      const schedules = Context.get(context, Schedules.Schedules)
      for (let i = 0; i < replicas; i++) children.push(Children.spawn("msgsys-scheduler", { url: env.url, dir, prefix }))
      await Promise.all(children.map((child) => child.next("ready", 30_000)))
      return {
        run: async (index) => {
          const name = `bench-${index}`
          const wanted = ticksPerRun(env.settings)
          samples.length = 0
          // catch-up: a tick a busy machine made late still runs, late, and shows in the figure
          await run(schedules.add({ name, cron: "*/1 * * * * *", task: TickTask, payload: { run: index }, missed: { catchUp: 1000 } }))
          const deadline = Date.now() + wanted * 1000 + 30_000
          while (new Set(samples.map((s) => s.tick)).size < wanted && Date.now() < deadline) await Bun.sleep(100)
          await run(schedules.remove(name))
          await Bun.sleep(300)
          const ticks = samples.map((s) => s.tick).sort((a, b) => a - b)
          const ids = new Set(samples.map((s) => s.taskId))
          if (ids.size !== samples.length) throw new Error(`schedule: ${samples.length - ids.size} tick(s) ran twice`)
          const gaps = ticks.filter((t, i) => i > 0 && t - ticks[i - 1]! !== 1000).length
          if (gaps > 0 || ticks.length < wanted) {
            throw new Error(`schedule: ${ticks.length} ticks of ${wanted} ran, with ${gaps} gap(s)`)
          }
          const measured = [...samples].sort((a, b) => a.tick - b.tick).slice(0, wanted)
          const enqueue = latencySummary(measured.map((s) => s.enqueuedAt - s.tick))
          const start = latencySummary(measured.map((s) => s.startedAt - s.tick))
          env.log(`schedule: tick -> enqueue p50 ${enqueue.p50.toFixed(1)} ms, max ${enqueue.max.toFixed(1)} ms; ` +
            `tick -> start max ${start.max.toFixed(1)} ms`)
          return { enqueueP99: enqueue.p99, startP50: start.p50, startP99: start.p99 }
        },
        close
      }
    } catch (e) {
      await close()
      throw e
    }
  }
}
