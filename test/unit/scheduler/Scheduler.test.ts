/**
 * Scheduler replicas in one process on the TestClock, with the in-memory store and a client that
 * records enqueues and deduplicates ids the way a stream does (within a duplicate window).
 */
import { describe, expect } from "bun:test"
import { Clock, Duration, Effect, Exit, Layer, Option, Result, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { BrokerError } from "../../../src/broker/BrokerError.ts"
import { Nats } from "../../../src/broker/Nats.ts"
import * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import type * as ScheduleRecord from "../../../src/scheduler/ScheduleRecord.ts"
import * as Scheduler from "../../../src/scheduler/Scheduler.ts"
import * as Schedules from "../../../src/scheduler/Schedules.ts"
import { ScheduleStore } from "../../../src/scheduler/ScheduleStore.ts"
import * as ScheduleStoreModule from "../../../src/scheduler/ScheduleStore.ts"
import * as Ticks from "../../../src/scheduler/Ticks.ts"
import * as Client from "../../../src/client/Client.ts"
import * as Task from "../../../src/task/Task.ts"
import { effectTest as effectTestLoud } from "../../support/harness.ts"
import { captureLogs, type LogLine } from "../../support/runtimeTools.ts"

/** On the TestClock, with the replicas' logs kept out of the test output. */
const effectTest = <A, E>(name: string, body: () => Effect.Effect<A, E>) =>
  effectTestLoud(name, () => Effect.provide(body(), captureLogs()))

/** What the fake stream stored: one entry per id, as the dedup window allows. */
interface Stored {
  readonly id: string
  readonly subject: string
  readonly headers: Readonly<Record<string, string>>
  readonly at: number
}

/** A client whose enqueues land in `stored`; an id seen within `window` is a duplicate. */
const fakeClient = (stored: Array<Stored>, window = Duration.minutes(2), fail?: () => boolean) => {
  const seen = new Map<string, number>()
  const enqueueJson: Client.Client["Service"]["enqueueJson"] = (subject, _json, options = {}) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (fail?.()) return yield* new BrokerError({ operation: "publish", reason: "broker down" })
      const id = options.id!
      const first = seen.get(id)
      if (first !== undefined && now - first < Duration.toMillis(window)) return { id, duplicate: true }
      seen.set(id, now)
      stored.push({ id, subject, headers: options.headers ?? {}, at: now })
      return { id, duplicate: false }
    })
  const enqueue: Client.Client["Service"]["enqueue"] = (task, input, options) =>
    Effect.map(enqueueJson(task.subject, input, options), (r) => ({ ...r, task }))
  return Layer.succeed(Client.Client, Client.Client.of({ enqueueJson, enqueue } as unknown as Client.Client["Service"]))
}

const record = (name: string, fields: Partial<Parameters<typeof Schedules.makeRecord>[0]> = {}, now = 0) =>
  Result.getOrThrow(Schedules.makeRecord({ name, cron: "*/1 * * * * *", subject: "etl.tick", payload: {}, ...fields }, now))

/** Starts a replica in its own scope; returns its closer. */
const replica = (store: ScheduleStore["Service"], client: Layer.Layer<Client.Client>, options: Scheduler.Options = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Scheduler.make(options).pipe(
      Effect.provideService(ScheduleStore, store),
      Effect.provide(client),
      Scope.provide(scope)
    )
    return Scope.close(scope, Exit.void)
  })

/** A fresh store per test (layers are memoized across `provide` unless local). */
const storeOf = Effect.provide(ScheduleStore, ScheduleStoreModule.layerMemory, { local: true })

/** Ticks (seconds since the epoch) stored for `name`, with how many times each. */
const ticksOf = (stored: ReadonlyArray<Stored>, name: string) => {
  const counts = new Map<number, number>()
  for (const s of stored) {
    if (s.headers[Ticks.Headers.Schedule] !== name) continue
    const at = Date.parse(s.headers[Ticks.Headers.Tick]!) / 1000
    counts.set(at, (counts.get(at) ?? 0) + 1)
  }
  return counts
}

const seconds = (n: number) => Duration.seconds(n)

/** Advances the TestClock a second at a time, so each sleeper wakes at its own tick. */
const run = (n: number) => Effect.forEach(Array.from({ length: n }), () => TestClock.adjust(seconds(1)), { discard: true })

