/**
 * Event groups on the in-memory broker: the same rules the integration tests check on a real
 * server (test/integration/events), here with the TestClock and no nats-server.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Layer, Schema, type Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Event from "../../../src/event/Event.ts"
import * as Subscriber from "../../../src/event/Subscriber.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Client from "../../../src/client/Client.ts"
import * as Memory from "../../../src/testing/MemoryBroker.ts"

const run = <A, E>(
  groups: ReadonlyArray<readonly [Subscriber.Any, Record<string, unknown>]>,
  body: Effect.Effect<A, E, Client.Client | Memory.MemoryBroker | Scope.Scope>,
  options: Memory.Options = {}
) =>
  Effect.runPromise(body.pipe(
    Effect.provide(
      Memory.layer(groups.map(([g]) => g), options).pipe(
        Layer.provide(Layer.mergeAll(...groups.map(([g, hs]) => g.toLayer(hs as never)) as unknown as [Layer.Layer<never>]))
      ) as Layer.Layer<Client.Client | Memory.MemoryBroker>
    ),
    Effect.scoped,
    Effect.provide(TestClock.layer())
  ))

const settle = Effect.andThen(TestClock.adjust("10 millis"), Effect.yieldNow)

const Registered = Event.make("mev.user.registered", { payload: { userId: Schema.String } })
const Login = Event.make("mev.user.login", { payload: { userId: Schema.String } })

describe("event groups in memory", () => {
  test("every group gets every event once; an event of another subject reaches only the groups whose filter takes it", () => {
    const got = { welcome: [] as Array<string>, audit: [] as Array<string> }
    return run([
      [Subscriber.make("welcome", { events: [Registered] }), {
        [Registered.subject]: ({ input }: { input: { userId: string } }) => Effect.sync(() => void got.welcome.push(input.userId))
      }],
      [Subscriber.make("audit", { events: [Registered, Login] }), {
        [Registered.subject]: ({ input }: { input: { userId: string } }) => Effect.sync(() => void got.audit.push(`r:${input.userId}`)),
        [Login.subject]: ({ input }: { input: { userId: string } }) => Effect.sync(() => void got.audit.push(`l:${input.userId}`))
      }]
    ], Effect.gen(function*() {
      const client = yield* Client.Client
      yield* client.publishMany(Registered, [{ userId: "u1" }, { userId: "u2" }])
      yield* client.publish(Login, { userId: "u1" })
      yield* settle
      expect(got.welcome).toEqual(["u1", "u2"])
      expect(got.audit.sort()).toEqual(["l:u1", "r:u1", "r:u2"])
      const broker = yield* Memory.MemoryBroker
      expect(yield* broker.pending("welcome")).toBe(0)
      expect(yield* broker.pending("audit")).toBe(0)
    }))
  })

  test("publishing an event id twice within the window stores it once", () => {
    let runs = 0
    return run([[Subscriber.make("once", { events: [Registered] }), { [Registered.subject]: () => Effect.sync(() => void runs++) }]],
      Effect.gen(function*() {
        const client = yield* Client.Client
        const first = yield* client.publish(Registered, { userId: "u1" }, { id: "evt-1" })
        const second = yield* client.publish(Registered, { userId: "u1" }, { id: "evt-1" })
        yield* settle
        expect([first.duplicate, second.duplicate, second.sequence]).toEqual([false, true, first.sequence])
        expect(runs).toBe(1)
      }))
  })

  test("a failing handler is retried by its group's policy, then dead-lettered under the group's name with the tenant", () => {
    let runs = 0
    return run([[
      Subscriber.make("flaky", { events: [Registered], retry: Retry.exponential({ base: "1 second", maxAttempts: 3, jitter: false }) }),
      { [Registered.subject]: () => Effect.suspend(() => (runs++, Effect.fail(new Error("mail server down")))) }
    ]], Effect.gen(function*() {
      const client = yield* Client.Client
      yield* client.publish(Registered, { userId: "u1" }, { tenant: "acme" })
      yield* settle
      expect(runs).toBe(1)
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(runs).toBe(2)
      yield* TestClock.adjust("2 seconds")
      yield* settle
      expect(runs).toBe(3)
      const letters = yield* Memory.MemoryBroker.use((b) => b.deadLetters)
      expect(letters.map((l) => [l.actor, l.tenant, l.reason, l.attempts])).toEqual([["flaky", "acme", "exhausted", 3]])
    }))
  })

  test("an event on a group's filter that none of its handlers takes is dead-lettered as unroutable", () =>
    run([[Subscriber.make("narrow", { events: [Registered], filter: "mev.>" }), { [Registered.subject]: () => Effect.void }]],
      Effect.gen(function*() {
        const client = yield* Client.Client
        yield* client.publish(Login, { userId: "u1" })
        yield* settle
        const letters = yield* Memory.MemoryBroker.use((b) => b.deadLetters)
        expect(letters.map((l) => [l.actor, l.subject, l.reason])).toEqual([["narrow", Login.subject, "unroutable"]])
      })))

  test("an event of a domain nobody reads or declares is refused; a declared one is accepted", () =>
    run([[Subscriber.make("w", { events: [Registered] }), { [Registered.subject]: () => Effect.void }]],
      Effect.gen(function*() {
        const client = yield* Client.Client
        const Other = Event.make("elsewhere.thing.happened", { payload: { n: Schema.Int } })
        const refused = yield* Effect.flip(client.publish(Other, { n: 1 }))
        expect(refused._tag).toBe("NoStreamForSubject")
      })).then(() =>
        run([[Subscriber.make("w2", { events: [Registered] }), { [Registered.subject]: () => Effect.void }]],
          Effect.gen(function*() {
            const client = yield* Client.Client
            const Other = Event.make("elsewhere.thing.happened", { payload: { n: Schema.Int } })
            expect((yield* client.publish(Other, { n: 1 })).duplicate).toBe(false)
          }), { events: [Event.make("elsewhere.thing.happened", { payload: { n: Schema.Int } })] })
      ))

  test("a group of one family's events reads that family only: the default filter is the narrowest that covers them", () => {
    const Created = Event.make("mev.course.created", { payload: { code: Schema.String } })
    const Deleted = Event.make("mev.course.deleted", { payload: { code: Schema.String } })
    const ExamCreated = Event.make("mev.exam.created", { payload: { code: Schema.String } })
    const notes = Subscriber.make("notes", { events: [Created, Deleted] })
    expect(notes.filter).toBe("mev.course.*")
    expect(Subscriber.make("wide", { events: [Created, Event.make("mev.course.section.added", { payload: {} })] }).filter).toBe("mev.course.>")
    const got: Array<string> = []
    const handle = ({ envelope }: { envelope: { type: string } }) => Effect.sync(() => void got.push(envelope.type))
    return run([[notes, { [Created.subject]: handle, [Deleted.subject]: handle }]], Effect.gen(function*() {
      const client = yield* Client.Client
      yield* client.publish(Created, { code: "CS101" })
      yield* client.publish(ExamCreated, { code: "CS101-final" })
      yield* client.publish(Deleted, { code: "CS101" })
      yield* settle
      expect(got).toEqual([Created.subject, Deleted.subject])
      expect(yield* Memory.MemoryBroker.use((b) => b.deadLetters)).toEqual([])
    }), { events: [ExamCreated] })
  })

  test("extra Msgsys-* headers of a publish reach the handler's envelope; others are dropped", () => {
    const extras: Array<Record<string, string>> = []
    return run([[Subscriber.make("meta", { events: [Registered] }), {
      [Registered.subject]: ({ envelope }: { envelope: { extra: Record<string, string> } }) => Effect.sync(() => void extras.push({ ...envelope.extra }))
    }]], Effect.gen(function*() {
      const client = yield* Client.Client
      yield* client.publish(Registered, { userId: "u1" }, { headers: { "Msgsys-Source": "schedule-service", "X-Other": "dropped" } })
      yield* settle
      expect(extras).toEqual([{ "Msgsys-Source": "schedule-service" }])
    }))
  })
})
