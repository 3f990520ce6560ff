/**
 * What the hardening of the core (issue 13) guarantees, on a real server: a task decided dead
 * never runs again while its dead letter cannot be written; pauses and cancels set before a worker
 * starts hold from its first pull; a lost lease stops the handler and stores nothing; a keyed
 * enqueue returns only ids whose message the stream stored.
 */
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Layer, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Topology from "../../../src/broker/Topology.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as ActorTopology from "../../../src/actor/ActorTopology.ts"
import * as Control from "../../../src/control/Control.ts"
import * as Services from "../../../src/app/Services.ts"
import * as Client from "../../../src/client/Client.ts"
import { EnqueueKeys } from "../../../src/task/EnqueueKeys.ts"
import * as Task from "../../../src/task/Task.ts"
import * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { ackPending, appOf, auditSteps, deadLetters, Runs, runTest, start, taskCount, waitFor, withBroker } from "../../support/runtimeTools.ts"

const h = natsHarness()

const settings = () => h.settings({ ackWait: Duration.seconds(3), shutdownGrace: Duration.seconds(2) })

/** The broker-side services alone (no worker), to act like a client or an operator. */
const clientSide = (s: MsgsysConfig.MsgsysSettings) =>
  Layer.build(Client.layer.pipe(Layer.provideMerge(Services.broker), Layer.provideMerge(Layer.succeed(MsgsysConfig.MsgsysConfig, s))))

