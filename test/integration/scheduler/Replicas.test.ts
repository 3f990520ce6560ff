/**
 * Scheduler replicas as processes (`msgsys scheduler`) on a real nats-server, and a worker in this
 * process counting what it runs: each tick is enqueued exactly once however many replicas run,
 * pause and resume, the missed-tick policies after downtime, and a replica killed mid-run.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { Effect, Layer, Option, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import { Nats } from "../../../src/broker/Nats.ts"
import { MsgsysConfig, type MsgsysSettings } from "../../../src/config/MsgsysConfig.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import type * as ScheduleRecord from "../../../src/scheduler/ScheduleRecord.ts"
import * as Schedules from "../../../src/scheduler/Schedules.ts"
import * as Ticks from "../../../src/scheduler/Ticks.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, runTest, type Runtime, start, waitFor } from "../../support/runtimeTools.ts"
import { cleanEnv, killAll, type Proc, spawn } from "../chaos/support.ts"

const h = natsHarness()
afterEach(killAll)

/** One handler run, as the worker saw it. */
interface Run {
  readonly taskId: string
  readonly schedule: string
  /** Tick time in whole seconds since the epoch. */
  readonly tick: number
  readonly missed: number | undefined
}

/** An actor with one task that records every run with its tick. */
const tickApp = () => {
  const actor = actorName("sch")
  // keyed by its input, which a schedule never changes: each tick must run all the same
  const Tick = Task.make(`${actor}.tick`, {
    input: { label: Schema.String },
    output: { ok: Schema.Boolean },
    idempotencyKey: ({ label }) => label
  })
  const runs: Array<Run> = []
  const Ticker = Actor.make(actor, { protocol: [Tick], retry: Retry.none, concurrency: 16 })
  const app = appOf([Ticker, {
    [Tick.subject]: ({ envelope, taskId }) =>
      Effect.sync(() => {
        const info = Option.getOrThrow(Ticks.fromEnvelope(envelope))
        runs.push({ taskId, schedule: info.schedule, tick: info.at / 1000, missed: info.missed })
        return { ok: true }
      })
  }])
  return { Tick, app, runs }
}

/** A `msgsys scheduler` process on the test's server and stream prefix. */
const spawnReplica = (label: string, settings: MsgsysSettings) =>
  spawn(label, ["bun", "src/cli/main.ts", "scheduler"], {
    ...cleanEnv(),
    MSGSYS_NATS_URL: settings.nats.servers.join(","),
    MSGSYS_STREAM_PREFIX: settings.streamPrefix,
    MSGSYS_DATA_DIR: settings.dataDir,
    MSGSYS_HTTP_PORT: "0",
    MSGSYS_LOG_LEVEL: "Debug",
    MSGSYS_LOG_FORMAT: "logfmt"
  })

const ready = (replicas: ReadonlyArray<Proc>) =>
  Effect.promise(() =>
    Promise.all(replicas.map((p) => {
      const deadline = Date.now() + 30_000
      const check = async (): Promise<void> => {
        if (/scheduler \S+ running/.test(p.output())) return
        if (!p.alive()) throw new Error(`${p.label} exited before it was ready:\n${p.output()}`)
        if (Date.now() > deadline) throw new Error(`${p.label} did not start:\n${p.output()}`)
        await Bun.sleep(50)
        return check()
      }
      return check()
    }))
  )

const stop = (p: Proc, signal: "SIGTERM" | "SIGKILL") =>
  Effect.promise(async () => {
    p.proc.kill(signal)
    return p.exited
  })

/** The Schedules service on the runtime's connection. */
const schedulesOf = (rt: Runtime) =>
  Effect.provide(
    Schedules.Schedules,
    Schedules.layer().pipe(Layer.provide(Layer.mergeAll(Layer.succeed(Nats, rt.nats), Layer.succeed(MsgsysConfig, rt.settings)))),
    { local: true }
  )

const everySecond = (name: string, task: Task.Any, missed: ScheduleRecord.MissedTicks): Schedules.ScheduleInput =>
  ({ name, cron: "*/1 * * * * *", task, payload: { label: name }, missed })

const ticksOf = (runs: ReadonlyArray<Run>, schedule: string) =>
  runs.filter((r) => r.schedule === schedule).map((r) => r.tick).sort((a, b) => a - b)

/** Ticks that ran more than once. */
const twice = (runs: ReadonlyArray<Run>) => {
  const n = new Map<string, number>()
  for (const r of runs) n.set(r.taskId, (n.get(r.taskId) ?? 0) + 1)
  return [...n].filter(([, c]) => c > 1).map(([id]) => id)
}

/** Every second from the first tick to the last, each exactly once: no gap, no repeat. */
const consecutive = (ticks: ReadonlyArray<number>) =>
  ticks.length > 0 && ticks.every((t, i) => t === ticks[0]! + i)

const distinct = (runs: ReadonlyArray<Run>, schedule: string) => new Set(ticksOf(runs, schedule)).size

