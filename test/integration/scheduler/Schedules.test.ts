/**
 * Managing schedules against a real nats-server: what `add` refuses and why, the records in the
 * bucket, and the `msgsys schedule` commands.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Option, Schema, type Scope } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as Topology from "../../../src/broker/Topology.ts"
import { MsgsysConfig, type MsgsysSettings } from "../../../src/config/MsgsysConfig.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as ActorTopology from "../../../src/actor/ActorTopology.ts"
import * as Schedules from "../../../src/scheduler/Schedules.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness, tempDir } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { captureLogs } from "../../support/runtimeTools.ts"

const h = natsHarness()

/** An actor whose stream exists (declared as a worker would), and the Schedules service knowing its task. */
const setup = (known: boolean) =>
  Effect.gen(function*() {
    const settings = yield* MsgsysConfig
    const actor = actorName("sch")
    const Report = Task.make(`${actor}.report`, { input: { period: Schema.String, pages: Schema.Int }, output: { ok: Schema.Boolean } })
    const A = Actor.make(actor, { protocol: [Report], retry: Retry.none })
    yield* Topology.apply(ActorTopology.forActor(Subjects.make(settings.streamPrefix), A, settings))
    const schedules = yield* Effect.provide(Schedules.Schedules, Schedules.layer({ tasks: known ? [Report] : [] }), { local: true })
    return { schedules, Report, actor }
  })

const failure = <A, E>(effect: Effect.Effect<A, E>) => Effect.flip(effect)

/** A test body on the harness, its logs kept out of the output. */
const run = <A, E>(body: Effect.Effect<A, E, Nats | MsgsysConfig | Scope.Scope>) => h.run(Effect.provide(body, captureLogs()))

describe("adding a schedule", () => {
  test("a bad cron expression, an unknown zone, a bad name or policy, and an unknown task subject are refused at add, naming the fix; nothing is stored", () =>
    run(Effect.gen(function*() {
      const { schedules, Report, actor } = yield* setup(true)
      const payload = { period: "2026-11", pages: 3 }
      const base = { name: "r", task: Report.subject, payload, cron: "0 9 * * *" }

      const badCron = yield* failure(schedules.add({ ...base, cron: "61 * * * *" }))
      expect(badCron._tag).toBe("InvalidSchedule")
      expect(badCron.message).toContain("cron \"61 * * * *\" in \"UTC\": Expected a value between 0 and 59")
      expect(badCron.message).toContain("Write 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first")

      expect((yield* failure(schedules.add({ ...base, timeZone: "Europe/Atlantis" }))).message)
        .toContain("unknown time zone \"Europe/Atlantis\"")
      expect((yield* failure(schedules.add({ ...base, name: "no spaces please" }))).message).toContain("not a schedule name")
      expect((yield* failure(schedules.add({ ...base, missed: { catchUp: 0 } }))).message).toContain("none of skip, once")
      expect((yield* failure(schedules.add({ ...base, cron: undefined, every: "1 minute", timeZone: "UTC" } as never))).message)
        .toContain("a time zone applies to cron expressions only")

      // a task the actor does not have (a typo), and a subject no stream stores
      const typo = yield* failure(schedules.add({ ...base, task: `${actor}.reprot` }))
      expect(typo._tag).toBe("UnknownTask")
      expect(typo.message).toContain(`no task "${actor}.reprot": actor ${actor} has no such task. Known tasks: ${Report.subject}`)
      const nowhere = yield* failure(schedules.add({ ...base, task: "nosuchactor.run" }))
      expect(nowhere._tag).toBe("UnknownTask")
      expect(nowhere.message).toContain("no task \"nosuchactor.run\": no stream stores it")
      expect((yield* failure(schedules.add({ ...base, task: "no wildcards.*" }))).message).toContain("wildcards")

      // the payload is checked against the task's input
      const badPayload = yield* failure(schedules.add({ ...base, payload: { period: "2026-11", pages: "three" } }))
      expect(badPayload.message).toContain(`the payload does not match the input of ${Report.subject} (at .pages: Expected number`)

      expect(yield* schedules.list).toEqual([])
    })), 30_000)

  test("without the task's definition, a subject some stream stores is accepted as JSON", () =>
    run(Effect.gen(function*() {
      const { schedules, Report } = yield* setup(false)
      const record = yield* schedules.add({ name: "json", task: Report.subject, payload: { anything: true }, every: "1 hour" })
      expect(record.payload).toEqual({ anything: true })
      expect((yield* failure(schedules.add({ name: "json", task: Report.subject, every: "1 hour" })))._tag).toBe("ScheduleExists")
    })), 30_000)
})

