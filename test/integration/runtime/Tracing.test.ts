/**
 * Logs and traces on a real server: every line the runtime writes about a message names it (id,
 * subject, actor, tenant, correlation id, attempt, trace id); a trace id a publisher sets reaches
 * the handler's lines and the tasks and events the handler sends, with no `parent` option; and
 * with an OTLP endpoint configured, the publish, handle, retry and dead-letter spans reach a real
 * OTLP/HTTP receiver as one trace.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { Effect, Layer, Option, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as EmbeddedNats from "../../../src/broker/EmbeddedNats.ts"
import type { Envelope } from "../../../src/envelope/Envelope.ts"
import * as Event from "../../../src/event/Event.ts"
import * as Subscriber from "../../../src/event/Subscriber.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as App from "../../../src/app/App.ts"
import type * as Client from "../../../src/client/Client.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { otlpReceiver, type ReceivedSpan } from "../../support/otlp.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, type LogLine, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()
const receiver = otlpReceiver()
afterAll(() => receiver.close())

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`
const traceIdOf = (e: Envelope) => e.traceparent?.slice(3, 35)
const linesSaying = (logs: ReadonlyArray<LogLine>, text: string) => logs.filter((l) => l.message.includes(text))

describe("log lines about a message", () => {
  test("the handler's own lines, its retry line and its dead-letter line each carry its id, subject, actor, tenant, correlation id, attempt and trace id", async () => {
    const logs: Array<LogLine> = []
    const name = actorName("logs")
    const Work = Task.make(`${name}.work`, { input: { n: Schema.Int }, output: Schema.Void })
    const A = Actor.make(name, { protocol: [Work], retry: Retry.exponential({ base: "50 millis", jitter: false, maxAttempts: 2 }) })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(appOf([A, {
        [Work.subject]: ({ attempt }) => Effect.andThen(Effect.logInfo(`working, attempt ${attempt}`), Effect.fail(new Error("the disk is full")))
      }]), h.settings())
      const handle = yield* rt.client.enqueue(Work, { n: 1 }, { tenant: "acme", correlationId: "order-17", traceparent: TRACEPARENT })
      yield* waitFor("the task to be dead", Effect.map(rt.client.status(handle.id), (r) => r.status === "dead"))
      const expected = (attempt: number) => ({
        messageId: handle.id,
        subject: Work.subject,
        actor: name,
        tenant: "acme",
        correlationId: "order-17",
        attempt,
        traceId: TRACE_ID
      })
      const [first, second] = [linesSaying(logs, "working, attempt 1"), linesSaying(logs, "working, attempt 2")]
      expect(first.map((l) => l.annotations)).toEqual([expected(1)])
      expect(second.map((l) => l.annotations)).toEqual([expected(2)])
      const retry = linesSaying(logs, "failed on attempt 1")
      expect(retry.map((l) => [l.level, l.annotations])).toEqual([["Info", expected(1)]])
      expect(retry[0]!.message).toContain("the disk is full; retrying in 50 ms")
      const dead = linesSaying(logs, "moved to dead letters")
      expect(dead.map((l) => [l.level, l.annotations])).toEqual([["Warn", expected(2)]])
    }), logs)
  }, 30_000)
})

describe("trace context", () => {
  test("a trace id set by a publisher is in the handler's log lines and in the tasks and events its handler sends, with no parent option", async () => {
    const logs: Array<LogLine> = []
    const name = actorName("trace")
    const Start = Task.make(`${name}.start`, { input: { n: Schema.Int }, output: Schema.Void })
    const Child = Task.make(`${name}.child`, { input: { n: Schema.Int, via: Schema.String }, output: Schema.Void })
    const Done = Event.make(`${name}ev.work.done`, { payload: { n: Schema.Int } })
    const group = Subscriber.make(`${name}-audit`, { events: [Done], startAt: "all" })
    const A = Actor.make(name, { protocol: [Start, Child] })
    let client: Client.Client["Service"] | undefined
    const received = new Map<string, Envelope>()
    const handlers = A.toLayer({
      [Start.subject]: ({ envelope }: Actor.Request<typeof Start>) =>
        Effect.gen(function*() {
          yield* Effect.logInfo("start handled")
          // no parent: the client follows the message this handler runs for
          yield* client!.enqueue(Child, { n: 1, via: "implicit" })
          // an explicit parent: its tenant too
          yield* client!.enqueue(Child, { n: 2, via: "explicit" }, { parent: envelope })
          yield* client!.publish(Done, { n: 3 })
        }),
      [Child.subject]: ({ input, envelope }: Actor.Request<typeof Child>) =>
        Effect.andThen(Effect.logInfo(`child ${input.via} handled`), Effect.sync(() => received.set(input.via, envelope)))
    } as never)
    const groupHandlers = group.toLayer({
      [Done.subject]: ({ envelope }: { envelope: Envelope }) =>
        Effect.andThen(Effect.logInfo("event handled"), Effect.sync(() => received.set("event", envelope)))
    } as never)
    const app = App.make({
      actors: [A],
      subscribers: [group],
      events: [Done],
      handlers: Layer.mergeAll(handlers as Layer.Layer<never>, groupHandlers as Layer.Layer<never>) as never
    })
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, h.settings())
      client = rt.client
      const parent = yield* rt.client.enqueue(Start, { n: 0 }, { tenant: "acme", traceparent: TRACEPARENT })
      yield* waitFor("the children and the event", Effect.sync(() => received.size === 3))

      for (const line of ["start handled", "child implicit handled", "child explicit handled", "event handled"]) {
        expect(linesSaying(logs, line).map((l) => l.annotations.traceId)).toEqual([TRACE_ID])
      }
      for (const via of ["implicit", "explicit", "event"]) {
        const e = received.get(via)!
        expect(traceIdOf(e)).toBe(TRACE_ID)
        // a child's own span id: the trace is the same, the traceparent is not
        expect(e.traceparent).not.toBe(TRACEPARENT)
        expect(e.correlationId).toBe(parent.id)
        expect(e.causationId).toBe(parent.id)
      }
      // the tenant follows an explicit parent only: it scopes keys and dead letters
      expect(received.get("implicit")!.tenant).toBe("default")
      expect(received.get("event")!.tenant).toBe("default")
      expect(received.get("explicit")!.tenant).toBe("acme")
      expect(linesSaying(logs, "child implicit handled")[0]!.annotations).toMatchObject({
        correlationId: parent.id,
        tenant: "default",
        actor: name,
        subject: Child.subject
      })
    }), logs)
  }, 30_000)

  test("outside a handler a task starts a trace of its own", async () => {
    const name = actorName("root")
    const Ping = Task.make(`${name}.ping`, { input: Schema.Void, output: Schema.Void })
    const seen: Array<Envelope> = []
    await runTest(Effect.gen(function*() {
      const rt = yield* start(appOf([Actor.make(name, { protocol: [Ping] }), {
        [Ping.subject]: ({ envelope }) => Effect.sync(() => seen.push(envelope))
      }]), h.settings())
      yield* rt.client.enqueue(Ping, undefined)
      yield* rt.client.enqueue(Ping, undefined)
      yield* waitFor("both pings", Effect.sync(() => seen.length === 2))
      const [a, b] = seen.map(traceIdOf)
      expect(a).toMatch(/^[0-9a-f]{32}$/)
      expect(b).toMatch(/^[0-9a-f]{32}$/)
      expect(a).not.toBe(b)
      expect(seen.every((e) => e.causationId === undefined)).toBe(true)
    }))
  }, 30_000)
})

describe("OTLP export", () => {
  const spansOf = (traceId: string) => receiver.spans().filter((s) => s.traceId === traceId)
  const byName = (spans: ReadonlyArray<ReceivedSpan>, name: string) => spans.filter((s) => s.name === name)

  test("the publish and handle spans of a task and of the task its handler spawned share one trace, each handle a child of its publish", async () => {
    const name = actorName("otlp")
    const Parent = Task.make(`${name}.parent`, { input: Schema.Void, output: Schema.Void })
    const Child = Task.make(`${name}.child`, { input: Schema.Void, output: Schema.Void })
    const A = Actor.make(name, { protocol: [Parent, Child] })
    let client: Client.Client["Service"] | undefined
    let childDone = false
    let parentId = ""
    await runTest(Effect.scoped(Effect.gen(function*() {
      const rt = yield* start(appOf([A, {
        [Parent.subject]: () => Effect.asVoid(client!.enqueue(Child, undefined)),
        [Child.subject]: () => Effect.sync(() => void (childDone = true))
      }]), h.settings({ otlpEndpoint: Option.some(receiver.url) }))
      client = rt.client
      parentId = (yield* rt.client.enqueue(Parent, undefined)).id
      yield* waitFor("the child task", Effect.sync(() => childDone))
      // closing the runtime flushes the spans
    })))
    const parentPublish = receiver.spans().find((s) => s.name === `publish ${Parent.subject}` && s.attributes["messaging.message.id"] === parentId)
    expect(parentPublish).toBeDefined()
    const trace = spansOf(parentPublish!.traceId)
    const [parentHandle] = byName(trace, `handle ${Parent.subject}`)
    const [childPublish] = byName(trace, `publish ${Child.subject}`)
    const [childHandle] = byName(trace, `handle ${Child.subject}`)
    expect(parentPublish!.parentSpanId).toBe("")
    expect(parentHandle?.parentSpanId).toBe(parentPublish!.spanId)
    expect(childPublish?.parentSpanId).toBe(parentHandle!.spanId)
    expect(childHandle?.parentSpanId).toBe(childPublish!.spanId)
    expect(parentHandle!.attributes).toMatchObject({
      "messaging.destination.name": Parent.subject,
      "messaging.message.id": parentId,
      "msgsys.actor": name,
      "msgsys.attempt": 1
    })
    expect(receiver.contentTypes()).toEqual(["application/x-protobuf"])
  }, 30_000)

  test("the dashboard's polls and Prometheus scrapes make no spans", async () => {
    const name = actorName("otlphttp")
    const Ping = Task.make(`${name}.ping`, { input: Schema.Void, output: Schema.Void })
    const port = await Effect.runPromise(EmbeddedNats.freePort)
    const before = receiver.spans().length
    await runTest(Effect.scoped(Effect.gen(function*() {
      yield* start(appOf([Actor.make(name, { protocol: [Ping] }), { [Ping.subject]: () => Effect.void }]),
        h.settings({ otlpEndpoint: Option.some(receiver.url), httpPort: port, httpHost: "127.0.0.1" }))
      for (const path of ["/api/overview", "/api/failures", "/api/tasks", "/api/schedules", "/metrics"]) {
        const status = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.status))
        expect(status).toBe(200)
      }
    })))
    const names = receiver.spans().slice(before).map((s) => s.name)
    // start-up spans (the connection, the topology) are exported: the exporter was on
    expect(names).toContain("Nats.make")
    for (const polled of ["StatusReport.read", "AuditQueries.failures", "AuditQueries.search", "WorkerRegistry.list"]) {
      expect(names).not.toContain(polled)
    }
  }, 30_000)

  test("a task that fails until it is dead-lettered exports a retry span under its first run and a dead-letter span under its last", async () => {
    const name = actorName("otlpfail")
    const Work = Task.make(`${name}.work`, { input: Schema.Void, output: Schema.Void })
    const A = Actor.make(name, { protocol: [Work], retry: Retry.exponential({ base: "50 millis", jitter: false, maxAttempts: 2 }) })
    let id = ""
    await runTest(Effect.scoped(Effect.gen(function*() {
      const rt = yield* start(appOf([A, { [Work.subject]: () => Effect.fail(new Error("always")) }]), h.settings({ otlpEndpoint: Option.some(receiver.url) }))
      id = (yield* rt.client.enqueue(Work, undefined, { traceparent: TRACEPARENT.replace(TRACE_ID, "5" + TRACE_ID.slice(1)) })).id
      yield* waitFor("the task to be dead", Effect.map(rt.client.status(id), (r) => r.status === "dead"))
    })))
    const trace = spansOf("5" + TRACE_ID.slice(1))
    const handles = byName(trace, `handle ${Work.subject}`).toSorted((a, b) => Number(a.attributes["msgsys.attempt"]) - Number(b.attributes["msgsys.attempt"]))
    expect(handles.map((s) => [s.attributes["msgsys.attempt"], s.statusCode])).toEqual([[1, 2], [2, 2]])
    const [retry] = byName(trace, `retry ${Work.subject}`)
    const [dead] = byName(trace, `dead-letter ${Work.subject}`)
    expect(retry?.parentSpanId).toBe(handles[0]!.spanId)
    expect(retry?.attributes["msgsys.retry.delay_ms"]).toBe(50)
    expect(dead?.parentSpanId).toBe(handles[1]!.spanId)
    expect(dead?.attributes["msgsys.dead_letter.reason"]).toBe("exhausted")
    // every run hangs off the publisher's context: the publish span is a child of the caller's span
    const [publish] = byName(trace, `publish ${Work.subject}`)
    expect(publish?.parentSpanId).toBe("00f067aa0ba902b7")
    expect(handles.every((s) => s.parentSpanId === publish!.spanId)).toBe(true)
  }, 30_000)
})