describe("scheduler replicas", () => {
  effectTest("three replicas enqueue each tick exactly once, with no gaps", () =>
    Effect.gen(function*() {
      const store = yield* storeOf
      const stored: Array<Stored> = []
      const client = fakeClient(stored)
      yield* store.create(record("every-second"))
      const closers = yield* Effect.all([replica(store, client), replica(store, client), replica(store, client)])
      yield* run(10)
      const ticks = ticksOf(stored, "every-second")
      expect([...ticks.keys()]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      expect([...ticks.values()].every((n) => n === 1)).toBe(true)
      expect(Option.getOrThrow(yield* store.lastTick("every-second")).value.at).toBe(10_000)
      yield* Effect.all(closers)
    }))

  effectTest("a replica that starts after the dedup window does not enqueue ticks another recorded", () =>
    Effect.gen(function*() {
      const store = yield* storeOf
      const stored: Array<Stored> = []
      // a stream that forgets ids at once: only the recorded last tick stands between a late
      // replica and a duplicate
      const client = fakeClient(stored, Duration.zero)
      yield* store.create(record("s", { missed: { catchUp: 1000 } }))
      const first = yield* replica(store, client)
      yield* run(5)
      yield* first
      const second = yield* replica(store, client)
      yield* run(3)
      yield* second
      const ticks = ticksOf(stored, "s")
      expect([...ticks.keys()]).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      expect([...ticks.values()].every((n) => n === 1)).toBe(true)
    }))

  effectTest("after all replicas were down, missed ticks follow each schedule's policy: skip none, once one, catchUp 3 three", () =>
    Effect.gen(function*() {
      const store = yield* storeOf
      const stored: Array<Stored> = []
      const client = fakeClient(stored)
      for (const [name, missed] of [["skip", "skip"], ["once", "once"], ["catch", { catchUp: 3 }]] as const) {
        yield* store.create(record(name, { missed }))
      }
      const up = yield* replica(store, client)
      yield* run(2)
      yield* up
      yield* TestClock.adjust(seconds(10)) // ticks 3..12 pass with no replica
      yield* TestClock.adjust(Duration.millis(300))
      const down = yield* replica(store, client)
      yield* run(2)
      yield* down
      const missedRuns = (name: string) =>
        stored.filter((s) => s.headers[Ticks.Headers.Schedule] === name && s.headers[Ticks.Headers.Missed] !== undefined)
          .map((s) => [Date.parse(s.headers[Ticks.Headers.Tick]!) / 1000, s.headers[Ticks.Headers.Missed]])
      expect(missedRuns("skip")).toEqual([])
      expect(missedRuns("once")).toEqual([[11, "9"]])
      expect(missedRuns("catch")).toEqual([[9, "9"], [10, "9"], [11, "9"]])
      // the on-time tick and the ones after it run on every schedule
      for (const name of ["skip", "once", "catch"]) {
        const ticks = [...ticksOf(stored, name).keys()]
        expect(ticks.slice(0, 2)).toEqual([1, 2])
        expect(ticks.slice(-3)).toEqual([12, 13, 14])
      }
    }))

  effectTest("pause stops ticks and resume restarts them, without a burst when the policy is skip", () =>
    Effect.gen(function*() {
      const store = yield* storeOf
      const stored: Array<Stored> = []
      const client = fakeClient(stored)
      const config = Layer.succeed(MsgsysConfig.MsgsysConfig, MsgsysConfig.defaults)
      const schedules = yield* Schedules.make().pipe(
        Effect.provideService(ScheduleStore, store),
        Effect.provide(config),
        // no NATS: the record is written directly, so the service never looks up a stream
        Effect.provideService(Nats, {} as never)
      )
      yield* store.create(record("p", { missed: "skip" }))
      const closer = yield* replica(store, client)
      yield* run(3)
      yield* schedules.pause("p")
      yield* run(5)
      const whilePaused = [...ticksOf(stored, "p").keys()]
      expect(whilePaused).toEqual([1, 2, 3])
      yield* TestClock.adjust(Duration.millis(500))
      yield* schedules.resume("p")
      yield* run(3)
      // 4..7 passed while paused and are skipped; 8, half a second old at the resume, is on time
      expect([...ticksOf(stored, "p").keys()]).toEqual([1, 2, 3, 8, 9, 10, 11])
      yield* closer
    }))

  effectTest("a failing enqueue is retried until it succeeds, and the tick is enqueued once", () =>
    Effect.gen(function*() {
      const store = yield* storeOf
      const stored: Array<Stored> = []
      let failures = 3
      const client = fakeClient(stored, Duration.minutes(2), () => failures-- > 0)
      yield* store.create(record("flaky", { missed: { catchUp: 100 } }))
      const closer = yield* replica(store, client)
      yield* run(5)
      const ticks = ticksOf(stored, "flaky")
      expect([...ticks.keys()]).toEqual([1, 2, 3, 4, 5])
      expect([...ticks.values()].every((n) => n === 1)).toBe(true)
      yield* closer
    }))

  effectTest("a tick whose input no longer matches its task's schema is logged as an error and passed over, and the next ticks go on", () => {
    const logs: Array<LogLine> = []
    return Effect.gen(function*() {
      const store = yield* storeOf
      const stored: Array<Stored> = []
      const client = fakeClient(stored)
      const Tick = Task.make("etl.tick", { input: { n: Schema.Int }, output: { ok: Schema.Boolean } })
      // added when the input was { label }, before the task changed
      yield* store.create(record("stale", { payload: { label: "x" } }))
      yield* store.create(record("fine", { payload: { n: 1 } }))
      const closer = yield* replica(store, client, { tasks: [Tick] })
      yield* run(3)
      expect(ticksOf(stored, "stale").size).toBe(0)
      expect([...ticksOf(stored, "fine").keys()]).toEqual([1, 2, 3])
      const errors = logs.filter((l) => l.level === "Error").map((l) => l.message)
      expect(errors.length).toBe(3)
      expect(errors[0]).toContain("schedule stale: tick 1970-01-01T00:00:01.000Z cannot be enqueued and is passed over: " +
        "its payload no longer matches the input of etl.tick (at .n: Missing key)")
      expect(Option.getOrThrow(yield* store.lastTick("stale")).value.at).toBe(3000)
      yield* closer
    }).pipe(Effect.provide(captureLogs(logs)))
  })

  effectTest("a changed schedule applies without a restart: a new cron counts from the change", () =>
    Effect.gen(function*() {
      const store = yield* storeOf
      const stored: Array<Stored> = []
      const client = fakeClient(stored)
      yield* store.create(record("c"))
      const closer = yield* replica(store, client)
      yield* run(2)
      const current = Option.getOrThrow(yield* store.get("c"))
      const now = yield* Clock.currentTimeMillis
      const changed: ScheduleRecord.ScheduleRecord = { ...record("c", { cron: "*/5 * * * * *" }, now), createdAt: 0 }
      expect(yield* store.update(changed, current.revision)).toBe(true)
      yield* run(10)
      expect([...ticksOf(stored, "c").keys()]).toEqual([1, 2, 5, 10])
      yield* closer
    }))
})
