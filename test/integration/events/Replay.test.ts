/**
 * Replaying an event group on a real server, with its worker running through the replay: the
 * events from the start point are handled once more (per event id, under the new epoch), nothing
 * before it runs again, and an event the group had not handled yet when the replay began runs
 * exactly once, wherever it lies.
 */
import { describe, expect, test } from "bun:test"
import { type Duration, Effect, Fiber, type Layer, Schema } from "effect"
import type * as Actor from "../../../src/actor/Actor.ts"
import { Nats } from "../../../src/broker/Nats.ts"
import { MsgsysConfig } from "../../../src/config/MsgsysConfig.ts"
import * as Event from "../../../src/event/Event.ts"
import * as Replay from "../../../src/event/Replay.ts"
import * as Subscriber from "../../../src/event/Subscriber.ts"
import * as App from "../../../src/app/App.ts"
import { Control } from "../../../src/control/Control.ts"
import { natsHarness, tempDir } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { type Runtime, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

const domainFor = (base: string) => actorName(base).replace(/[^a-z0-9]/gi, "")

/** Handler runs per event id, split by the key scope they ran under. */
class Handled {
  readonly runs: Array<{ readonly id: string; readonly scope: string }> = []
  add(id: string, key: string) {
    this.runs.push({ id, scope: key.slice(0, key.indexOf("/", key.indexOf("/") + 1)) })
  }
  count(id: string, scope?: string) {
    return this.runs.filter((r) => r.id === id && (scope === undefined || r.scope === scope)).length
  }
}

const groupApp = (group: Subscriber.Any, handled: Handled, delay: Duration.Input = 0) =>
  App.make({
    actors: [],
    subscribers: [group],
    handlers: group.toLayer({
      [group.events[0]!.subject]: ({ taskId, idempotencyKey }: { taskId: string; idempotencyKey: string }) =>
        Effect.sync(() => handled.add(taskId, idempotencyKey)).pipe(Effect.delay(delay))
    } as never) as Layer.Layer<Actor.HandlersOf<string>>
  })

const replay = (rt: Runtime, group: string, from: Replay.From) =>
  Replay.run(group, { from, settle: "300 millis" }).pipe(
    Effect.provideService(Nats, rt.nats),
    Effect.provideService(Control, rt.control),
    Effect.provideService(MsgsysConfig, rt.settings)
  )

/** Runs the CLI against the harness server with this test's stream prefix. */
const msgsys = async (args: ReadonlyArray<string>, settings: { readonly streamPrefix: string }) => {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MSGSYS_")))
  const proc = Bun.spawn(["bun", "src/cli/main.ts", ...args], {
    env: { ...base, MSGSYS_DATA_DIR: tempDir(), MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: settings.streamPrefix },
    stdout: "pipe",
    stderr: "pipe"
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { stdout, stderr, code }
}

describe("event group replay", () => {
  test("replay --since a time: exactly the events after it are handled a second time, nothing else", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("rps")
      const Noted = Event.make(`${domain}.note.added`, { payload: { n: Schema.Int } })
      const group = Subscriber.make(`${domain}-index`, { events: [Noted], concurrency: 8 })
      const handled = new Handled()
      const s = h.settings()
      const rt = yield* start(groupApp(group, handled), s)
      const first = yield* rt.client.publishMany(Noted, Array.from({ length: 30 }, (_, n) => ({ n })))
      yield* waitFor("the first 30", Effect.sync(() => handled.runs.length === 30), "20 seconds")
      yield* Effect.sleep("50 millis")
      const mark = new Date()
      yield* Effect.sleep("50 millis")
      const later = yield* rt.client.publishMany(Noted, Array.from({ length: 20 }, (_, n) => ({ n: 100 + n })))
      yield* waitFor("all 50", Effect.sync(() => handled.runs.length === 50), "20 seconds")

      const out = yield* Effect.promise(() => msgsys(["events", "replay", group.name, "--since", mark.toISOString()], s))
      expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: "" })
      expect(out.stdout).toContain(`group ${group.name} (${rt.names.eventStream(domain)}) replays from #${later[0]!.sequence}, epoch 1: 20 event(s)`)

      yield* waitFor("the 20 again", Effect.sync(() => handled.runs.length === 70), "20 seconds")
      yield* Effect.sleep("500 millis")
      expect(handled.runs.length).toBe(70)
      for (const e of first) expect({ id: e.id, runs: handled.count(e.id) }).toEqual({ id: e.id, runs: 1 })
      for (const e of later) {
        expect({ id: e.id, first: handled.count(e.id, `group/${group.name}`), again: handled.count(e.id, `group/${group.name}#1`) })
          .toEqual({ id: e.id, first: 1, again: 1 })
      }
      // the replay resumed the group: new events run as before, once
      const next = yield* rt.client.publish(Noted, { n: 999 })
      yield* waitFor("a new event", Effect.sync(() => handled.count(next.id) === 1), "20 seconds")
      expect((yield* rt.control.paused).map((t) => t.name)).not.toContain(group.name)
    })), 60_000)

  test("replay --seq N: the events from that stream sequence run again; a second replay runs them once more", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("rpq")
      const Noted = Event.make(`${domain}.note.added`, { payload: { n: Schema.Int } })
      const group = Subscriber.make(`${domain}-index`, { events: [Noted], concurrency: 8, startAt: "all" })
      const handled = new Handled()
      const s = h.settings()
      const rt = yield* start(groupApp(group, handled), s)
      const published = yield* rt.client.publishMany(Noted, Array.from({ length: 50 }, (_, n) => ({ n })))
      yield* waitFor("all 50", Effect.sync(() => handled.runs.length === 50), "20 seconds")
      const from = published[40]!.sequence
      const done = yield* replay(rt, group.name, { sequence: from })
      expect(done).toMatchObject({ group: group.name, epoch: 1, from, redeliverFrom: from, pending: 10, stayedPaused: false })
      yield* waitFor("the last 10 again", Effect.sync(() => handled.runs.length === 60), "20 seconds")
      // an earlier start, later: epoch 2 covers epoch 1
      const again = yield* replay(rt, group.name, { sequence: published[45]!.sequence })
      expect(again.epoch).toBe(2)
      yield* waitFor("the last 5 once more", Effect.sync(() => handled.runs.length === 65), "20 seconds")
      yield* Effect.sleep("500 millis")
      expect(handled.runs.length).toBe(65)
      published.forEach((e, i) => {
        const want = i < 40 ? 1 : i < 45 ? 2 : 3
        expect({ i, runs: handled.count(e.id) }).toEqual({ i, runs: want })
      })
      // a start the stream never reached is refused, naming the range
      const refused = yield* Effect.flip(replay(rt, group.name, { sequence: published[49]!.sequence + 5 }))
      expect(refused.message).toContain(`give a whole number from 1 to ${published[49]!.sequence + 1}`)
    })), 60_000)

  test("a replay while the group works off a backlog loses nothing: what it had not handled runs once, the rest as replayed", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("rpb")
      const Noted = Event.make(`${domain}.note.added`, { payload: { n: Schema.Int } })
      const group = Subscriber.make(`${domain}-slow`, { events: [Noted], concurrency: 2 })
      const handled = new Handled()
      const s = h.settings()
      const rt = yield* start(groupApp(group, handled, "30 millis"), s)
      const published = yield* rt.client.publishMany(Noted, Array.from({ length: 60 }, (_, n) => ({ n })))
      yield* waitFor("a few handled", Effect.sync(() => handled.runs.length >= 6), "20 seconds")
      // from the 30th event on: events 7..29 wait in the backlog (or run) as the consumer is recreated
      const done = yield* replay(rt, group.name, { sequence: published[29]!.sequence })
      expect(done.redeliverFrom).toBeLessThan(done.from)
      yield* waitFor("every event under the new epoch from the 30th on", Effect.sync(() =>
        published.every((e, i) => i < 29 ? handled.count(e.id) >= 1 : handled.count(e.id, `group/${group.name}#1`) >= 1)), "30 seconds")
      yield* Effect.sleep("500 millis")
      published.forEach((e, i) => {
        if (i < 29) {
          // before the start: exactly once, under the group's first scope
          expect({ i, runs: handled.count(e.id), first: handled.count(e.id, `group/${group.name}`) }).toEqual({ i, runs: 1, first: 1 })
        } else {
          // from the start: once under the new epoch, and at most once before it
          expect({ i, again: handled.count(e.id, `group/${group.name}#1`), before: handled.count(e.id, `group/${group.name}`) <= 1 })
            .toEqual({ i, again: 1, before: true })
        }
      })
    })), 60_000)

  test("events groups shows each group's lag; a paused group stays paused after a replay", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("rpg")
      const Noted = Event.make(`${domain}.note.added`, { payload: { n: Schema.Int } })
      const group = Subscriber.make(`${domain}-idle`, { events: [Noted], startAt: "all" })
      const handled = new Handled()
      const s = h.settings()
      // paused before its worker starts: no pull of it is open, so nothing is delivered
      const paused = yield* Effect.promise(() => msgsys(["pause", group.name], s))
      expect(paused.code).toBe(0)
      const rt = yield* start(groupApp(group, handled), s)
      yield* rt.client.publishMany(Noted, Array.from({ length: 7 }, (_, n) => ({ n })))
      const listed = yield* Effect.promise(() => msgsys(["events", "groups", "--json"], s))
      expect(listed.code).toBe(0)
      const domains = JSON.parse(listed.stdout) as ReadonlyArray<{ domain: string; lastSequence: number; groups: ReadonlyArray<Record<string, unknown>> }>
      expect(domains.map((d) => d.domain)).toEqual([domain])
      expect(domains[0]!.lastSequence).toBe(7)
      expect(domains[0]!.groups).toEqual([expect.objectContaining({
        name: group.name, filter: Noted.subject, pending: 7, ackPending: 0, paused: true, epoch: 0, deliveredSequence: 0
      })])
      const done = yield* replay(rt, group.name, { sequence: 3 })
      expect(done.stayedPaused).toBe(true)
      expect((yield* rt.control.paused).map((t) => t.name)).toContain(group.name)
      yield* Effect.sleep("300 millis")
      expect(handled.runs.length).toBe(0)
      yield* rt.control.resume({ kind: "actor", name: group.name })
      // the consumer starts at the group's first unsettled event (1), before the replay's start
      yield* waitFor("all 7", Effect.sync(() => handled.runs.length === 7), "20 seconds")
      const text = yield* Effect.promise(() => msgsys(["events", "groups"], s))
      expect(text.stdout).toContain(`${group.name}  filter ${Noted.subject}  lag 0  ack pending 0  redelivered 0  delivered #7 of #7  replay epoch 1`)
    })), 60_000)

  test("a replay interrupted before it recreates the consumer takes its range back, keeps the epoch used and resumes the group", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("rpi")
      const Noted = Event.make(`${domain}.note.added`, { payload: { n: Schema.Int } })
      const group = Subscriber.make(`${domain}-index`, { events: [Noted] })
      const handled = new Handled()
      const s = h.settings()
      const rt = yield* start(groupApp(group, handled), s)
      const published = yield* rt.client.publishMany(Noted, Array.from({ length: 5 }, (_, n) => ({ n })))
      yield* waitFor("all 5", Effect.sync(() => handled.runs.length === 5), "20 seconds")
      const fiber = yield* Effect.forkChild(
        Replay.run(group.name, { from: { sequence: published[0]!.sequence }, settle: "5 seconds" }).pipe(
          Effect.provideService(Nats, rt.nats),
          Effect.provideService(Control, rt.control),
          Effect.provideService(MsgsysConfig, rt.settings)
        )
      )
      // interrupted while it waits for the workers: paused, the new epoch stored
      yield* waitFor("the new epoch stored", Effect.map(rt.control.epochs(group.name), (e) => e.epochs.replays.length === 1))
      expect((yield* rt.control.paused).map((t) => t.name)).toContain(group.name)
      yield* Fiber.interrupt(fiber)
      expect((yield* rt.control.epochs(group.name)).epochs).toEqual({ epoch: 1, replays: [] })
      expect((yield* rt.control.paused).map((t) => t.name)).not.toContain(group.name)
      // nothing ran again, and the group goes on
      const next = yield* rt.client.publish(Noted, { n: 99 })
      yield* waitFor("a new event", Effect.sync(() => handled.count(next.id) === 1), "20 seconds")
      expect(handled.runs.length).toBe(6)
      expect((yield* replay(rt, group.name, { sequence: published[4]!.sequence })).epoch).toBe(2)
    })), 60_000)
})

