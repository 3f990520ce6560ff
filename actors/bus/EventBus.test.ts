/**
 * One suite, two brokers: the event bus on a real nats-server and on the in-memory broker of
 * msgsys/testing must behave the same (seed 004: the same interface over NATS and memory).
 */
import { jetstream } from "@nats-io/jetstream"
import { describe, expect, test } from "bun:test"
import { Context, Effect, Layer, Schema, type Scope } from "effect"
import { type Actor, App, MsgsysConfig } from "msgsys"
import { DeadLetters, Subjects } from "msgsys/admin"
import { MemoryBroker } from "msgsys/testing"
import { eventually, natsServer, plainConnection, quietLogs, unique } from "../support/TestRuntime.ts"
import * as EventBus from "./EventBus.ts"

/** What a test reads besides the bus: the dead letters of a group, and a publish by any NATS client. */
class Probe extends Context.Service<Probe, {
  readonly deadLetters: (group: string) => Effect.Effect<ReadonlyArray<{ readonly reason: string; readonly tenant: string }>>
  readonly publishRaw: (subject: string, json: string) => Effect.Effect<void>
}>()("test/Probe") {}

type Body<A> = Effect.Effect<A, unknown, EventBus.EventBus | Probe | Scope.Scope>

interface Broker {
  readonly name: string
  readonly run: <A>(subscriptions: ReadonlyArray<EventBus.Subscription>, topics: ReadonlyArray<EventBus.AnyTopic>, body: Body<A>) => Promise<A>
}

/** The subscriptions as an app: the same value runs on both brokers. */
const appOf = (subscriptions: ReadonlyArray<EventBus.Subscription>, topics: ReadonlyArray<EventBus.AnyTopic>) =>
  App.make({
    actors: [],
    subscribers: subscriptions.map((s) => s.group),
    events: topics,
    handlers: Layer.mergeAll(...subscriptions.map((s) => s.layer) as unknown as [Layer.Layer<Actor.HandlersOf<string>>])
  })

const nats = natsServer()
const onNats: Broker = {
  name: "NATS JetStream",
  run: (subscriptions, topics, body) =>
    Effect.runPromise(Effect.gen(function*() {
      const ctx = yield* nats.start(appOf(subscriptions, topics), nats.settings(nats.dir()))
      const foreign = jetstream(yield* plainConnection(nats.url))
      const names = Subjects.make(Context.get(ctx, MsgsysConfig.MsgsysConfig).streamPrefix)
      const probe = Probe.of({
        deadLetters: (group) =>
          DeadLetters.list(names, { actor: group, limit: 1000 }).pipe(
            Effect.map((page) => page.letters.map((l) => ({ reason: l.letter.reason, tenant: l.letter.tenant }))),
            Effect.provideContext(ctx),
            Effect.orDie
          ),
        // as a foreign publisher would: plain JSON, no msgsys headers
        publishRaw: (subject, json) => Effect.asVoid(Effect.promise(() => foreign.publish(subject, json)))
      })
      return yield* body.pipe(Effect.provide(EventBus.layer), Effect.provideContext(ctx), Effect.provideService(Probe, probe))
    }).pipe(Effect.scoped, Effect.provide(quietLogs)))
}

const inMemory: Broker = {
  name: "the in-memory broker",
  run: (subscriptions, topics, body) =>
    Effect.runPromise(Effect.gen(function*() {
      const broker = yield* MemoryBroker.MemoryBroker
      const probe = Probe.of({
        deadLetters: (group) =>
          Effect.map(broker.deadLetters, (ls) => ls.filter((l) => l.actor === group).map((l) => ({ reason: l.reason, tenant: l.tenant }))),
        publishRaw: (subject, json) => Effect.orDie(broker.publish(subject, json))
      })
      return yield* body.pipe(Effect.provide(EventBus.layer), Effect.provideService(Probe, probe))
    }).pipe(
      Effect.provide(MemoryBroker.layerApp(appOf(subscriptions, topics))),
      Effect.scoped,
      Effect.provide(quietLogs)
    ))
}

