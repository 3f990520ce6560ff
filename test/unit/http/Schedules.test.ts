/**
 * The dashboard shows the scheduler's own records: a cron schedule with its zone and the next run
 * the scheduler computes, an interval schedule, the last tick, the missed-tick policy, and no next
 * run while paused.
 */
import { describe, expect, test } from "bun:test"
import { Option, Result } from "effect"
import * as Schedules from "../../../src/http/Schedules.ts"
import * as Scheduler from "../../../src/scheduler/Schedules.ts"

const now = Date.parse("2026-11-30T10:07:00Z")
const record = (input: Parameters<typeof Scheduler.makeRecord>[0]) => Result.getOrThrow(Scheduler.makeRecord(input, now))
const view = (r: ReturnType<typeof record>, lastTick: Option.Option<number>): Scheduler.ScheduleView =>
  ({ schedule: r, lastTick, next: Scheduler.nextRun(r, lastTick, now) })

describe("Schedules.fromView", () => {
  test("a cron schedule shows its expression and zone, its last tick, and the next run in that zone", () => {
    const nightly = record({ name: "nightly", cron: "0 3 * * *", timeZone: "Europe/Berlin", subject: "etl.extract", payload: {}, tenant: "acme" })
    const lastTick = Date.parse("2026-11-30T02:00:00Z")
    expect(Schedules.fromView(view(nightly, Option.some(lastTick)))).toEqual({
      name: "nightly",
      when: "cron \"0 3 * * *\" (Europe/Berlin)",
      subject: "etl.extract",
      tenant: "acme",
      paused: false,
      missed: "once",
      lastTick,
      nextRun: Date.parse("2026-12-01T02:00:00Z")
    })
  })

  test("an interval schedule shows its interval and policy; a paused one has no next run", () => {
    const every = record({ name: "sync", every: "15 minutes", subject: "crm.sync", payload: {}, missed: { catchUp: 3 } })
    expect(Schedules.fromView(view(every, Option.none()))).toMatchObject({
      when: "every 15m",
      missed: "catch-up:3",
      tenant: undefined,
      lastTick: undefined,
      nextRun: Math.ceil(now / 1000) * 1000 + 15 * 60_000
    })
    const paused = record({ name: "sync", every: "15 minutes", subject: "crm.sync", payload: {}, paused: true })
    expect(Schedules.fromView(view(paused, Option.none()))).toMatchObject({ paused: true, nextRun: undefined })
  })
})
