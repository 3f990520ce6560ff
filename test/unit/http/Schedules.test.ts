/**
 * The dashboard reads the scheduler's entries leniently: a cron schedule gets its next run
 * computed in its time zone, a paused one has none, unknown shapes still list.
 */
import { describe, expect, test } from "bun:test"
import * as Schedules from "../../../src/http/Schedules.ts"

const now = Date.parse("2026-11-30T10:07:00Z")

describe("Schedules.fromEntry", () => {
  test("computes the next run of a cron schedule in its time zone", () => {
    expect(Schedules.fromEntry("nightly", { cron: "0 3 * * *", timeZone: "Europe/Berlin", subject: "etl.extract" }, now)).toEqual({
      name: "nightly", when: "0 3 * * *", subject: "etl.extract", paused: false, nextRun: Date.parse("2026-12-01T02:00:00Z")
    })
  })

  test("takes the scheduler's own next run when it gives one, and none while paused", () => {
    expect(Schedules.fromEntry("a", { every: "5m", task: "reports.render", nextRun: "2026-11-30T10:10:00Z" }, now).nextRun)
      .toBe(Date.parse("2026-11-30T10:10:00Z"))
    expect(Schedules.fromEntry("b", { cron: "* * * * *", paused: true }, now)).toMatchObject({ paused: true, nextRun: undefined })
  })

  test("an entry it cannot read still lists, with what is unknown marked", () => {
    expect(Schedules.fromEntry("odd", "not an object", now)).toEqual({ name: "odd", when: "?", subject: undefined, paused: false, nextRun: undefined })
    expect(Schedules.fromEntry("bad-cron", { cron: "61 * * * *" }, now).nextRun).toBeUndefined()
  })
})
