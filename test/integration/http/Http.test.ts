/**
 * The worker's HTTP port against a real nats-server and a real SQLite file: /healthz, /readyz
 * (ready, and 503 naming the reason when a part is broken: the SQLite file locked by another
 * connection, the dead-letter stream full, the broker gone), /metrics as strict Prometheus text
 * with the series the runtime promises, and a port already taken.
 */
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Exit, Layer, Option, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as EmbeddedNats from "../../../src/broker/EmbeddedNats.ts"
import * as Nats from "../../../src/broker/Nats.ts"
import * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import * as HttpServer from "../../../src/http/HttpServer.ts"
import * as App from "../../../src/app/App.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as KvScheduleStore from "../../../src/scheduler/KvScheduleStore.ts"
import * as Scheduler from "../../../src/scheduler/Schedules.ts"
import * as Task from "../../../src/task/Task.ts"
import * as TaskError from "../../../src/task/TaskError.ts"
import { natsHarness, settingsFor, startServer, tempDir } from "../../support/harness.ts"
import * as Prometheus from "../../support/prometheus.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, deadLetters, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

const port = () => Effect.runPromise(EmbeddedNats.freePort)

const get = (url: string) =>
  Effect.promise(async () => {
    const r = await fetch(url)
    return { status: r.status, body: await r.text(), type: r.headers.get("content-type") ?? "" }
  })

/** An actor whose task succeeds, fails once then succeeds, or fails permanently, as its input says. */
const setup = () => {
  const name = actorName("http")
  const Work = Task.make(`${name}.work`, { input: { mode: Schema.String }, output: { ok: Schema.Boolean } })
  const A = Actor.make(name, { protocol: [Work], retry: Retry.exponential({ base: "50 millis", maxAttempts: 3, jitter: false }) })
  const failedOnce = new Set<string>()
  const app = appOf([A, {
    [Work.subject]: ({ input, taskId }) =>
      Effect.suspend(() => {
        const mode = (input as { mode: string }).mode
        if (mode === "permanent") return Effect.fail(TaskError.permanent(new Error("cannot ever work")))
        if (mode === "flaky" && !failedOnce.has(taskId)) {
          failedOnce.add(taskId)
          return Effect.fail(new Error("flaky the first time"))
        }
        return Effect.succeed({ ok: true })
      })
  }])
  return { name, Work, app }
}