describe("scheduler replicas", () => {
  test("three replicas enqueue exactly one task per tick, over several ticks", () =>
    runTest(Effect.gen(function*() {
      const settings = h.settings()
      const { Tick, app, runs } = tickApp()
      const rt = yield* start(app, settings)
      const replicas = ["r1", "r2", "r3"].map((label) => spawnReplica(label, settings))
      yield* ready(replicas)
      const schedules = yield* schedulesOf(rt)
      // catch-up, so a replica slowed down by this busy machine leaves no gap either
      yield* schedules.add(everySecond("every-second", Tick, { catchUp: 100 }))
      yield* waitFor("8 ticks to run", Effect.sync(() => distinct(runs, "every-second") >= 8), "40 seconds", "50 millis")
      yield* Effect.forEach(replicas, (r) => stop(r, "SIGTERM"), { discard: true })

      const ticks = ticksOf(runs, "every-second")
      expect(twice(runs)).toEqual([])
      expect(consecutive(ticks)).toBe(true)
      // the replicas did race for the ticks: some found a tick enqueued or recorded by another
      const raced = replicas.map((r) => (r.output().match(/was enqueued already|another replica recorded/g) ?? []).length)
      expect(raced.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
      // and every replica ran the schedule
      for (const r of replicas) expect(r.output()).toContain("schedule every-second: cron")
    })), 90_000)

  test("pause stops the ticks on every replica, and resume restarts them without the paused ones (policy skip)", () =>
    runTest(Effect.gen(function*() {
      const settings = h.settings()
      const { Tick, app, runs } = tickApp()
      const rt = yield* start(app, settings)
      const replicas = ["r1", "r2"].map((label) => spawnReplica(label, settings))
      yield* ready(replicas)
      const schedules = yield* schedulesOf(rt)
      yield* schedules.add(everySecond("pausable", Tick, "skip"))
      yield* waitFor("2 ticks to run", Effect.sync(() => distinct(runs, "pausable") >= 2), "30 seconds", "50 millis")

      yield* schedules.pause("pausable")
      const pausedAt = Date.now() / 1000
      yield* Effect.sleep("4 seconds")
      const resumedAt = Date.now() / 1000
      // a tick already on its way at the pause may still land; none after it
      expect(ticksOf(runs, "pausable").filter((t) => t > pausedAt + 1)).toEqual([])
      expect((yield* schedules.get("pausable")).next).toEqual(Option.none())

      yield* schedules.resume("pausable")
      yield* waitFor("2 ticks after the resume", Effect.sync(() => ticksOf(runs, "pausable").filter((t) => t > resumedAt).length >= 2), "30 seconds", "50 millis")
      // the ticks that passed while paused were skipped; the one due at the resume may run
      expect(ticksOf(runs, "pausable").filter((t) => t > pausedAt + 1 && t < resumedAt - 1)).toEqual([])
      expect(twice(runs)).toEqual([])
    })), 90_000)

  test("ticks missed while no replica ran follow each schedule's policy: skip none, once one, catchUp 3 three", () =>
    runTest(Effect.gen(function*() {
      const settings = h.settings()
      const { Tick, app, runs } = tickApp()
      const rt = yield* start(app, settings)
      const schedules = yield* schedulesOf(rt)
      const policies = [["skip", "skip"], ["once", "once"], ["catch-3", { catchUp: 3 }]] as const
      for (const [name, missed] of policies) yield* schedules.add(everySecond(name, Tick, missed))
      const first = spawnReplica("first", settings)
      yield* ready([first])
      yield* waitFor("2 ticks of each schedule", Effect.sync(() => policies.every(([n]) => distinct(runs, n) >= 2)), "30 seconds", "50 millis")

      // a replica stops gracefully on SIGTERM
      expect(yield* stop(first, "SIGTERM")).toBe(0)
      const downAt = Date.now() / 1000
      yield* Effect.sleep("6 seconds") // at least 5 ticks of each schedule pass with no replica
      const second = spawnReplica("second", settings)
      yield* ready([second])
      yield* waitFor("2 ticks of each schedule after the restart", Effect.sync(() =>
        policies.every(([n]) => ticksOf(runs, n).filter((t) => t > downAt + 6).length >= 2)), "30 seconds", "50 millis")

      const catchUps = (name: string) => runs.filter((r) => r.schedule === name && r.missed !== undefined)
      expect(catchUps("skip")).toEqual([])
      expect(catchUps("once").length).toBe(1)
      expect(catchUps("catch-3").length).toBe(3)
      // each stands for at least the 5 ticks that passed
      for (const r of [...catchUps("once"), ...catchUps("catch-3")]) expect(r.missed!).toBeGreaterThanOrEqual(5)
      // catch-up runs are the latest missed ticks, right before the first on-time one
      const c3 = catchUps("catch-3").map((r) => r.tick).sort()
      expect(consecutive(c3)).toBe(true)
      expect(ticksOf(runs, "catch-3")).toContain(c3[2]! + 1)
      expect(twice(runs)).toEqual([])
      expect(second.output()).toMatch(/schedule once: \d+ tick\(s\) missed before .*policy once: enqueued 1 of them/)
    })), 90_000)

  test("a replica killed with SIGKILL mid-run does not stop the ticks, nor make one run twice", () =>
    runTest(Effect.gen(function*() {
      const settings = h.settings()
      const { Tick, app, runs } = tickApp()
      const rt = yield* start(app, settings)
      const replicas = ["r1", "r2", "r3"].map((label) => spawnReplica(label, settings))
      yield* ready(replicas)
      const schedules = yield* schedulesOf(rt)
      yield* schedules.add(everySecond("survivor", Tick, { catchUp: 100 }))
      yield* waitFor("3 ticks to run", Effect.sync(() => distinct(runs, "survivor") >= 3), "30 seconds", "50 millis")

      expect(yield* stop(replicas[0]!, "SIGKILL")).toBe(137)
      const killedAt = Date.now() / 1000
      yield* waitFor("5 ticks after the kill", Effect.sync(() => ticksOf(runs, "survivor").filter((t) => t > killedAt).length >= 5), "30 seconds", "50 millis")

      const ticks = ticksOf(runs, "survivor")
      expect(twice(runs)).toEqual([])
      expect(consecutive(ticks)).toBe(true)
    })), 90_000)
})
