/**
 * Events on a real server: every group gets every event, the instances of one group share them
 * with none handled twice, a new group replays from a time, what no handler takes or cannot be
 * read goes to dead letters with its reason, and a batch handler settles its events together.
 */
import { describe, expect, test } from "bun:test"
import { Database } from "bun:sqlite"
import { Cause, Effect, Layer, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import type * as Envelope from "../../../src/envelope/Envelope.ts"
import * as Event from "../../../src/event/Event.ts"
import * as Subscriber from "../../../src/event/Subscriber.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as App from "../../../src/app/App.ts"
import * as Client from "../../../src/client/Client.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { deadLetters, handlersOf, Runs, runTest, start, streamCount, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

const domainFor = (base: string) => actorName(base).replace(/[^a-z0-9]/gi, "")

/** An app of event groups, each handler counting the events it got by event id. */
const groupsApp = (groups: ReadonlyArray<readonly [Subscriber.Any, Record<string, unknown>]>) =>
  App.make({
    actors: [],
    subscribers: groups.map(([g]) => g),
    handlers: Layer.mergeAll(...groups.map(([g, hs]) => g.toLayer(hs as never)) as unknown as [Layer.Layer<never>]) as never
  })

describe("events", () => {
  test("three groups each receive every event of a batch of 1,000; a group's events are handled once", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("ev")
      const Registered = Event.make(`${domain}.user.registered`, { payload: { userId: Schema.String } })
      const counts = ["welcome", "profile", "analytics"].map(() => new Runs())
      const groups = ["welcome", "profile", "analytics"].map((g, i) =>
        [
          Subscriber.make(`${domain}-${g}`, { events: [Registered], concurrency: 64, startAt: "all" }),
          { [Registered.subject]: ({ taskId }: { taskId: string }) => Effect.sync(() => counts[i]!.add(taskId)) }
        ] as const
      )
      const s = h.settings()
      const rt = yield* start(groupsApp(groups), s)
      const published = yield* rt.client.publishMany(Registered, Array.from({ length: 1000 }, (_, i) => ({ userId: `u${i}` })))
      expect(published.length).toBe(1000)
      yield* waitFor("every group to get every event", Effect.sync(() => counts.every((c) => c.total === 1000)), "30 seconds")
      yield* Effect.sleep("300 millis")
      for (const c of counts) {
        expect(c.total).toBe(1000)
        expect(c.twice).toEqual([])
      }
      // the events stay in their stream for any other group (limits retention)
      expect(yield* streamCount(rt, rt.names.eventStream(domain))).toBe(1000)
    })), 60_000)

  test("two instances of one group split its events between them, none handled twice", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("evs")
      const Placed = Event.make(`${domain}.order.placed`, { payload: { orderId: Schema.String } })
      const byInstance = [new Runs(), new Runs()]
      const make = (i: number) =>
        groupsApp([[
          Subscriber.make(`${domain}-billing`, { events: [Placed], concurrency: 8 }),
          { [Placed.subject]: ({ taskId }: { taskId: string }) => Effect.as(Effect.sync(() => byInstance[i]!.add(taskId)), undefined).pipe(Effect.delay("2 millis")) }
        ]])
      const s = h.settings()
      const a = yield* start(make(0), s)
      yield* start(make(1), s)
      yield* a.client.publishMany(Placed, Array.from({ length: 400 }, (_, i) => ({ orderId: `o${i}` })))
      yield* waitFor("all 400 events", Effect.sync(() => byInstance[0]!.total + byInstance[1]!.total >= 400), "30 seconds")
      yield* Effect.sleep("500 millis")
      const all = new Runs()
      for (const r of byInstance) for (const [id, n] of r.byKey) for (let k = 0; k < n; k++) all.add(id)
      expect(all.total).toBe(400)
      expect(all.twice).toEqual([])
      // both instances took a share
      expect(byInstance[0]!.total).toBeGreaterThan(0)
      expect(byInstance[1]!.total).toBeGreaterThan(0)
    })), 60_000)

  test("a new group starting from a time gets exactly the events published after it", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("evr")
      const Tick = Event.make(`${domain}.tick`, { payload: { n: Schema.Int } })
      const s = h.settings()
      // a first group declares the stream; events before and after the mark
      const early = yield* start(groupsApp([[Subscriber.make(`${domain}-early`, { events: [Tick] }), { [Tick.subject]: () => Effect.void }]]), s)
      yield* early.client.publishMany(Tick, Array.from({ length: 10 }, (_, n) => ({ n })))
      yield* Effect.sleep("50 millis")
      const mark = Date.now()
      yield* Effect.sleep("50 millis")
      yield* early.client.publishMany(Tick, Array.from({ length: 10 }, (_, n) => ({ n: 100 + n })))
      const got: Array<number> = []
      yield* start(groupsApp([[
        Subscriber.make(`${domain}-late`, { events: [Tick], startAt: { since: mark } }),
        { [Tick.subject]: ({ input }: { input: { n: number } }) => Effect.sync(() => void got.push(input.n)) }
      ]]), s)
      yield* waitFor("the replayed events", Effect.sync(() => got.length >= 10), "20 seconds")
      yield* Effect.sleep("300 millis")
      expect([...got].sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, n) => 100 + n))
    })), 60_000)

  test("an event no handler of the group takes is dead-lettered as unroutable; one that does not decode as poison", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("evd")
      const Upsert = Event.make(`${domain}.messages.upsert`, { payload: { id: Schema.String, text: Schema.String } })
      const handled = new Runs()
      const group = Subscriber.make(`${domain}-store`, { events: [Upsert], filter: `${domain}.>`, retry: Retry.none })
      const s = h.settings()
      const rt = yield* start(groupsApp([[group, { [Upsert.subject]: ({ taskId }: { taskId: string }) => Effect.sync(() => handled.add(taskId)) }]]), s)
      yield* Effect.promise(() => rt.nats.jetstream.publish(`${domain}.contacts.upsert`, JSON.stringify({ id: "c1" })))
      yield* Effect.promise(() => rt.nats.jetstream.publish(Upsert.subject, JSON.stringify({ id: 7 })))
      yield* rt.client.publish(Upsert, { id: "m1", text: "hello" })
      yield* waitFor("two dead letters", Effect.map(deadLetters(rt, group.name), (ls) => ls.length === 2), "20 seconds")
      const letters = yield* deadLetters(rt, group.name)
      const bySubject = new Map(letters.map((l) => [l.subject, l]))
      expect(bySubject.get(`${domain}.contacts.upsert`)!.reason).toBe("unroutable")
      expect(bySubject.get(`${domain}.contacts.upsert`)!.error.message).toContain(Upsert.subject)
      expect(bySubject.get(Upsert.subject)!.reason).toBe("poison")
      expect(bySubject.get(Upsert.subject)!.error.message).toContain("Expected string")
      expect(handled.total).toBe(1)
    })), 60_000)

  test("a batch handler gets 500 events in one call and commits its writes for them in one transaction", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("evb")
      const Row = Event.make(`${domain}.history.messages`, { payload: { id: Schema.String } })
      const calls: Array<number> = []
      const group = Subscriber.make(`${domain}-import`, { events: [Row], batch: 500, concurrency: 500, pool: "bulk", startAt: "all" })
      const s = h.settings({
        pools: [{ name: "fast", concurrency: 32 }, { name: "slow", concurrency: 4 }, { name: "bulk", concurrency: 500 }]
      })
      // the events are there before the group starts: it reads them in full batches
      const first = yield* start(groupsApp([[Subscriber.make(`${domain}-first`, { events: [Row] }), { [Row.subject]: () => Effect.void }]]), s)
      yield* first.client.publishMany(Row, Array.from({ length: 500 }, (_, i) => ({ id: `r${i}` })))
      yield* start(groupsApp([[group, {
        [Row.subject]: (requests: ReadonlyArray<{ input: { id: string }; atCommit: (w: (sql: { run: (s: string, ...p: Array<string>) => unknown }) => void) => Effect.Effect<void> }>) =>
          Effect.gen(function*() {
            calls.push(requests.length)
            yield* requests[0]!.atCommit((sql) => {
              sql.run("CREATE TABLE IF NOT EXISTS imported (id TEXT PRIMARY KEY, tx INTEGER NOT NULL)")
              // one transaction: every row of the call sees the same uncommitted table
              const tx = Date.now()
              for (const r of requests) sql.run("INSERT INTO imported (id, tx) VALUES (?, ?)", r.input.id, String(tx))
            })
          })
      }]]), s)
      const db = () => new Database(s.sqlitePath, { readonly: true })
      yield* waitFor("the 500 rows", Effect.sync(() => {
        const d = db()
        try {
          return (d.query<{ n: number }, []>("SELECT count(*) AS n FROM imported").get()?.n ?? 0) === 500
        } catch {
          return false
        } finally {
          d.close()
        }
      }), "30 seconds")
      expect(calls).toEqual([500])
      const d = db()
      const txs = d.query<{ n: number }, []>("SELECT count(DISTINCT tx) AS n FROM imported").get()!.n
      d.close()
      expect(txs).toBe(1)
    })), 60_000)

  test("a domain's stream keeps the retention its events declare; events of one domain that disagree stop the worker, naming the fix", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("evk")
      const Started = Event.make(`${domain}.task.started`, { payload: { id: Schema.String }, retention: { maxAge: "30 days", maxMessages: 10_000_000 } })
      const Finished = Event.make(`${domain}.task.finished`, { payload: { id: Schema.String } })
      const s = h.settings()
      const reader = () =>
        groupsApp([[Subscriber.make(`${domain}-log`, { events: [Finished], filter: `${domain}.task.finished` }), { [Finished.subject]: () => Effect.void }]])
      const rt = yield* start({ ...reader(), events: [Started, Finished] }, s)
      const info = yield* Effect.promise(() => rt.nats.manager.streams.info(rt.names.eventStream(domain)))
      expect(info.config.max_age).toBe(30 * 24 * 3600 * 1e9)
      expect(info.config.max_msgs).toBe(10_000_000)
      const Other = Event.make(`${domain}.task.failed`, { payload: { id: Schema.String }, retention: { maxAge: "1 day" } })
      const refused = yield* Effect.exit(start({ ...reader(), events: [Started, Other] }, h.settings()))
      expect(refused._tag).toBe("Failure")
      expect(String(refused._tag === "Failure" ? Cause.squash(refused.cause) : "")).toContain("give every event of a domain the same retention")
    })), 60_000)

  test("publishJson stores a raw JSON event the group decodes; the same id again is stored once", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("evj")
      const Signed = Event.make(`${domain}.user.signed`, { payload: { userId: Schema.String }, version: 2 })
      const got: Array<{ userId: string; version: number; tenant: string; correlationId: string }> = []
      const group = Subscriber.make(`${domain}-crm`, { events: [Signed] })
      const s = h.settings()
      const rt = yield* start(groupsApp([[group, {
        [Signed.subject]: ({ input, envelope }: { input: { userId: string }; envelope: { version: number; tenant: string; correlationId: string } }) =>
          Effect.sync(() => void got.push({ userId: input.userId, version: envelope.version, tenant: envelope.tenant, correlationId: envelope.correlationId }))
      }]]), s)
      const first = yield* rt.client.publishJson(Signed.subject, { userId: "u1" }, { id: "sig-1", tenant: "acme", correlationId: "c-9", version: 2 })
      const again = yield* rt.client.publishJson(Signed.subject, { userId: "u1" }, { id: "sig-1", tenant: "acme" })
      expect(first).toEqual({ id: "sig-1", sequence: first.sequence, duplicate: false })
      expect(again).toEqual({ id: "sig-1", sequence: first.sequence, duplicate: true })
      yield* waitFor("the event", Effect.sync(() => got.length === 1), "20 seconds")
      yield* Effect.sleep("300 millis")
      expect(got).toEqual([{ userId: "u1", version: 2, tenant: "acme", correlationId: "c-9" }])
      // a subject that names no event, or a version that is none, is refused before anything is sent
      expect((yield* Effect.flip(rt.client.publishJson(domain, {}))).message).toContain("invalid event subject")
      expect((yield* Effect.flip(rt.client.publishJson(Signed.subject, {}, { version: 0 }))).message).toContain("invalid schema version 0")
      expect(yield* streamCount(rt, rt.names.eventStream(domain))).toBe(1)
    })), 60_000)

  test("a task an event handler enqueues with parent: envelope carries the event's correlation id, and the event id as causation", () =>
    runTest(Effect.gen(function*() {
      const domain = domainFor("evc")
      const actor = domainFor("evcw")
      const Registered = Event.make(`${domain}.user.registered`, { payload: { email: Schema.String } })
      const Welcome = Task.make(`${actor}.welcome`, { input: { email: Schema.String }, output: Schema.Void })
      const Mailer = Actor.make(actor, { protocol: [Welcome] })
      const seen: Array<Envelope.Envelope> = []
      const group = Subscriber.make(`${domain}-welcome`, { events: [Registered] })
      const app = App.make({
        actors: [Mailer],
        subscribers: [group],
        handlers: Layer.mergeAll(
          handlersOf(Mailer, { [Welcome.subject]: ({ envelope }) => Effect.sync(() => void seen.push(envelope)) }),
          group.toLayer(Effect.gen(function*() {
            const client = yield* Client.Client
            return {
              [Registered.subject]: ({ input, envelope }: Actor.Request<Task.Task<typeof Registered.subject, typeof Registered.payload>>) =>
                Effect.asVoid(client.enqueue(Welcome, { email: input.email }, { parent: envelope }))
            }
          }) as never) as Layer.Layer<Actor.HandlersOf<string>, never, Client.Client>
        )
      })
      const s = h.settings()
      const rt = yield* start(app, s)
      const event = yield* rt.client.publish(Registered, { email: "a@example.com" }, { correlationId: "signup-42", tenant: "acme" })
      yield* waitFor("the welcome task", Effect.sync(() => seen.length === 1), "20 seconds")
      expect(seen[0]).toMatchObject({ correlationId: "signup-42", causationId: event.id, tenant: "acme" })
    })), 60_000)
})