describe("decided dead is final", () => {
  test("a task decided dead is not run again while its dead letter cannot be written; it is moved once the DLQ is back", () =>
    runTest(Effect.gen(function*() {
      const name = actorName("dlqdown")
      const Job = Task.make(`${name}.job`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
      const A = Actor.make(name, { protocol: [Job], retry: Retry.none })
      const runs = new Runs()
      const s = settings()
      const rt = yield* start(appOf([A, { [Job.subject]: ({ taskId }) => Effect.suspend(() => (runs.add(taskId), Effect.fail(new Error("always")))) }]), s)
      // the dead-letter stream goes away: every move fails until it is back
      yield* Effect.promise(() => rt.nats.manager.streams.delete(rt.names.deadLetterStream))
      const handle = yield* rt.client.enqueue(Job, { n: 1 })
      yield* waitFor("the first run", Effect.sync(() => runs.count(handle.id) === 1))
      // it comes back (nak'ed) and finds its key marked dead: it is not run again
      yield* Effect.sleep("7 seconds")
      expect(runs.count(handle.id)).toBe(1)
      expect(yield* taskCount(rt, name)).toBe(1)
      yield* withBroker(rt)(Topology.apply(ActorTopology.shared(rt.names, s)))
      expect((yield* rt.client.wait(handle.id, "30 seconds")).status).toBe("dead")
      yield* waitFor("the original to go", Effect.map(taskCount(rt, name), (n) => n === 0), "15 seconds")
      expect(runs.count(handle.id)).toBe(1)
      const letters = yield* deadLetters(rt, name)
      expect(letters.map((l) => [l.taskId, l.reason])).toEqual([[handle.id, "exhausted"]])
      expect(auditSteps(s.sqlitePath, handle.id).filter((st) => st === "dead_lettered")).toEqual(["dead_lettered"])
    })), 60_000)
})

describe("control state before the first pull", () => {
  test("an actor paused before its worker starts takes nothing; a task cancelled before it starts never runs", async () => {
    const name = actorName("prepause")
    const Job = Task.make(`${name}.job`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
    const A = Actor.make(name, { protocol: [Job] })
    const runs = new Runs()
    const app = appOf([A, { [Job.subject]: ({ input, taskId }) => Effect.sync(() => (runs.add(taskId), input)) }])
    const s = settings()
    await runTest(Effect.gen(function*() {
      // a first worker declares the topology, then stops
      yield* Effect.scoped(start(app, s))
      const ctx = yield* clientSide(s)
      const client = yield* Effect.provide(Client.Client, ctx)
      const control = yield* Effect.provide(Control.Control, ctx)
      yield* control.pause({ kind: "actor", name })
      const handles = yield* Effect.forEach(Array.from({ length: 20 }, (_, n) => n), (n) => client.enqueue(Job, { n }))
      const cancelled = yield* client.enqueue(Job, { n: 99 })
      yield* client.cancel(cancelled.id)
      // a new worker starts with the pause and the cancel already there
      const rt = yield* start(app, s)
      yield* Effect.sleep("1 second")
      expect(runs.total).toBe(0)
      expect(yield* ackPending(rt, name)).toBe(0)
      expect(yield* taskCount(rt, name)).toBe(21)
      yield* control.resume({ kind: "actor", name })
      for (const hd of handles) yield* client.result(hd, "20 seconds")
      expect((yield* client.wait(cancelled.id, "20 seconds")).status).toBe("cancelled")
      expect(runs.total).toBe(20)
      expect(runs.count(cancelled.id)).toBe(0)
    }))
  }, 60_000)
})

describe("leases", () => {
  test("a lease another worker took over stops the handler (its signal aborts) and stores no outcome", () =>
    runTest(Effect.gen(function*() {
      const name = actorName("steal")
      const Job = Task.make(`${name}.job`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
      const A = Actor.make(name, { protocol: [Job], timeout: "1 minute", ackWait: "3 seconds" })
      const runs = new Runs()
      const aborted = new Runs()
      const s = settings()
      const rt = yield* start(appOf([A, {
        [Job.subject]: ({ input, taskId, signal }) =>
          Effect.gen(function*() {
            runs.add(taskId)
            signal.addEventListener("abort", () => aborted.add(taskId))
            yield* Effect.sleep("20 seconds")
            return input
          })
      }]), s)
      const handle = yield* rt.client.enqueue(Job, { n: 1 })
      yield* waitFor("the run to start", Effect.sync(() => runs.count(handle.id) === 1))
      // a run keyed by its message id claims the key once it goes on (within a quarter of ack_wait)
      const db = new Database(s.sqlitePath)
      const keyRow = () => db.query("SELECT owner FROM idempotency_keys WHERE key LIKE ?").get(`%/id/${handle.id}`)
      yield* waitFor("the run to claim its key", Effect.sync(() => keyRow() !== null), "5 seconds")
      // another worker takes the key over, as after this one stalled past its lease
      const stolen = db.run(
        "UPDATE idempotency_keys SET owner = 'thief/elsewhere/9', held_until = ? WHERE key LIKE ?",
        [Date.now() + 600_000, `%/id/${handle.id}`]
      ).changes
      db.close()
      expect(stolen).toBe(1)
      // the next lease renewal (a heartbeat, about a second) finds it gone and stops the handler
      yield* waitFor("the handler to be stopped", Effect.sync(() => aborted.count(handle.id) === 1), "10 seconds")
      yield* Effect.sleep("500 millis")
      expect(auditSteps(s.sqlitePath, handle.id)).not.toContain("succeeded")
      expect((yield* rt.client.status(handle.id)).status).not.toBe("succeeded")
      expect(runs.count(handle.id)).toBe(1)
      // nothing was acked: the message is still there for the thief
      expect(yield* taskCount(rt, name)).toBe(1)
    })), 60_000)
})

describe("keyed enqueue", () => {
  test("a keyed enqueue whose publish fails frees its key: the next enqueue with it creates and runs the task", () =>
    runTest(Effect.gen(function*() {
      const name = actorName("keyfail")
      const Job = Task.make(`${name}.job`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
      const A = Actor.make(name, { protocol: [Job] })
      const runs = new Runs()
      const s = settings()
      const ctx = yield* clientSide(s)
      const client = yield* Effect.provide(Client.Client, ctx)
      // no worker has declared the actor yet: no stream stores the subject
      const failed = yield* Effect.flip(client.enqueue(Job, { n: 1 }, { key: "k" }))
      expect(failed._tag).toBe("NoStreamForSubject")
      const rt = yield* start(appOf([A, { [Job.subject]: ({ input, taskId }) => Effect.sync(() => (runs.add(taskId), input)) }]), s)
      const handle = yield* rt.client.enqueue(Job, { n: 2 }, { key: "k" })
      expect(handle.duplicate).toBe(false)
      expect(yield* rt.client.result(handle, "10 seconds")).toEqual({ n: 2 })
      expect(runs.total).toBe(1)
    })), 30_000)

  test("a key reserved by an enqueue that never got its ack is completed by the next enqueue: its id is stored and runs", () =>
    runTest(Effect.gen(function*() {
      const name = actorName("keyorphan")
      const Job = Task.make(`${name}.job`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
      const A = Actor.make(name, { protocol: [Job] })
      const runs = new Runs()
      const s = settings()
      const rt = yield* start(appOf([A, { [Job.subject]: ({ input, taskId }) => Effect.sync(() => (runs.add(taskId), input)) }]), s)
      // what an enqueue that crashed after reserving, before its publish was acked, leaves behind
      const orphan = "01M00000000000000000ORPHAN"
      const ctx = yield* clientSide(s)
      const keys = yield* Effect.provide(EnqueueKeys, ctx)
      const { createHash } = yield* Effect.promise(() => import("node:crypto"))
      const index = `key.${createHash("sha256").update(`default\u0000${Job.subject}\u0000k`).digest("hex")}`
      expect((yield* keys.reserve(index, orphan)).taskId).toBe(orphan)
      const handle = yield* rt.client.enqueue(Job, { n: 3 }, { key: "k" })
      // the id it returns is stored and runs: a client waiting on it gets the result
      expect(handle.id).toBe(orphan)
      expect(yield* rt.client.result(handle, "10 seconds")).toEqual({ n: 3 })
      // and the reservation is confirmed: the next enqueue is a duplicate without a publish
      const again = yield* rt.client.enqueue(Job, { n: 4 }, { key: "k" })
      expect(again).toMatchObject({ id: orphan, duplicate: true })
      yield* waitFor("the stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
      expect(runs.total).toBe(1)
    })), 30_000)
})