describe("the HTTP port", () => {
  test("/healthz answers, /readyz is ready with every check named, the dashboard and its API are served", async () => {
    const { name, app } = setup()
    const settings = h.settings({ httpPort: await port(), httpHost: "127.0.0.1" })
    const base = `http://127.0.0.1:${settings.httpPort}`
    await runTest(Effect.gen(function*() {
      yield* start(app, settings)
      expect(yield* get(`${base}/healthz`)).toMatchObject({ status: 200, body: "ok\n" })
      yield* waitFor("ready", Effect.map(get(`${base}/readyz`), (r) => r.status === 200))
      const ready = yield* get(`${base}/readyz`)
      expect(ready.body.split("\n")[0]).toBe("ready")
      for (const check of ["nats", "consumers", "sqlite", "dead-letters"]) expect(ready.body).toContain(`ok   ${check}:`)
      const page = yield* get(`${base}/`)
      expect(page.status).toBe(200)
      expect(page.type).toContain("text/html")
      expect(page.body).toContain("/dashboard.js")
      // offline: nothing is loaded from another host
      expect(page.body).not.toMatch(/(src|href)="(https?:)?\/\//)
      expect((yield* get(`${base}/dashboard.js`)).type).toContain("javascript")
      const overview = JSON.parse((yield* get(`${base}/api/overview`)).body)
      expect(overview.worker.actors.map((a: { name: string }) => a.name)).toEqual([name])
      expect(overview.report.actors.find((a: { name: string }) => a.name === name)).toMatchObject({ queued: 0, workers: 1 })
      // a changing request without the action header is refused (no cross-site replays)
      const refused = yield* Effect.promise(() => fetch(`${base}/api/dead-letters/1/replay`, { method: "POST" }))
      expect(refused.status).toBe(403)
      expect((yield* get(`${base}/nope`)).status).toBe(404)
    }))
  }, 30_000)

  test("/metrics is valid Prometheus text with messages by outcome, durations, retries, dead letters, lag, pools, restarts and SQLite commits", async () => {
    const { name, Work, app } = setup()
    const settings = h.settings({ httpPort: await port(), httpHost: "127.0.0.1" })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      for (const mode of ["ok", "flaky", "permanent"]) yield* rt.client.enqueue(Work, { mode })
      yield* waitFor("the dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length === 1))
      yield* waitFor("the flaky task's retry to succeed", Effect.gen(function*() {
        const text = (yield* get(`http://127.0.0.1:${settings.httpPort}/metrics`)).body
        return text.split("\n").filter((l) => l.startsWith("msgsys_messages_total{") && l.includes(`actor="${name}"`) &&
          l.includes('outcome="succeeded"')).some((l) => l.endsWith(" 2"))
      }))
      const scraped = yield* get(`http://127.0.0.1:${settings.httpPort}/metrics`)
      expect(scraped.type).toContain("text/plain; version=0.0.4")
      const families = Prometheus.parse(scraped.body)
      const series = (family: string, labels: Record<string, string>, sample = family) =>
        families.get(family)?.samples.filter((s) =>
          s.name === sample && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? []
      const value = (family: string, labels: Record<string, string>) => series(family, labels).reduce((n, s) => n + s.value, 0)

      const subject = Work.subject
      expect(families.get("msgsys_messages_total")?.type).toBe("counter")
      expect(value("msgsys_messages_total", { actor: name, subject, outcome: "succeeded" })).toBe(2)
      expect(value("msgsys_messages_total", { actor: name, subject, outcome: "retry" })).toBe(1)
      expect(value("msgsys_messages_total", { actor: name, subject, outcome: "dead" })).toBe(1)
      expect(families.get("msgsys_handler_duration_ms")?.type).toBe("histogram")
      expect(series("msgsys_handler_duration_ms", { actor: name, subject }, "msgsys_handler_duration_ms_count")[0]?.value).toBe(4)
      expect(value("msgsys_retries_total", { actor: name, subject })).toBe(1)
      expect(value("msgsys_dead_letters_total", { actor: name, reason: "permanent" })).toBe(1)
      expect(value("msgsys_dlq_refused_total", { actor: name })).toBe(0)
      for (const consumer of ["high", "normal", "low", "delayed"]) {
        expect(series("msgsys_consumer_pending", { actor: name, consumer })).toHaveLength(1)
        expect(series("msgsys_consumer_ack_pending", { actor: name, consumer })).toHaveLength(1)
      }
      expect(families.get("msgsys_consumer_pending")?.type).toBe("gauge")
      expect(series("msgsys_pool_in_flight", { pool: "fast" })).toHaveLength(1)
      expect(series("msgsys_pool_size", { pool: "fast" })[0]?.value).toBe(32)
      expect(series("msgsys_worker_in_flight", { actor: name })).toHaveLength(1)
      expect(series("msgsys_supervisor_restarts_total", { actor: name, loop: `consume loop of ${name}` })).toHaveLength(1)
      expect(value("msgsys_sqlite_commits_total", {})).toBeGreaterThan(0)
      expect(families.get("msgsys_sqlite_batch_operations")?.type).toBe("histogram")
      expect(families.get("msgsys_sqlite_commit_ms")?.type).toBe("histogram")
    }))
  }, 30_000)

  test("/readyz answers 503 naming the SQLite file while another connection holds its write lock, and ready again after", async () => {
    const { app } = setup()
    const settings = h.settings({ httpPort: await port(), httpHost: "127.0.0.1" })
    const base = `http://127.0.0.1:${settings.httpPort}`
    await runTest(Effect.gen(function*() {
      yield* start(app, settings)
      yield* waitFor("ready", Effect.map(get(`${base}/readyz`), (r) => r.status === 200))
      const other = new Database(settings.sqlitePath)
      other.run("BEGIN IMMEDIATE")
      try {
        const locked = yield* get(`${base}/readyz`)
        expect(locked.status).toBe(503)
        expect(locked.body.split("\n")[0]).toBe("not ready")
        expect(locked.body).toContain(`FAIL sqlite: no answer within 2s: a write to ${settings.sqlitePath} waits`)
        expect(locked.body).toContain("ok   nats:")
      } finally {
        other.run("COMMIT")
        other.close()
      }
      yield* waitFor("ready again", Effect.map(get(`${base}/readyz`), (r) => r.status === 200))
    }))
  }, 30_000)

  test("/readyz answers 503 naming NATS when the broker is gone, /healthz still answers", async () => {
    const server = await startServer()
    const dir = tempDir()
    const { app } = setup()
    const settings = settingsFor(server.server.url, dir, {
      httpPort: await port(),
      httpHost: "127.0.0.1",
      shutdownGrace: Duration.millis(200)
    })
    const base = `http://127.0.0.1:${settings.httpPort}`
    try {
      await runTest(Effect.gen(function*() {
        yield* start(app, settings)
        yield* waitFor("ready", Effect.map(get(`${base}/readyz`), (r) => r.status === 200))
        yield* Effect.promise(() => server.close())
        yield* waitFor("not ready", Effect.map(get(`${base}/readyz`), (r) => r.status === 503))
        const r = yield* get(`${base}/readyz`)
        expect(r.body).toContain("FAIL nats:")
        expect((yield* get(`${base}/healthz`)).status).toBe(200)
      }))
    } finally {
      await server.close()
    }
  }, 40_000)

  test("a port already taken stops the worker at start with an error naming MSGSYS_HTTP_PORT", async () => {
    const { app } = setup()
    const blocker = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("mine") })
    try {
      const settings = h.settings({ httpPort: blocker.port!, httpHost: "127.0.0.1" })
      const exit = await Effect.runPromiseExit(Effect.scoped(Layer.build(
        App.layer(app, { config: Layer.succeed(MsgsysConfig.MsgsysConfig, settings) })
      )))
      expect(Exit.isFailure(exit)).toBe(true)
      const message = Exit.isFailure(exit) ? String((exit.cause.reasons[0] as { error?: Error }).error?.message) : ""
      expect(message).toContain(`127.0.0.1:${blocker.port}`)
      expect(message).toContain("MSGSYS_HTTP_PORT")
    } finally {
      blocker.stop(true)
    }
  }, 30_000)

  test("HTTP off (port 0) serves nothing", async () => {
    const { app } = setup()
    await runTest(Effect.gen(function*() {
      const settings = h.settings({ httpPort: 0 })
      const ctx = yield* Layer.build(App.layer(app, { config: Layer.succeed(MsgsysConfig.MsgsysConfig, settings) }))
      const http = yield* Effect.provide(HttpServer.HttpServer, ctx)
      expect(http).toMatchObject({ url: undefined, port: 0 })
    }))
  }, 30_000)
  test("the schedules panel says no scheduler (and creates no bucket) until one exists, then lists the scheduler's schedules with their next run, pauses and resumes them", async () => {
    const { Work, app } = setup()
    const settings = h.settings({ httpPort: await port(), httpHost: "127.0.0.1" })
    const base = `http://127.0.0.1:${settings.httpPort}`
    const post = (path: string) =>
      Effect.promise(() =>
        fetch(`${base}${path}`, { method: "POST", headers: { "X-Msgsys-Action": "1" } }).then(async (r) => ({ status: r.status, body: await r.json() as Record<string, unknown> }))
      )
    const list = Effect.map(get(`${base}/api/schedules`), (r) => JSON.parse(r.body))
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      expect(yield* list).toEqual({ scheduler: false })
      expect(yield* post("/api/schedules/nightly/pause")).toMatchObject({ status: 404 })
      // asking did not create the bucket
      const bucketStream = `KV_${rt.names.schedulesBucket}`
      expect(yield* Effect.promise(() => rt.nats.manager.streams.info(bucketStream).then(() => "exists", () => "missing"))).toBe("missing")

      // a schedule added the scheduler's way (as `msgsys schedule add` does)
      const schedules = yield* Scheduler.make({ tasks: [Work] }).pipe(
        Effect.provide(KvScheduleStore.layer),
        Effect.provideService(Nats.Nats, rt.nats),
        Effect.provideService(MsgsysConfig.MsgsysConfig, settings)
      )
      yield* schedules.add({ name: "nightly", cron: "0 3 * * *", timeZone: "Europe/Berlin", task: Work, payload: { mode: "ok" }, tenant: "acme" })
      const listed = yield* list
      expect(listed).toMatchObject({
        scheduler: true,
        schedules: [{ name: "nightly", when: "cron \"0 3 * * *\" (Europe/Berlin)", subject: Work.subject, tenant: "acme", paused: false, missed: "once" }]
      })
      expect(listed.schedules[0].nextRun).toBe(Option.getOrThrow((yield* schedules.get("nightly")).next))
      expect(listed.schedules[0].nextRun).toBeGreaterThan(Date.now())

      const paused = yield* post("/api/schedules/nightly/pause")
      expect(paused).toMatchObject({ status: 200, body: { name: "nightly", paused: true } })
      expect(paused.body.nextRun).toBeUndefined()
      // the scheduler's own record says so, the rest of it untouched
      const stored = (yield* schedules.get("nightly")).schedule
      expect(stored).toMatchObject({ paused: true, subject: Work.subject, payload: { mode: "ok" }, tenant: "acme" })
      expect(stored.trigger).toEqual({ kind: "cron", cron: "0 3 * * *", timeZone: "Europe/Berlin" })
      expect((yield* list).schedules[0]).toMatchObject({ paused: true })

      expect(yield* post("/api/schedules/nightly/resume")).toMatchObject({ status: 200, body: { paused: false } })
      expect((yield* schedules.get("nightly")).schedule.paused).toBe(false)
      expect((yield* list).schedules[0].nextRun).toBeGreaterThan(Date.now())
      expect(yield* post("/api/schedules/nope/pause")).toMatchObject({ status: 404 })
      expect(yield* post("/api/schedules/not%20a%20name/pause")).toMatchObject({ status: 404 })
    }))
  }, 30_000)

  test("/readyz answers 503 while the dead-letter stream refuses letters", async () => {
    const { name, Work, app } = setup()
    const settings = h.settings({ httpPort: await port(), httpHost: "127.0.0.1" })
    const base = `http://127.0.0.1:${settings.httpPort}`
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      yield* waitFor("ready", Effect.map(get(`${base}/readyz`), (r) => r.status === 200))
      // the dead-letter stream holds one letter at most and refuses more
      const dlq = rt.names.deadLetterStream
      const info = yield* Effect.promise(() => rt.nats.manager.streams.info(dlq))
      yield* Effect.promise(() => rt.nats.manager.streams.update(dlq, { ...info.config, max_msgs: 1 }))
      yield* rt.client.enqueue(Work, { mode: "permanent" })
      yield* waitFor("the first letter", Effect.map(deadLetters(rt, name), (ls) => ls.length === 1))
      yield* rt.client.enqueue(Work, { mode: "permanent" })
      yield* waitFor("not ready", Effect.map(get(`${base}/readyz`), (r) => r.status === 503))
      const r = yield* get(`${base}/readyz`)
      expect(r.body).toContain("FAIL dead-letters: the dead-letter stream refused letters")
      expect(r.body).toContain("MSGSYS_DLQ_MAX_BYTES")
    }))
  }, 30_000)
})