describe("schedules as data", () => {
  test("a schedule is JSON in the schedules bucket; change, pause, resume and remove rewrite it, and next lists its run times", () =>
    run(Effect.gen(function*() {
      const { schedules, Report } = yield* setup(true)
      const nats = yield* Nats
      const settings = yield* MsgsysConfig
      const kv = yield* Effect.promise(() => nats.kvm.open(Subjects.make(settings.streamPrefix).schedulesBucket))
      const stored = () =>
        Effect.promise(async () => {
          const entry = await kv.get("def.nightly")
          return entry?.operation === "PUT" ? entry.json<Record<string, unknown>>() : undefined
        })

      const added = yield* schedules.add({
        name: "nightly", task: Report, payload: { period: "2026-11", pages: 2 }, cron: "0 2 * * *", timeZone: "Europe/Berlin",
        tenant: "acme", priority: "high", missed: { catchUp: 2 }
      })
      expect(yield* stored()).toEqual(added)
      expect(added).toMatchObject({
        trigger: { kind: "cron", cron: "0 2 * * *", timeZone: "Europe/Berlin" },
        subject: Report.subject, payload: { period: "2026-11", pages: 2 }, tenant: "acme", priority: "high",
        paused: false, missed: { catchUp: 2 }
      })
      const next = yield* schedules.next("nightly", 3)
      expect(next.length).toBe(3)
      // 02:00 in Berlin is 01:00 or 00:00 UTC, a day apart (or 23 / 25 hours across a DST change)
      for (const at of next) expect([0, 1]).toContain(new Date(at).getUTCHours())
      expect(Option.getOrThrow((yield* schedules.get("nightly")).next)).toBe(next[0]!)

      const changed = yield* schedules.change("nightly", { cron: "30 3 * * *", payload: { period: "2026-12", pages: 1 } })
      expect(changed.trigger).toEqual({ kind: "cron", cron: "30 3 * * *", timeZone: "Europe/Berlin" })
      expect(changed.createdAt).toBe(added.createdAt)
      expect(changed.since).toBeGreaterThanOrEqual(added.since)
      expect(yield* stored()).toEqual(changed)
      expect((yield* failure(schedules.change("nightly", { payload: { period: 1 } })))._tag).toBe("InvalidSchedule")

      expect((yield* schedules.pause("nightly")).paused).toBe(true)
      expect((yield* schedules.get("nightly")).next).toEqual(Option.none())
      expect((yield* schedules.resume("nightly")).paused).toBe(false)

      yield* schedules.remove("nightly")
      expect(yield* stored()).toBeUndefined()
      const gone = yield* failure(schedules.pause("nightly"))
      expect(gone._tag).toBe("ScheduleNotFound")
      expect(gone.message).toContain("no schedule \"nightly\"")
    })), 30_000)
})

/** Runs the CLI with a clean MSGSYS_* environment pointed at the harness server. */
const msgsys = async (settings: MsgsysSettings, args: ReadonlyArray<string>) => {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MSGSYS_")))
  const proc = Bun.spawn(["bun", "src/cli/main.ts", ...args], {
    env: { ...base, MSGSYS_DATA_DIR: tempDir(), MSGSYS_NATS_URL: settings.nats.servers[0]!, MSGSYS_STREAM_PREFIX: settings.streamPrefix },
    stdout: "pipe",
    stderr: "pipe"
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { stdout, stderr, code }
}

describe("msgsys schedule", () => {
  test("add, list, next, pause, resume and remove from the shell; a bad cron is refused with exit 1 and the fix", async () => {
    const settings = h.settings()
    // the stream of actors/index.ts's etl actor, as `msgsys topology` declares it
    const declared = await msgsys(settings, ["topology"])
    expect(declared.code).toBe(0)
    expect(declared.stdout).toContain(`kv bucket ${settings.streamPrefix}_schedules`)
    const input = JSON.stringify({ source: "salesforce", destination: "warehouse" })

    const bad = await msgsys(settings, ["schedule", "add", "nightly", "etl.extract", input, "--cron", "0 25 * * *"])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain("schedule \"nightly\": cron \"0 25 * * *\" in \"UTC\": Expected a value between 0 and 23")
    const typo = await msgsys(settings, ["schedule", "add", "nightly", "etl.extrakt", input, "--every", "1h"])
    expect(typo.code).toBe(1)
    expect(typo.stderr).toContain("no task \"etl.extrakt\": actor etl has no such task. Known tasks: etl.extract, etl.load, etl.transform")

    const added = await msgsys(settings, [
      "schedule", "add", "nightly", "etl.extract", input, "--cron", "0 2 * * MON-FRI", "--tz", "America/New_York", "--missed", "catch-up:2"
    ])
    expect(added.code).toBe(0)
    expect(added.stdout).toContain("schedule nightly added: nightly  cron \"0 2 * * MON-FRI\" (America/New_York) -> etl.extract  next ")
    expect(added.stdout).toContain("missed: catch-up:2")

    const listed = await msgsys(settings, ["schedule", "list", "--json"])
    expect(listed.code).toBe(0)
    const [view] = JSON.parse(listed.stdout) as Array<Record<string, unknown>>
    expect(view).toMatchObject({ name: "nightly", subject: "etl.extract", paused: false, missed: { catchUp: 2 }, lastTick: null })
    expect(typeof view!.next).toBe("string")

    const next = await msgsys(settings, ["schedule", "next", "nightly", "--count", "3", "--json"])
    const times = JSON.parse(next.stdout) as Array<string>
    expect(times.length).toBe(3)
    expect(times[0]).toBe(view!.next as string)
    // 02:00 in New York is 06:00 or 07:00 UTC, on a weekday there
    for (const t of times) expect([6, 7]).toContain(new Date(t).getUTCHours())

    expect((await msgsys(settings, ["schedule", "pause", "nightly"])).stdout).toContain("schedule nightly paused")
    expect((await msgsys(settings, ["schedule", "list"])).stdout).toMatch(/^nightly .* paused {2}missed: catch-up:2$/m)
    expect((await msgsys(settings, ["schedule", "resume", "nightly"])).stdout).toContain("schedule nightly resumed")
    expect((await msgsys(settings, ["schedule", "remove", "nightly"])).stdout).toContain("schedule nightly removed")
    const gone = await msgsys(settings, ["schedule", "remove", "nightly"])
    expect(gone.code).toBe(1)
    expect(gone.stderr).toContain("no schedule \"nightly\": there are no schedules")
    expect((await msgsys(settings, ["schedule", "list"])).stdout).toContain("no schedules")
  }, 90_000)
})
