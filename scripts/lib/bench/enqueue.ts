/**
 * `enqueue`: how fast a program hands tasks to msgsys, with the full client (envelope, publish
 * with dedup id, status record, "enqueued" audit row in SQLite).
 * - one by one: `client.enqueue`, `inFlight` calls at once (Effect.forEach with that concurrency);
 * - batch: `client.enqueueMany(task, inputs)`, one call for all N.
 * The actor's worker runs but is paused, so nothing is consumed while enqueueing; each run checks
 * that the stream then holds exactly N messages.
 */
import { Effect } from "effect"
import { rmSync } from "node:fs"
import { join } from "node:path"
import * as Js from "./support/jetstream.ts"
import * as Runtime from "./support/runtime.ts"
import type { Env, Runner, Sample, Section } from "./support/Section.ts"
import { perSecond } from "./support/stats.ts"


/** A worker for a fresh actor, paused, with its client: the topology exists, nothing consumes. */
export const pausedRuntime = async (env: Env, options: Partial<Runtime.Options> & { readonly handler: Runtime.Options["handler"] }) => {
  const tag = env.unique("b")
  const actor = tag.toLowerCase()
  const runtime = await Runtime.make({
    url: env.url,
    dir: join(env.dir, tag),
    prefix: tag.toUpperCase(),
    actor,
    concurrency: env.settings.concurrency,
    audit: true,
    results: true,
    ...options
  })
  await Runtime.setPaused(runtime, actor, true)
  // a pull that began before the pause could still take what is published next: let it end
  await Bun.sleep(100)
  return { runtime, actor, prefix: tag.toUpperCase(), dir: join(env.dir, tag) }
}

const inputs = (n: number): ReadonlyArray<Runtime.BenchInput> => Array.from({ length: n }, (_, i) => ({ n: i, sentAt: 0 }))

/** Enqueues `n` tasks one call each, `inFlight` at once; returns milliseconds. */
export const enqueueOneByOne = async (runtime: Runtime.Runtime, n: number, inFlight: number) => {
  const all = inputs(n)
  const started = performance.now()
  await runtime.run(Effect.forEach(all, (input) => runtime.client.enqueue(runtime.task, input), { concurrency: inFlight, discard: true }))
  return performance.now() - started
}

/** Enqueues `n` tasks in one `enqueueMany` call; returns milliseconds. */
export const enqueueBatch = async (runtime: Runtime.Runtime, n: number) => {
  const all = inputs(n)
  const started = performance.now()
  const handles = await runtime.run(runtime.client.enqueueMany(runtime.task, all))
  const ms = performance.now() - started
  if (handles.length !== n) throw new Error(`enqueueMany returned ${handles.length} handles for ${n} inputs`)
  return ms
}

const measure = async (env: Env, n: number, how: "one" | "many", checks: Js.Connection): Promise<Sample> => {
  const { runtime, prefix, dir } = await pausedRuntime(env, { handler: () => Effect.void })
  try {
    let ms: number
    if (how === "one") ms = await enqueueOneByOne(runtime, n, env.settings.inFlight)
    else ms = await enqueueBatch(runtime, n)
    const stored = await Js.count(checks.jsm, runtime.stream)
    if (stored !== n) throw new Error(`enqueue (${how}): the stream holds ${stored} messages after ${n} enqueues`)
    return perSecond(n, ms)
  } finally {
    await runtime.close()
    await Js.deleteStreams(checks.jsm, `${prefix}_`, `KV_${prefix}_`)
    rmSync(dir, { recursive: true, force: true })
  }
}

export const section: Section = {
  name: "enqueue",
  title: "msgsys enqueue",
  figures: (s) => [
    { key: "oneByOne", label: `Client.enqueue, ${s.inFlight} in flight`, unit: "tasks/s" },
    { key: "many", label: "client.enqueueMany, one call", unit: "tasks/s" }
  ],
  setup: async (env): Promise<Runner> => {
    const checks = await Js.connect(env.url)
    if (env.settings.warmup > 0) {
      await measure(env, env.settings.warmup, "one", checks)
      await measure(env, env.settings.warmup, "many", checks)
    }
    return {
      run: async () => ({
        oneByOne: await measure(env, env.settings.tasks, "one", checks),
        many: await measure(env, env.settings.tasks, "many", checks)
      }),
      close: () => checks.nc.drain()
    }
  }
}
