import { describe, expect, test } from "bun:test"
import { type Duration, Option, Result } from "effect"
import * as Envelope from "../../../src/envelope/Envelope.ts"
import * as Ticks from "../../../src/scheduler/Ticks.ts"
import * as Trigger from "../../../src/scheduler/Trigger.ts"

const at = (iso: string) => Date.parse(iso)
const iso = (ms: number) => new Date(ms).toISOString()
const cron = (expr: string, zone?: string) => Result.getOrThrow(Trigger.cron(expr, zone))
const every = (interval: Duration.Input, anchor: number) => Result.getOrThrow(Trigger.every(interval, anchor))

describe("triggers", () => {
  test("a cron expression is read in its time zone: 09:00 Berlin is 07:00Z in summer and 08:00Z in winter", () => {
    const t = cron("0 9 * * *", "Europe/Berlin")
    expect(iso(Trigger.next(t, at("2026-07-01T00:00:00Z"))!)).toBe("2026-07-01T07:00:00.000Z")
    expect(iso(Trigger.next(t, at("2026-12-01T00:00:00Z"))!)).toBe("2026-12-01T08:00:00.000Z")
  })

  test("a cron tick is found strictly after, at-or-before and strictly before a time, with seconds", () => {
    const t = cron("*/10 * * * * *")
    const tick = at("2026-01-01T00:00:10Z")
    expect(Trigger.next(t, tick)).toBe(at("2026-01-01T00:00:20Z"))
    expect(Trigger.latest(t, tick)).toBe(tick)
    expect(Trigger.latest(t, tick + 9_999)).toBe(tick)
    expect(Trigger.previous(t, tick)).toBe(at("2026-01-01T00:00:00Z"))
    expect(Trigger.count(t, at("2026-01-01T00:00:00Z"), at("2026-01-01T00:01:00Z"), 100)).toBe(6)
    expect(Trigger.count(t, at("2026-01-01T00:00:00Z"), at("2026-01-01T01:00:00Z"), 100)).toBe(100)
  })

  test("an interval ticks at its anchor plus whole periods", () => {
    const anchor = at("2026-01-01T00:00:00.250Z")
    const t = every("15 seconds", anchor)
    expect(iso(Trigger.next(t, anchor)!)).toBe("2026-01-01T00:00:15.250Z")
    expect(iso(Trigger.latest(t, anchor + 44_999)!)).toBe("2026-01-01T00:00:30.250Z")
    expect(iso(Trigger.previous(t, anchor + 30_000)!)).toBe("2026-01-01T00:00:15.250Z")
    expect(Trigger.count(t, anchor, anchor + 60_000, 100)).toBe(4)
    expect(Trigger.upcoming(t, anchor, 3).map(iso)).toEqual([
      "2026-01-01T00:00:15.250Z", "2026-01-01T00:00:30.250Z", "2026-01-01T00:00:45.250Z"
    ])
  })

  test("a bad expression, an unknown zone, a cron that never fires and a sub-second interval are refused, naming the fix", () => {
    const problem = (r: Result.Result<Trigger.Trigger, Trigger.InvalidTrigger>) => Result.isFailure(r) ? r.failure.message : "accepted"
    expect(problem(Trigger.cron("61 * * * *"))).toContain("Expected a value between 0 and 59")
    expect(problem(Trigger.cron("61 * * * *"))).toContain("Write 5 fields")
    expect(problem(Trigger.cron("every day"))).toContain("Invalid number of segments")
    expect(problem(Trigger.cron("0 9 * * *", "Mars/Olympus"))).toContain("unknown time zone \"Mars/Olympus\"")
    expect(problem(Trigger.cron("0 0 31 2 *"))).toContain("never fires")
    expect(problem(Trigger.every("500 millis", 0))).toContain("shorter than 1 second")
    expect(problem(Trigger.every("0 seconds", 0))).toContain("shorter than 1 second")
  })
})

