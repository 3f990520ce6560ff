/**
 * msgsys as the bench runs it, through the public API only: one actor with one no-op task, its
 * worker and client in this process (or a client alone), on the bench's nats-server, with a
 * SQLite file in the run's folder. Each runtime gets its own stream prefix and actor name, so no
 * two runs share a stream, a consumer, a bucket or a subject.
 */
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { Actor, Client, MsgsysConfig, Retry, Task } from "msgsys"
import * as Main from "../../../../src/app/Main.ts"
import * as Services from "../../../../src/app/Services.ts"
import * as Subjects from "../../../../src/broker/Subjects.ts"
import * as Worker from "../../../../src/runtime/Worker.ts"
import * as Logging from "../../../../src/trace/Logging.ts"

/** What every bench task carries: a number and, for the latency section, when it was sent. */
export interface BenchInput {
  readonly n: number
  readonly sentAt: number
}

const input = Schema.Struct({ n: Schema.Int, sentAt: Schema.Number })
const output = Schema.Struct({ n: Schema.Int })

/** The bench task of `actor`; the same definition in every process that uses it. */
export const defineTask = (actor: string, results: boolean) =>
  Task.make(`${actor}.echo`, { input, output, result: results })
export type BenchTask = ReturnType<typeof defineTask>

export interface Options {
  readonly url: string
  /** Folder of the SQLite file, created if missing (processes of one run share it, as on one host). */
  readonly dir: string
  readonly prefix: string
  readonly actor: string
  /** Actor concurrency; the `fast` pool is sized to hold it. */
  readonly concurrency: number
  /** Audit rows in SQLite (true) or none (`Services.layerWith(config, { audit: false })`). */
  readonly audit: boolean
  /** Store each task's result (true) or create the task with `result: false`. */
  readonly results: boolean
  /** Run a worker for the actor; without a handler only the client is built. */
  readonly handler?: (input: BenchInput) => Effect.Effect<void>
}

export interface Runtime {
  readonly task: BenchTask
  readonly names: Subjects.Names
  /** The actor's task stream. */
  readonly stream: string
  readonly client: Client.Client["Service"]
  readonly worker: Worker.Worker["Service"] | undefined
  /** Runs an effect of this runtime (logs to stderr, warnings and up). */
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
  /** Stops the worker gracefully and closes the connection and the SQLite file. */
  readonly close: () => Promise<void>
}

const logging = Logging.logging({ logLevel: "Warn", logFormat: "pretty" })

/** The settings of one runtime, as a program would have them, pointed at the bench's server. */
export const settingsOf = (options: Options): MsgsysConfig.MsgsysSettings => ({
  ...MsgsysConfig.defaults,
  streamPrefix: options.prefix,
  dataDir: options.dir,
  sqlitePath: join(options.dir, "msgsys.sqlite"),
  httpPort: 0,
  logLevel: "Warn",
  pools: MsgsysConfig.defaults.pools.map((p) =>
    p.name === "fast" ? { ...p, concurrency: Math.max(p.concurrency, options.concurrency) } : p
  ),
  nats: { ...MsgsysConfig.defaults.nats, servers: [options.url], connectAttempts: 1 }
})

/** Builds the runtime; a worker starts pulling at once unless it is paused (see `pause`). */
export const make = async (options: Options): Promise<Runtime> => {
  mkdirSync(options.dir, { recursive: true })
  const task = defineTask(options.actor, options.results)
  const config = Layer.succeed(MsgsysConfig.MsgsysConfig, settingsOf(options))
  const services = Services.layerWith(config, { audit: options.audit })
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect.pipe(Effect.provide(logging)))
  const scope = await Effect.runPromise(Scope.make())
  const close = () => run(Scope.close(scope, Exit.void))
  try {
    let worker: Worker.Worker["Service"] | undefined
    let client: Client.Client["Service"]
    if (options.handler) {
      const handler = options.handler
      const actor = Actor.make(options.actor, { protocol: [task], concurrency: options.concurrency, retry: Retry.none })
      const handlers = actor.toLayer({
        [task.subject]: ({ input }: { input: BenchInput }) => Effect.as(handler(input), { n: input.n })
      } as never)
      const layer = Worker.layer({ actors: [actor] }).pipe(Layer.provide(handlers), Layer.provideMerge(services))
      const context = await run(Layer.buildWithScope(layer, scope))
      worker = Context.get(context, Worker.Worker)
      client = Context.get(context, Client.Client)
    } else {
      const context = await run(Layer.buildWithScope(services, scope))
      client = Context.get(context, Client.Client)
    }
    const names = Subjects.make(options.prefix)
    return { task, names, stream: names.taskStream(options.actor), client, worker, run, close }
  } catch (e) {
    await close()
    throw e
  }
}

/** Pauses (true) or resumes (false) the runtime's actor in its own worker. */
export const setPaused = (runtime: Runtime, actor: string, paused: boolean) => {
  if (!runtime.worker) throw new Error("this runtime has no worker to pause")
  return runtime.run(runtime.worker.setPaused({ kind: "actor", name: actor }, paused))
}

/** Counts handler calls; `reached(n)` resolves once `n` have run. */
export const counter = () => {
  let count = 0
  let goal = Number.POSITIVE_INFINITY
  let resolve: (() => void) | undefined
  return {
    tick: () => {
      if (++count >= goal && resolve) {
        resolve()
        resolve = undefined
      }
    },
    get count() {
      return count
    },
    reached: (n: number) =>
      count >= n ? Promise.resolve() : new Promise<void>((r) => {
        goal = n
        resolve = r
      })
  }
}