const Login = Schema.Struct({ userId: Schema.String, method: Schema.Literals(["password", "sso"]) })
const Filed = Schema.Struct({ returnId: Schema.String, amount: Schema.Number })

const suite = (broker: Broker) =>
  describe(`the event bus on ${broker.name}`, () => {
    test("a subscriber receives the data, actor, tenant id and trace id that were published, once", async () => {
      const bus = EventBus.bus(unique("tax"))
      const UserLogin = bus.topic("user.login", Login)
      const got: Array<EventBus.ReceivedEvent<typeof Login.Type>> = []
      const sub = bus.subscribe("tax-agent", UserLogin, (e) => Effect.sync(() => void got.push(e)))
      await broker.run([sub], [UserLogin], Effect.gen(function*() {
        const events = yield* EventBus.EventBus
        const published = yield* events.publish(UserLogin, {
          data: { userId: "123", method: "sso" },
          actor: "user-service",
          tenantId: "tenant-456",
          traceId: "trace-789"
        })
        yield* eventually("the event", Effect.sync(() => got.length === 1))
        yield* Effect.sleep("100 millis")
        expect(got.length).toBe(1)
        expect(got[0]).toMatchObject({
          eventId: published.id,
          topic: UserLogin.subject,
          data: { userId: "123", method: "sso" },
          actor: "user-service",
          tenantId: "tenant-456",
          traceId: "trace-789",
          attempt: 1
        })
        // the tenant and trace travel in the msgsys envelope too
        expect([got[0]!.envelope.tenant, got[0]!.envelope.correlationId]).toEqual(["tenant-456", "trace-789"])
      }))
    })

    test("every consumer group gets every event; a topic's subscribers never see another topic's events", async () => {
      const bus = EventBus.bus(unique("tax"))
      const UserLogin = bus.topic("user.login", Login)
      const ReturnFiled = bus.topic("return.filed", Filed)
      const seen = new Map<string, Array<string>>()
      const record = (who: string) => (e: EventBus.ReceivedEvent<unknown>) =>
        Effect.sync(() => void seen.set(who, [...(seen.get(who) ?? []), `${e.topic}:${e.eventId}`]))
      const subs = [
        bus.subscribe("audit", UserLogin, record("audit")),
        bus.subscribe("security", UserLogin, record("security")),
        bus.subscribe("audit", ReturnFiled, record("audit-returns"))
      ]
      await broker.run(subs, [UserLogin, ReturnFiled], Effect.gen(function*() {
        const events = yield* EventBus.EventBus
        const logins = yield* events.publishMany(UserLogin, [{ userId: "1", method: "password" }, { userId: "2", method: "sso" }], {
          actor: "auth",
          tenantId: "acme"
        })
        const filed = yield* events.publish(ReturnFiled, { data: { returnId: "r1", amount: 120.5 }, actor: "svc-forms", tenantId: "acme" })
        yield* eventually("every delivery", Effect.sync(() => (seen.get("audit")?.length ?? 0) + (seen.get("security")?.length ?? 0) === 4 && seen.get("audit-returns")?.length === 1))
        yield* Effect.sleep("100 millis")
        const loginIds = logins.map((p) => `${UserLogin.subject}:${p.id}`).sort()
        expect([...seen.get("audit")!].sort()).toEqual(loginIds)
        expect([...seen.get("security")!].sort()).toEqual(loginIds)
        expect(seen.get("audit-returns")).toEqual([`${ReturnFiled.subject}:${filed.id}`])
      }))
    })

    test("a failing handler gets the event again, at most 3 times in all, then it is dead-lettered for its tenant", async () => {
      const bus = EventBus.bus(unique("tax"))
      const ReturnFiled = bus.topic("return.filed", Filed)
      const attempts = new Map<string, Array<number>>()
      const sub = bus.subscribe("hmrc", ReturnFiled, (e) =>
        Effect.suspend(() => {
          attempts.set(e.data.returnId, [...(attempts.get(e.data.returnId) ?? []), e.attempt])
          // r-flaky succeeds on its second try, r-down never
          return e.data.returnId === "r-flaky" && e.attempt >= 2 ? Effect.void : Effect.fail(new Error("HMRC gateway timeout"))
        }), { retryBase: "20 millis" })
      await broker.run([sub], [ReturnFiled], Effect.gen(function*() {
        const events = yield* EventBus.EventBus
        const probe = yield* Probe
        yield* events.publish(ReturnFiled, { data: { returnId: "r-flaky", amount: 1 }, actor: "svc-forms", tenantId: "acme" })
        yield* events.publish(ReturnFiled, { data: { returnId: "r-down", amount: 2 }, actor: "svc-forms", tenantId: "globex" })
        yield* eventually("the dead letter", Effect.map(probe.deadLetters(sub.group.name), (ls) => ls.length === 1))
        yield* Effect.sleep("150 millis")
        expect(attempts.get("r-flaky")).toEqual([1, 2])
        expect(attempts.get("r-down")).toEqual([1, 2, 3])
        expect(yield* probe.deadLetters(sub.group.name)).toEqual([{ reason: "exhausted", tenant: "globex" }])
      }))
    })

    test("publishing one event id twice delivers it once", async () => {
      const bus = EventBus.bus(unique("tax"))
      const UserLogin = bus.topic("user.login", Login)
      let runs = 0
      const sub = bus.subscribe("audit", UserLogin, () => Effect.sync(() => void runs++))
      await broker.run([sub], [UserLogin], Effect.gen(function*() {
        const events = yield* EventBus.EventBus
        const p = { data: { userId: "1", method: "sso" as const }, actor: "auth", tenantId: "acme", eventId: "login-1" }
        const first = yield* events.publish(UserLogin, p)
        const second = yield* events.publish(UserLogin, p)
        expect([first.duplicate, second.duplicate]).toEqual([false, true])
        yield* eventually("the event", Effect.sync(() => runs === 1))
        yield* Effect.sleep("150 millis")
        expect(runs).toBe(1)
      }))
    })

    test("a payload another client published without data is dead-lettered as poison, and no handler runs", async () => {
      const bus = EventBus.bus(unique("tax"))
      const UserLogin = bus.topic("user.login", Login)
      let runs = 0
      const sub = bus.subscribe("audit", UserLogin, () => Effect.sync(() => void runs++))
      await broker.run([sub], [UserLogin], Effect.gen(function*() {
        const probe = yield* Probe
        yield* probe.publishRaw(UserLogin.subject, JSON.stringify({ actor: "legacy", tenantId: "acme", traceId: "t" }))
        yield* eventually("the dead letter", Effect.map(probe.deadLetters(sub.group.name), (ls) => ls.length === 1))
        expect((yield* probe.deadLetters(sub.group.name))[0]!.reason).toBe("poison")
        expect(runs).toBe(0)
      }))
    })

    test("a tenant id that cannot be a msgsys tenant is refused at publish, naming the fix", async () => {
      const bus = EventBus.bus(unique("tax"))
      const UserLogin = bus.topic("user.login", Login)
      const sub = bus.subscribe("audit", UserLogin, () => Effect.void)
      await broker.run([sub], [UserLogin], Effect.gen(function*() {
        const events = yield* EventBus.EventBus
        const error = yield* Effect.flip(events.publish(UserLogin, { data: { userId: "1", method: "sso" }, actor: "auth", tenantId: "acme corp" }))
        expect(error._tag).toBe("InvalidTenantId")
        expect(error.message).toContain("letters, digits, _ or -")
      }))
    })
  })

suite(onNats)
suite(inMemory)
