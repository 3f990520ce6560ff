/**
 * `drain`: one worker working off a backlog. N no-op tasks are enqueued first into a paused
 * worker (untimed); the clock starts when the actor is resumed and stops when the last task is
 * settled: every handler has run AND the work-queue stream is empty, i.e. every message was acked
 * (msgsys acks only after the outcome, the audit row and the status are stored). One actor,
 * concurrency `--concurrency` (256), `Retry.none`, SQLite idempotency on throughout.
 * - results: audit in SQLite, each task's result stored;
 * - results off: the same with `result: false` on the task;
 * - audit off: results stored, `AuditLog.layerNoop`.
 */
import { Effect } from "effect"
import { rmSync } from "node:fs"
import { enqueueBatch, pausedRuntime } from "./enqueue.ts"
import { within } from "./support/clock.ts"
import * as Js from "./support/jetstream.ts"
import * as Runtime from "./support/runtime.ts"
import type { Env, Runner, Sample, Section } from "./support/Section.ts"
import { perSecond } from "./support/stats.ts"

type Variant = "results" | "resultsOff" | "auditOff"

const measure = async (env: Env, n: number, variant: Variant, checks: Js.Connection): Promise<Sample> => {
  const handled = Runtime.counter()
  const { runtime, actor, prefix, dir } = await pausedRuntime(env, {
    audit: variant !== "auditOff",
    results: variant !== "resultsOff",
    handler: () => Effect.sync(handled.tick)
  })
  try {
    await enqueueBatch(runtime, n)
    const waiting = await Js.count(checks.jsm, runtime.stream)
    if (waiting !== n || handled.count !== 0) {
      throw new Error(`drain: before the worker resumed, ${waiting} of ${n} tasks waited and ${handled.count} had run`)
    }

    const started = performance.now()
    await Runtime.setPaused(runtime, actor, false)
    await within(handled.reached(n), Js.stallTimeout(n), () => `drain stalled: ${handled.count} of ${n} tasks ran`)
    await Js.waitForCount(checks.jsm, runtime.stream, 0, Js.stallTimeout(n))
    const ms = performance.now() - started
    if (handled.count !== n) throw new Error(`drain: ${handled.count} handler runs for ${n} tasks`)
    return perSecond(n, ms)
  } finally {
    await runtime.close()
    await Js.deleteStreams(checks.jsm, `${prefix}_`, `KV_${prefix}_`)
    rmSync(dir, { recursive: true, force: true })
  }
}

export const section: Section = {
  name: "drain",
  title: "msgsys drain (one worker)",
  figures: (s) => [
    { key: "results", label: `audit + idempotency, results stored, concurrency ${s.concurrency}`, unit: "tasks/s" },
    { key: "resultsOff", label: "the same, result: false", unit: "tasks/s" },
    { key: "auditOff", label: "results stored, audit off (layerNoop)", unit: "tasks/s" }
  ],
  setup: async (env): Promise<Runner> => {
    const checks = await Js.connect(env.url)
    if (env.settings.warmup > 0) await measure(env, env.settings.warmup, "results", checks)
    return {
      run: async () => ({
        results: await measure(env, env.settings.tasks, "results", checks),
        resultsOff: await measure(env, env.settings.tasks, "resultsOff", checks),
        auditOff: await measure(env, env.settings.tasks, "auditOff", checks)
      }),
      close: () => checks.nc.drain()
    }
  }
}
