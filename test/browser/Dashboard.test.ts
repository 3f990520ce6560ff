/**
 * The dashboard in a real browser (Debian's headless Chromium driven by playwright-core) while a
 * worker runs against a real nats-server: tasks appear as they run, a dead letter shows with its
 * error, its Replay button republishes it and the page follows the replayed task to success; a
 * schedule the scheduler stores shows with its next run, and its Pause and Resume buttons work.
 * Ends with a screenshot, kept in a temp dir whose path is printed. Skipped, saying why, only
 * where Chromium is not installed (`./scripts/test` installs it).
 */
import { describe, expect, test } from "bun:test"
import { Effect, Schema } from "effect"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { chromium } from "playwright-core"
import * as Actor from "../../src/actor/Actor.ts"
import * as EmbeddedNats from "../../src/broker/EmbeddedNats.ts"
import * as Nats from "../../src/broker/Nats.ts"
import * as MsgsysConfig from "../../src/config/MsgsysConfig.ts"
import * as Retry from "../../src/retry/Retry.ts"
import * as KvScheduleStore from "../../src/scheduler/KvScheduleStore.ts"
import * as Scheduler from "../../src/scheduler/Schedules.ts"
import * as Task from "../../src/task/Task.ts"
import * as TaskError from "../../src/task/TaskError.ts"
import { natsHarness, tempDir } from "../support/harness.ts"
import { actorName } from "../support/runtime.ts"
import { appOf, deadLetters, runTest, start, waitFor } from "../support/runtimeTools.ts"

const chromiumPath = "/usr/bin/chromium"
const available = existsSync(chromiumPath)
if (!available) console.log(`browser test skipped: ${chromiumPath} is not installed (apt-get install chromium; ./scripts/test does it)`)

const h = natsHarness()

describe("the dashboard in a browser", () => {
  (available ? test : test.skip)("shows tasks as they run, and replays a dead letter to success from its button", async () => {
    const name = actorName("web")
    const Render = Task.make(`${name}.render`, { input: { page: Schema.Number }, output: { ok: Schema.Boolean } })
    const A = Actor.make(name, { protocol: [Render], retry: Retry.none })
    // while broken, page 13 cannot render; fixed before its dead letter is replayed
    let broken = true
    const app = appOf([A, {
      [Render.subject]: ({ input }) =>
        Effect.suspend(() =>
          broken && (input as { page: number }).page === 13
            ? Effect.fail(TaskError.permanent(new Error("template for page 13 is missing")))
            : Effect.sleep("20 millis").pipe(Effect.as({ ok: true }))
        )
    }])
    const port = await Effect.runPromise(EmbeddedNats.freePort)
    const settings = h.settings({ httpPort: port, httpHost: "127.0.0.1" })
    const shots = tempDir("msgsys-dashboard-")
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    })
    try {
      await runTest(Effect.gen(function*() {
        const rt = yield* start(app, settings)
        const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1400, height: 1000 } }))
        const problems: Array<string> = []
        page.on("pageerror", (e) => problems.push(e.message))
        yield* Effect.promise(() => page.goto(`http://127.0.0.1:${port}/`))

        // a task enqueued now appears in the audit table, completed
        const first = yield* rt.client.enqueue(Render, { page: 1 })
        yield* Effect.promise(() =>
          page.waitForSelector(`#tasks tr[data-task="${first.id}"] td.status-completed`, { timeout: 20_000 })
        )
        // some traffic for the sparklines
        for (let i = 2; i <= 40; i++) {
          yield* rt.client.enqueue(Render, { page: i === 13 ? 14 : i })
          if (i % 8 === 0) yield* Effect.sleep("400 millis")
        }

        // a dead letter shows with its error and a Replay button
        const doomed = yield* rt.client.enqueue(Render, { page: 13 })
        yield* waitFor("the dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length === 1))
        const row = `#dead-letters tr[data-task="${doomed.id}"]`
        yield* Effect.promise(() => page.waitForSelector(`${row} button.replay`, { timeout: 20_000 }))
        expect(yield* Effect.promise(() => page.textContent(row))).toContain("template for page 13 is missing")

        // fixed: replay from the page and watch it succeed
        broken = false
        yield* Effect.promise(() => page.click(`${row} button.replay`))
        yield* Effect.promise(() =>
          page.waitForFunction(`document.querySelector("#replay-status")?.textContent === "succeeded"`, undefined, { timeout: 20_000 })
        )
        expect((yield* rt.client.status(doomed.id)).status).toBe("succeeded")
        yield* Effect.promise(() => page.waitForSelector(row, { state: "detached", timeout: 10_000 }))
        expect(yield* deadLetters(rt, name)).toHaveLength(0)

        // live data on the page: the actor's row, this worker, the replayed task completed
        yield* Effect.promise(() => page.waitForSelector(`#tasks tr[data-task="${doomed.id}"] td.status-completed`, { timeout: 20_000 }))
        expect(yield* Effect.promise(() => page.textContent(`#actors tr[data-actor="${name}"]`))).toContain(name)
        expect(yield* Effect.promise(() => page.textContent("#workers"))).toContain(rt.worker.id)
        expect(yield* Effect.promise(() => page.textContent("#ready"))).toBe("ready")
        expect(yield* Effect.promise(() => page.textContent("#schedules"))).toContain("no scheduler")

        // a schedule added the scheduler's way shows with its next run; Pause and Resume act on it
        const schedules = yield* Scheduler.make({ tasks: [Render] }).pipe(
          Effect.provide(KvScheduleStore.layer),
          Effect.provideService(Nats.Nats, rt.nats),
          Effect.provideService(MsgsysConfig.MsgsysConfig, settings)
        )
        yield* schedules.add({ name: "nightly-render", cron: "0 3 * * *", timeZone: "UTC", task: Render, payload: { page: 1 } })
        const schedule = `#schedules tr[data-schedule="nightly-render"]`
        yield* Effect.promise(() => page.waitForSelector(`${schedule} button.pause`, { timeout: 20_000 }))
        expect(yield* Effect.promise(() => page.textContent(`${schedule} .next-run`))).toMatch(/\(in \d+/)
        yield* Effect.promise(() => page.click(`${schedule} button.pause`))
        yield* Effect.promise(() => page.waitForSelector(`${schedule} button.resume`, { timeout: 20_000 }))
        expect(yield* Effect.promise(() => page.textContent(`${schedule} .next-run`))).toBe("paused")
        expect((yield* schedules.get("nightly-render")).schedule.paused).toBe(true)
        yield* Effect.promise(() => page.click(`${schedule} button.resume`))
        yield* Effect.promise(() => page.waitForSelector(`${schedule} button.pause`, { timeout: 20_000 }))
        expect((yield* schedules.get("nightly-render")).schedule.paused).toBe(false)
        expect(problems).toEqual([])

        const shot = join(shots, "dashboard.png")
        yield* Effect.promise(() => page.screenshot({ path: shot, fullPage: true }))
        console.log(`dashboard screenshot: ${shot}`)
        expect(existsSync(shot)).toBe(true)
      }))
    } finally {
      await browser.close()
    }
  }, 90_000)
})
