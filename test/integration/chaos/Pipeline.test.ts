/**
 * Pipelines when workers die: a worker killed between two steps (after a step's outcome is stored,
 * before or after its next step is enqueued, before its ack) and workers SIGKILLed at random while
 * pipelines run. Each pipeline finishes once, resumes at the step after the last one stored (never
 * from the start), and no step completes twice: each step writes a chaos_ledger row in the commit
 * of its outcome, so a second completion would be a second row.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { Duration, Effect } from "effect"
import { join } from "node:path"
import * as Pipelines from "../../../src/pipeline/Pipelines.ts"
import { define } from "../../fixtures/chaosApp.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import {
  auditRows,
  clientRuntime,
  killAll,
  ledgerCounts,
  readLog,
  ready,
  spawnWorker,
  tally,
  waitFor
} from "./support.ts"

const h = natsHarness()
afterEach(killAll)

const steps = (id: string) => [1, 2, 3].map((k) => `${id}/${k}`)

const killedBetweenSteps = (failpoint: "before-continue" | "before-ack") => async () => {
  const settings = h.settings({ ackWait: Duration.seconds(3) })
  const actor = actorName(failpoint === "before-ack" ? "pipack" : "pipcon")
  const { Hops } = define(actor)
  const log = join(settings.dataDir, "chaos.log")
  const doomed = spawnWorker({ label: "doomed", settings, actor, log, env: { MSGSYS_FAILPOINTS: failpoint } })
  await ready(doomed)

  const rt = clientRuntime(settings)
  try {
    const run = await rt.runPromise(Pipelines.Pipelines.use((p) => p.start(Hops, { id: "p", ms: 50, trail: [] })))
    // step 1 ran and its outcome is stored; the worker kills itself before step 2 is enqueued
    // (before-continue) or after, before step 1's ack (before-ack)
    expect(await doomed.exited).toBe(137)
    const atKill = tally(log, steps("p"))
    expect(atKill.done.get("p/1")).toBe(1)
    expect(atKill.started.get("p/2") ?? 0).toBe(0)

    const healthy = spawnWorker({ label: "healthy", settings, actor, log })
    await ready(healthy)
    const out = await rt.runPromise(Pipelines.Pipelines.use((p) => p.result(run, "30 seconds")))
    expect(out).toEqual({ id: "p", ms: 50, trail: ["hop1", "hop2", "hop3"] })

    // resumed at step 2, not from the start: step 1 ran on the doomed worker only, 2 and 3 on the healthy one
    const t = tally(log, steps("p"))
    expect(t.started.get("p/1")).toBe(1)
    for (const s of steps("p")) expect(t.done.get(s)).toBe(1)
    const pids = new Map(t.lines.filter((l) => l.kind === "done").map((l) => [l.id, l.pid]))
    expect([pids.get("p/1"), pids.get("p/2"), pids.get("p/3")]).toEqual([doomed.pid, healthy.pid, healthy.pid])
    expect(Object.fromEntries(ledgerCounts(settings.sqlitePath))).toEqual({ "p/1": 1, "p/2": 1, "p/3": 1 })
    // step 1 came back to the healthy worker, which found it done and went on without running it
    const first = auditRows(settings.sqlitePath, `${run.id}.1`).filter((r) => r.step !== "started" && r.step !== "enqueued")
    expect(first).toEqual([{ step: "succeeded", attempt: 1 }, { step: "skipped_duplicate", attempt: 2 }])
    const status = await rt.runPromise(Pipelines.Pipelines.use((p) => p.status(run.id)))
    expect(status.steps.map((s) => s.status)).toEqual(["succeeded", "succeeded", "succeeded"])
  } finally {
    await rt.dispose()
  }
}

describe("pipelines and dying workers", () => {
  test(
    "a worker killed after a step's outcome is stored, before its next step is enqueued: another worker enqueues it; the pipeline finishes once and every step ran once",
    killedBetweenSteps("before-continue"),
    60_000
  )

  test(
    "a worker killed after a step's next step is enqueued, before the step's ack: the copy enqueued again is dropped; the pipeline finishes once and every step ran once",
    killedBetweenSteps("before-ack"),
    60_000
  )

  test(
    "workers SIGKILLed while pipelines run: every pipeline finishes once, and every step completed exactly once",
    async () => {
      const settings = h.settings({ ackWait: Duration.seconds(3) })
      const actor = actorName("pipkill")
      const { Hops } = define(actor)
      const log = join(settings.dataDir, "chaos.log")
      const env = { CHAOS_CONCURRENCY: "8" }
      const workers = ["w1", "w2"].map((label) => spawnWorker({ label, settings, actor, log, env }))
      await Promise.all(workers.map((w) => ready(w)))

      const rt = clientRuntime(settings)
      try {
        const ids = Array.from({ length: 24 }, (_, i) => `p${i}`)
        const runs = await rt.runPromise(Effect.forEach(ids, (id) =>
          Pipelines.Pipelines.use((p) => p.start(Hops, { id, ms: 150, trail: [] })), { concurrency: "unbounded" }))

        // kill one worker once pipelines are between their steps, then the other once the first is replaced
        for (const [victim, after] of [[workers[0]!, 12], [workers[1]!, 36]] as const) {
          await waitFor(`${after} steps done`, () => readLog(log).filter((l) => l.kind === "done").length >= after, 30_000, 20)
          victim.proc.kill("SIGKILL")
          expect(await victim.exited).toBe(137)
          // the kill came between steps: some pipelines had finished a step and not their last
          const done = new Set(readLog(log).filter((l) => l.kind === "done").map((l) => l.id))
          expect(ids.filter((id) => done.has(`${id}/1`) && !done.has(`${id}/3`)).length).toBeGreaterThan(0)
          const replacement = spawnWorker({ label: `${victim.label}b`, settings, actor, log, env })
          await ready(replacement)
        }

        const outs = await rt.runPromise(Effect.forEach(runs, (run) =>
          Pipelines.Pipelines.use((p) => p.result(run, "60 seconds")), { concurrency: "unbounded" }))
        expect(outs.map((o) => o.trail)).toEqual(ids.map(() => ["hop1", "hop2", "hop3"]))
        expect(outs.map((o) => o.id)).toEqual(ids)

        // every step completed once (a row per completion, committed with the outcome)
        const rows = ledgerCounts(settings.sqlitePath)
        const all = ids.flatMap(steps)
        expect(all.filter((s) => rows.get(s) !== 1).map((s) => `${s}:${rows.get(s) ?? 0}`)).toEqual([])
        expect(rows.size).toBe(all.length)
        expect(tally(log, all).lost).toEqual([])
      } finally {
        await rt.dispose()
      }
    },
    120_000
  )
})