describe("planning ticks", () => {
  const t = cron("*/1 * * * * *")
  const base = at("2026-01-01T00:00:00Z")
  const s = (n: number) => base + n * 1000

  test("an on-time tick is enqueued once and recorded; the next pass finds nothing due and sleeps to the next tick", () => {
    const first = Ticks.plan({ trigger: t, missed: "skip", from: s(0), now: s(1) + 3 })
    expect(first).toEqual({ enqueue: [{ at: s(1), missed: undefined }], advanceTo: s(1), wakeAt: s(2) })
    const again = Ticks.plan({ trigger: t, missed: "skip", from: s(1), now: s(1) + 5 })
    expect(again).toEqual({ enqueue: [], advanceTo: undefined, wakeAt: s(2) })
  })

  test("after downtime: skip enqueues none of the missed ticks, once one (the latest), catchUp 3 the latest three; the on-time tick always runs", () => {
    const from = s(0)
    const now = s(10) + 200 // ticks 1..9 missed, 10 on time
    const planned = (missed: Parameters<typeof Ticks.plan>[0]["missed"]) =>
      Ticks.plan({ trigger: t, missed, from, now }).enqueue.map((x) => [(x.at - base) / 1000, x.missed ?? "on time"])
    expect(planned("skip")).toEqual([[10, "on time"]])
    expect(planned("once")).toEqual([[9, 9], [10, "on time"]])
    expect(planned({ catchUp: 3 })).toEqual([[7, 9], [8, 9], [9, 9], [10, "on time"]])
    expect(planned({ catchUp: 50 }).length).toBe(10)
    // all of them are recorded as passed
    expect(Ticks.plan({ trigger: t, missed: "skip", from, now }).advanceTo).toBe(s(10))
  })

  test("the latest due tick is missed too when it is older than the grace", () => {
    const daily = cron("0 9 * * *")
    const nine = at("2026-01-02T09:00:00Z")
    const from = at("2026-01-01T09:00:00Z")
    const late = (minutes: number, missed: "skip" | "once") =>
      Ticks.plan({ trigger: daily, missed, from, now: nine + minutes * 60_000 }).enqueue
    expect(late(0.5, "skip")).toEqual([{ at: nine, missed: undefined }])
    expect(late(5, "skip")).toEqual([])
    expect(late(5, "once")).toEqual([{ at: nine, missed: 1 }])
    expect(Ticks.plan({ trigger: daily, missed: "skip", from, now: nine + 5 * 60_000, grace: "10 minutes" }).enqueue)
      .toEqual([{ at: nine, missed: undefined }])
  })

  test("nothing before `from` is due: a new schedule starts with its next tick", () => {
    const p = Ticks.plan({ trigger: t, missed: { catchUp: 5 }, from: s(5) + 500, now: s(5) + 900 })
    expect(p).toEqual({ enqueue: [], advanceTo: undefined, wakeAt: s(6) })
  })
})

describe("a tick's task", () => {
  test("its id is the schedule name and the UTC tick time, a valid task id, the same on every replica", () => {
    expect(Ticks.taskId("nightly", at("2026-11-24T02:00:00Z"))).toBe("sched-nightly-20261124T020000Z")
    expect(Ticks.taskId("x", at("2026-11-24T02:00:00.250Z"))).toBe("sched-x-20261124T020000.250Z")
    expect(Envelope.isTaskId(Ticks.taskId("a_b-c", at("2026-11-24T02:00:00.250Z")))).toBe(true)
    expect(Envelope.isTaskId(Ticks.taskId("n".repeat(64), Date.now()))).toBe(true)
  })

  test("its headers tell the handler the schedule, the tick and, for a catch-up run, how many ticks were missed", () => {
    const tick = at("2026-11-24T02:00:00Z")
    const read = (headers: Record<string, string>) =>
      Ticks.fromEnvelope(Envelope.fromHeaders("etl.x", headers, { now: 0, fallbackId: "f" }))
    expect(read({ ...Ticks.headersOf("nightly", { at: tick, missed: undefined }) }))
      .toEqual(Option.some({ schedule: "nightly", at: tick, missed: undefined }))
    expect(read({ ...Ticks.headersOf("nightly", { at: tick, missed: 4 }) }))
      .toEqual(Option.some({ schedule: "nightly", at: tick, missed: 4 }))
    expect(read({})).toEqual(Option.none())
  })
})
