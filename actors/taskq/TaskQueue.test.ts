/**
 * The task-queue backend on a real nats-server: the seed's four storage roles through msgsys —
 * priorities, results that expire, lifecycle events kept 30 days / 10M, schedules with pause and
 * a "ready" listing.
 */
import { Database } from "bun:sqlite"
import { jetstreamManager } from "@nats-io/jetstream"
import { describe, expect, test } from "bun:test"
import { Context, Effect, Layer } from "effect"
import { MsgsysConfig } from "msgsys"
import { Subjects } from "msgsys/admin"
import * as DataDir from "../shared/DataDir.ts"
import { eventually, natsServer, plainConnection, quietLogs } from "../support/TestRuntime.ts"
import { app, Backend, BackendLive, EventLogLive } from "./TaskQueue.ts"

const nats = natsServer()

describe("the task-queue backend", () => {
  test("high priority runs first, results expire after their TTL, every task leaves its lifecycle in a 30-day/10M stream, and schedules pause, resume and list what is ready", () =>
    Effect.runPromise(Effect.gen(function*() {
      const dir = nats.dir()
      const data = DataDir.layer(dir)
      // one slot, so the order the queue hands tasks out is the order they run; results kept 3 s
      const ctx = yield* nats.start(app(data, { concurrency: 1 }), nats.settings(dir, { resultTtl: "3 seconds" }), { scheduler: true })
      const backend = yield* Effect.provideContext(
        Layer.build(BackendLive.pipe(Layer.provide(Layer.provide(EventLogLive, data)))),
        ctx
      ).pipe(Effect.map((c) => Context.get(c, Backend)))

      // 1. the queue: with its one slot busy, tasks of three priorities wait; high goes first
      const busy = yield* backend.enqueue("sleep", [400])
      yield* eventually("the slot to be busy", Effect.map(backend.events(busy), (es) => es.some((e) => e.type === "started")))
      const low = yield* backend.enqueue("add", [1, 1], { priority: "low" })
      const normal = yield* backend.enqueue("multiply", [6, 7])
      const high = yield* backend.enqueue("fibonacci", [30], { priority: "high" })
      const results = yield* Effect.forEach([high, normal, low], (id) => backend.waitResult(id, "10 seconds"))
      expect(results).toEqual([
        { state: "completed", value: 832040 },
        { state: "completed", value: 42 },
        { state: "completed", value: 2 }
      ])
      yield* eventually("their lifecycles", Effect.map(Effect.forEach([high, normal, low], backend.events), (es) => es.every((e) => e.length === 3)))
      const startedAt = yield* Effect.forEach([high, normal, low], (id) =>
        Effect.map(backend.events(id), (es) => es.find((e) => e.type === "started")!.at))
      expect([...startedAt].sort((a, b) => a - b)).toEqual(startedAt)

      // 2. lifecycle events: a task that fails once has enqueued, started, failed, started, completed
      const flaky = yield* backend.enqueue("flaky", ["ok"])
      expect(yield* backend.waitResult(flaky, "10 seconds")).toEqual({ state: "completed", value: "ok" })
      yield* eventually("flaky's lifecycle", Effect.map(backend.events(flaky), (es) => es.length === 5))
      expect((yield* backend.events(flaky)).map((e) => `${e.type}@${e.attempt}`)).toEqual([
        "enqueued@0", "started@1", "failed@1", "started@2", "completed@2"
      ])
      // an unknown function fails for good at once
      const unknown = yield* backend.enqueue("no_such_function", [])
      const failed = yield* backend.waitResult(unknown, "10 seconds")
      expect(failed.state).toBe("failed")
      // the lifecycle stream keeps 30 days and at most 10 million events
      const names = Subjects.make(Context.get(ctx, MsgsysConfig.MsgsysConfig).streamPrefix)
      const plain = yield* plainConnection(nats.url)
      const info = yield* Effect.promise(async () => (await jetstreamManager(plain)).streams.info(names.eventStream("omniq-events")))
      expect([info.config.max_age, info.config.max_msgs]).toEqual([30 * 24 * 3600 * 1e9, 10_000_000])

      // 3. results expire with the bucket's TTL
      yield* eventually("the first result to expire", Effect.map(backend.result(high), (r) => r.state === "expired"), 15_000)

      // 4. schedules: an interval runs; paused, it is neither ready nor run; resumed, it runs again
      yield* backend.schedule("every-second", { every: "1 second" }, "add", [2, 3])
      yield* backend.schedule("nightly", { cron: "0 3 * * *", timeZone: "Europe/Berlin" }, "slugify", ["Nightly Report"])
      // due within 2 s: the interval; the nightly cron is not (unless this runs just before 03:00 in Berlin)
      expect((yield* backend.ready("2 seconds")).map((s) => s.name)).toContain("every-second")
      const ran = () => Effect.sync(() => {
        const rows = new Database(`${dir}/omniq/events.sqlite`, { readonly: true })
        try {
          return (rows.query("SELECT count(*) AS n FROM events WHERE type = 'completed' AND task_id LIKE 'sched-every-second-%'").get() as { n: number }).n
        } finally {
          rows.close()
        }
      })
      yield* eventually("two scheduled runs", Effect.map(ran(), (n) => n >= 2), 10_000)
      yield* backend.pause("every-second")
      expect((yield* backend.ready("1 hour")).map((s) => s.name)).not.toContain("every-second")
      yield* Effect.sleep("300 millis")
      const whilePaused = yield* ran()
      yield* Effect.sleep("1500 millis")
      expect(yield* ran()).toBe(whilePaused)
      yield* backend.resume("every-second")
      expect((yield* backend.ready("2 seconds")).map((s) => s.name)).toContain("every-second")
      yield* eventually("a run after resuming", Effect.map(ran(), (n) => n > whilePaused), 10_000)
    }).pipe(Effect.scoped, Effect.provide(quietLogs))), 60_000)
})
