/**
 * The dispatcher without a broker: the in-memory broker feeds it messages, the ledger and results
 * live in memory, and the TestClock drives retry delays, timeouts and heartbeats. What is checked
 * here holds on NATS too (the integration tests check the same on a real server).
 */
import { describe, expect, test } from "bun:test"
import { Effect, Fiber, Layer, Schema, type Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import { BrokerError } from "../../../src/broker/BrokerError.ts"
import * as Client from "../../../src/client/Client.ts"
import * as ResultsModule from "../../../src/task/Results.ts"
import * as Task from "../../../src/task/Task.ts"
import * as TaskError from "../../../src/task/TaskError.ts"
import type { Ledger } from "../../../src/ledger/Ledger.ts"
import { MemoryBroker } from "../../../src/testing/MemoryBroker.ts"
import * as Memory from "../../../src/testing/MemoryBroker.ts"

type Handler = (request: Actor.Request<Task.Any>) => Effect.Effect<unknown, unknown>

/** Runs `body` with an in-memory broker for one actor, on the TestClock. */
const withActor = <A, E>(
  actor: Actor.Any,
  handlers: Readonly<Record<string, Handler>>,
  body: Effect.Effect<A, E, Client.Client | MemoryBroker | Scope.Scope>
) =>
  Effect.runPromise(
    body.pipe(
      Effect.provide(
        Memory.layer([actor]).pipe(Layer.provide(actor.toLayer(handlers as never))) as Layer.Layer<Client.Client | MemoryBroker>
      ),
      Effect.scoped,
      Effect.provide(TestClock.layer())
    )
  )

let n = 0
const named = (base: string) => `${base}${++n}`

const Job = (actor: string, options: Partial<Task.Options<{ id: typeof Schema.String }, { ok: typeof Schema.Boolean }, never>> = {}) =>
  Task.make(`${actor}.job`, { input: { id: Schema.String }, output: { ok: Schema.Boolean }, ...options })

/** Lets fibers and microtasks run without moving the clock. */
const settleDown = Effect.andThen(TestClock.adjust(0), Effect.yieldNow)

describe("dispatch in memory", () => {
  test("a task runs once, its typed result is stored, and its message is acked", () => {
    const name = named("ok")
    const J = Job(name)
    let runs = 0
    return withActor(Actor.make(name, { protocol: [J] }), { [J.subject]: () => Effect.sync(() => (runs++, { ok: true })) },
      Effect.gen(function*() {
        const client = yield* Client.Client
        const broker = yield* MemoryBroker
        const handle = yield* client.enqueue(J, { id: "a" })
        expect(yield* client.result(handle, "1 minute")).toEqual({ ok: true })
        yield* settleDown
        expect(runs).toBe(1)
        expect(yield* broker.pending(name)).toBe(0)
        const steps = (yield* broker.audit).filter((r) => r.messageId === handle.id).map((r) => `${r.step}@${r.attempt}`)
        expect(steps).toEqual(["enqueued@0", "started@1", "succeeded@1"])
      }))
  })

  test("a retryable failure waits exactly the policy's delay before the next attempt", () => {
    const name = named("retry")
    const J = Job(name)
    const attempts: Array<number> = []
    const A = Actor.make(name, { protocol: [J], retry: Retry.exponential({ base: "10 seconds", jitter: false, maxAttempts: 3 }) })
    return withActor(A, {
      [J.subject]: ({ attempt }) =>
        Effect.suspend(() => {
          attempts.push(attempt)
          return attempt < 2 ? Effect.fail(new Error(`boom ${attempt}`)) : Effect.succeed({ ok: true })
        })
    }, Effect.gen(function*() {
      const client = yield* Client.Client
      const handle = yield* client.enqueue(J, { id: "a" })
      yield* settleDown
      expect(attempts).toEqual([1])
      expect((yield* client.status(handle.id)).status).toBe("failed")
      yield* TestClock.adjust("9 seconds")
      expect(attempts).toEqual([1])
      yield* TestClock.adjust("2 seconds")
      const record = yield* client.wait(handle.id, "1 minute")
      expect(attempts).toEqual([1, 2])
      expect(record.status).toBe("succeeded")
      // the history of the failed attempt is kept with the success
      expect(record.history?.map((h) => [h.attempt, h.error.message, h.retryDelayMs])).toEqual([[1, "boom 1", 10_000]])
    }))
  })

  test("an exhausted task is dead-lettered once with its whole history and never runs again", () => {
    const name = named("exhaust")
    const J = Job(name)
    let runs = 0
    const A = Actor.make(name, { protocol: [J], retry: Retry.exponential({ base: "1 second", jitter: false, maxAttempts: 3 }) })
    return withActor(A, { [J.subject]: () => Effect.suspend(() => (runs++, Effect.fail(new Error("always")))) },
      Effect.gen(function*() {
        const client = yield* Client.Client
        const broker = yield* MemoryBroker
        const handle = yield* client.enqueue(J, { id: "a" })
        yield* TestClock.adjust("1 minute")
        const record = yield* client.wait(handle.id, "1 minute")
        expect(record.status).toBe("dead")
        expect(runs).toBe(3)
        const letters = yield* broker.deadLetters
        expect(letters.map((l) => [l.taskId, l.reason, l.attempts])).toEqual([[handle.id, "exhausted", 3]])
        expect(letters[0]!.history.map((h) => h.attempt)).toEqual([1, 2, 3])
        yield* TestClock.adjust("10 minutes")
        expect(runs).toBe(3)
        expect(yield* broker.pending(name)).toBe(0)
      }))
  })

  test("a run past its timeout is interrupted (its signal aborts) and retried", () => {
    const name = named("timeout")
    const J = Job(name)
    let aborted = 0
    const attempts: Array<number> = []
    const A = Actor.make(name, {
      protocol: [J],
      timeout: "5 seconds",
      retry: Retry.exponential({ base: "1 second", jitter: false, maxAttempts: 2 })
    })
    return withActor(A, {
      [J.subject]: ({ attempt, signal }) =>
        Effect.suspend(() => {
          attempts.push(attempt)
          signal.addEventListener("abort", () => aborted++)
          return attempt === 1 ? Effect.never : Effect.succeed({ ok: true })
        })
    }, Effect.gen(function*() {
      const client = yield* Client.Client
      const handle = yield* client.enqueue(J, { id: "a" })
      yield* TestClock.adjust("5 seconds")
      yield* TestClock.adjust("2 seconds")
      const record = yield* client.wait(handle.id, "1 minute")
      expect(record.status).toBe("succeeded")
      expect(attempts).toEqual([1, 2])
      expect(aborted).toBeGreaterThanOrEqual(1)
      expect(record.history?.[0]?.error.tag).toBe("TaskTimeout")
    }))
  })

  test("a cancel interrupts a running handler: it ends cancelled and is not retried", () => {
    const name = named("cancel")
    const J = Job(name)
    let runs = 0
    return withActor(Actor.make(name, { protocol: [J] }), { [J.subject]: () => Effect.suspend(() => (runs++, Effect.never)) },
      Effect.gen(function*() {
        const client = yield* Client.Client
        const handle = yield* client.enqueue(J, { id: "a" })
        yield* settleDown
        expect(runs).toBe(1)
        yield* client.cancel(handle.id)
        expect((yield* client.wait(handle.id, "1 minute")).status).toBe("cancelled")
        yield* TestClock.adjust("10 minutes")
        expect(runs).toBe(1)
      }))
  })

  test("poison never runs: a payload that does not decode, a partitionBy or an idempotencyKey that throws", () => {
    const name = named("poison")
    const J = Task.make(`${name}.job`, {
      input: { id: Schema.String },
      output: { ok: Schema.Boolean },
      idempotencyKey: ({ id }) => {
        if (id === "bad-key") throw new Error("no key for that")
        return id
      }
    })
    const A = Actor.make(name, {
      protocol: [J],
      partitionBy: (input: { id: string }) => {
        if (input.id === "bad-partition") throw new Error("no partition for that")
        return input.id
      }
    })
    let runs = 0
    return withActor(A, { [J.subject]: () => Effect.sync(() => (runs++, { ok: true })) }, Effect.gen(function*() {
      const client = yield* Client.Client
      const broker = yield* MemoryBroker
      const wrongShape = yield* client.enqueueJson(J.subject, { id: 42 })
      const badKey = yield* client.enqueue(J, { id: "bad-key" })
      const badPartition = yield* client.enqueue(J, { id: "bad-partition" })
      const good = yield* client.enqueue(J, { id: "fine" })
      yield* client.wait(good.id, "1 minute")
      for (const h of [wrongShape, badKey, badPartition]) expect((yield* client.wait(h.id, "1 minute")).status).toBe("dead")
      expect(runs).toBe(1)
      const reasons = new Map((yield* broker.deadLetters).map((l) => [l.taskId, [l.reason, l.error.message]]))
      expect(reasons.get(wrongShape.id)![0]).toBe("poison")
      expect(reasons.get(wrongShape.id)![1]).toContain("Expected string")
      expect(reasons.get(badKey.id)![1]).toContain("idempotencyKey of task")
      expect(reasons.get(badPartition.id)![1]).toContain("partitionBy of actor")
    }))
  })

  test("a key already done returns its stored output without running again", () => {
    const name = named("done")
    const J = Job(name)
    let runs = 0
    return withActor(Actor.make(name, { protocol: [J] }), { [J.subject]: () => Effect.sync(() => (runs++, { ok: true })) },
      Effect.gen(function*() {
        const client = yield* Client.Client
        const first = yield* client.enqueue(J, { id: "a" }, { key: "k1" })
        yield* client.result(first, "1 minute")
        // past the enqueue dedup window: a second message with the same key is stored and delivered
        yield* TestClock.adjust("3 minutes")
        const second = yield* client.enqueueJson(J.subject, { id: "a" }, { key: "k1" })
        expect(second.id).toBe(first.id)
        expect(runs).toBe(1)
      }))
  })

  test("messages waiting for a busy partition key hold no slot: other keys run meanwhile", () => {
    const name = named("part")
    const J = Job(name)
    const started: Array<string> = []
    const A = Actor.make(name, {
      protocol: [J],
      concurrency: 2,
      partitionBy: (input: { id: string }) => input.id.split("-")[0]!
    })
    return withActor(A, {
      [J.subject]: ({ input }) =>
        Effect.sync(() => started.push((input as { id: string }).id)).pipe(Effect.andThen(Effect.sleep("10 seconds")), Effect.as({ ok: true }))
    }, Effect.gen(function*() {
      const client = yield* Client.Client
      // five tasks of tenant a first, then one of b and one of c: a's queue must not take both slots
      for (let i = 0; i < 5; i++) yield* client.enqueue(J, { id: `a-${i}` })
      yield* client.enqueue(J, { id: "b-0" })
      yield* client.enqueue(J, { id: "c-0" })
      yield* settleDown
      expect(started).toEqual(["a-0", "b-0"])
      yield* TestClock.adjust("10 seconds")
      expect(started.slice(2)).toEqual(["a-1", "c-0"])
      yield* TestClock.adjust("40 seconds")
      // a's tasks in order, one at a time
      expect(started.filter((s) => s.startsWith("a-"))).toEqual(["a-0", "a-1", "a-2", "a-3", "a-4"])
    }))
  })

  test("a backlog runs high first, then normal, then low", () => {
    const name = named("prio")
    const J = Job(name)
    const order: Array<string> = []
    const A = Actor.make(name, { protocol: [J], concurrency: 1 })
    return withActor(A, { [J.subject]: ({ input }) => Effect.sync(() => (order.push((input as { id: string }).id), { ok: true })) },
      Effect.gen(function*() {
        const client = yield* Client.Client
        const broker = yield* MemoryBroker
        yield* broker.setPaused(name, true)
        for (let i = 0; i < 3; i++) {
          for (const priority of ["low", "normal", "high"] as const) yield* client.enqueue(J, { id: `${priority}${i}` }, { priority })
        }
        yield* broker.setPaused(name, false)
        yield* TestClock.adjust("1 second")
        expect(order).toEqual(["high0", "high1", "high2", "normal0", "normal1", "normal2", "low0", "low1", "low2"])
      }))
  })

  test("a task running ten times its ack_wait is kept alive by heartbeats: delivered once, run once", () => {
    const name = named("long")
    const J = Job(name)
    let runs = 0
    const A = Actor.make(name, { protocol: [J], ackWait: "3 seconds", timeout: "1 hour" })
    return withActor(A, { [J.subject]: () => Effect.suspend(() => (runs++, Effect.as(Effect.sleep("30 seconds"), { ok: true }))) },
      Effect.gen(function*() {
        const client = yield* Client.Client
        const handle = yield* client.enqueue(J, { id: "a" })
        for (let i = 0; i < 31; i++) yield* TestClock.adjust("1 second")
        const record = yield* client.wait(handle.id, "1 minute")
        expect(record.status).toBe("succeeded")
        expect(record.attempt).toBe(1)
        expect(runs).toBe(1)
      }))
  })

  test("a permanent failure goes to dead letters at once, without retries", () => {
    const name = named("perm")
    const J = Job(name)
    let runs = 0
    return withActor(Actor.make(name, { protocol: [J] }), {
      [J.subject]: () => Effect.suspend(() => (runs++, Effect.fail(TaskError.permanent(new Error("card declined")))))
    }, Effect.gen(function*() {
      const client = yield* Client.Client
      const broker = yield* MemoryBroker
      const handle = yield* client.enqueue(J, { id: "a" })
      expect((yield* client.wait(handle.id, "1 minute")).status).toBe("dead")
      expect(runs).toBe(1)
      expect((yield* broker.deadLetters).map((l) => l.reason)).toEqual(["permanent"])
    }))
  })

  test("a worker holds no more messages than its free slots (concurrency 3, no prefetch): the backlog waits in the queue", () => {
    const name = named("slots")
    const J = Job(name)
    const A = Actor.make(name, { protocol: [J], concurrency: 3 })
    return withActor(A, { [J.subject]: () => Effect.as(Effect.sleep("1 second"), { ok: true }) }, Effect.gen(function*() {
      const client = yield* Client.Client
      const broker = yield* MemoryBroker
      const handles = yield* client.enqueueMany(J, Array.from({ length: 20 }, (_, i) => ({ id: `t${i}` })))
      const waiting = yield* Effect.forkChild(Effect.forEach(handles, (h) => client.result(h, "1 hour"), { discard: true }))
      const held: Array<number> = []
      for (let i = 0; i < 30; i++) {
        yield* TestClock.adjust("500 millis")
        held.push(yield* broker.held(name))
      }
      yield* Fiber.join(waiting)
      // the bound is reached (so it is not vacuous) and never passed
      expect(Math.max(...held)).toBe(3)
      expect(yield* broker.pending(name)).toBe(0)
    }))
  })
})

describe("keys and records (issue 13)", () => {
  test("idempotency keys are scoped by tenant: another tenant's key never returns this tenant's outcome", () => {
    const name = named("scope")
    const J = Job(name)
    const ran: Array<string> = []
    return withActor(Actor.make(name, { protocol: [J] }), {
      [J.subject]: ({ envelope }) => Effect.sync(() => (ran.push(envelope.tenant), { ok: true }))
    }, Effect.gen(function*() {
      const client = yield* Client.Client
      const broker = yield* MemoryBroker
      // a publisher of tenant "mallory" completes key "invoice-1" first, with its own header
      yield* broker.publish(J.subject, JSON.stringify({ id: "x" }), {
        "Msgsys-Id": "01M0000000000000000000000A",
        "Msgsys-Tenant": "mallory",
        "Msgsys-Idempotency-Key": "invoice-1"
      })
      yield* client.wait("01M0000000000000000000000A", "1 minute")
      // tenant "acme"'s task with the same key runs for itself
      const handle = yield* client.enqueue(J, { id: "y" }, { tenant: "acme", key: "invoice-1" })
      const record = yield* client.wait(handle.id, "1 minute")
      expect(record.duplicateOf).toBeUndefined()
      expect(ran).toEqual(["mallory", "acme"])
    }))
  })

  test("a handler receives its scoped idempotency key, to pass on to external APIs", () => {
    const name = named("keyarg")
    const J = Job(name)
    const keys: Array<string> = []
    return withActor(Actor.make(name, { protocol: [J] }), {
      [J.subject]: ({ idempotencyKey }) => Effect.sync(() => (keys.push(idempotencyKey), { ok: true }))
    }, Effect.gen(function*() {
      const client = yield* Client.Client
      const keyed = yield* client.enqueue(J, { id: "a" }, { tenant: "acme", key: "order-7" })
      const plain = yield* client.enqueue(J, { id: "b" })
      yield* client.wait(keyed.id, "1 minute")
      yield* client.wait(plain.id, "1 minute")
      expect(keys).toEqual([`acme/${J.subject}/key/order-7`, `default/${J.subject}/id/${plain.id}`])
    }))
  })

  test("every task gets its 'enqueued' audit row, from the message's creation, whoever published it", () => {
    const name = named("enq")
    const J = Job(name)
    return withActor(Actor.make(name, { protocol: [J] }), { [J.subject]: () => Effect.succeed({ ok: true }) },
      Effect.gen(function*() {
        const client = yield* Client.Client
        const broker = yield* MemoryBroker
        yield* broker.publish(J.subject, JSON.stringify({ id: "plain" }), { "Msgsys-Id": "01M0000000000000000000000B" })
        const typed = yield* client.enqueue(J, { id: "typed" })
        yield* client.wait("01M0000000000000000000000B", "1 minute")
        yield* client.wait(typed.id, "1 minute")
        const audit = yield* broker.audit
        for (const id of ["01M0000000000000000000000B", typed.id]) {
          expect(audit.filter((r) => r.messageId === id).map((r) => `${r.step}@${r.attempt}`)).toEqual(
            ["enqueued@0", "started@1", "succeeded@1"]
          )
        }
      }))
  })

  test("the attempt history is never overwritten with less when reading it fails for a while", () => {
    const name = named("history")
    const J = Job(name)
    let failReads = false
    return Effect.runPromise(Effect.gen(function*() {
      const inner = yield* ResultsModule.makeMemory
      const flaky: typeof inner = {
        ...inner,
        get: (id) => Effect.suspend(() => (failReads ? Effect.fail(new BrokerError({ operation: "read", reason: "flaky" })) : inner.get(id)))
      }
      const A = Actor.make(name, { protocol: [J], retry: Retry.exponential({ base: "1 second", jitter: false, maxAttempts: 4 }) })
      const handlers = A.toLayer({
        [J.subject]: ({ attempt }: { attempt: number }) =>
          attempt < 3 ? Effect.fail(new Error(`fail ${attempt}`)) : Effect.succeed({ ok: true })
      } as never)
      const layer = Memory.layer([A], { results: flaky }).pipe(Layer.provide(handlers)) as Layer.Layer<Client.Client | MemoryBroker>
      yield* Effect.gen(function*() {
        const client = yield* Client.Client
        const handle = yield* client.enqueue(J, { id: "a" })
        yield* settleDown
        // the second failure's history read fails, then the store comes back
        failReads = true
        yield* TestClock.adjust("1 second")
        yield* TestClock.adjust("600 millis")
        failReads = false
        yield* TestClock.adjust("10 seconds")
        const record = yield* client.wait(handle.id, "1 minute")
        expect(record.status).toBe("succeeded")
        expect(record.history?.map((h) => h.attempt)).toEqual([1, 2])
      }).pipe(Effect.provide(layer), Effect.scoped)
    }).pipe(Effect.provide(TestClock.layer())))
  })
})

describe("keys: checked first, claimed when a run goes on", () => {
  type Call = { readonly op: "claim" | "check" | "settle" | "renew"; readonly keys: ReadonlyArray<string>; readonly detail: ReadonlyArray<string> }

  /** An in-memory broker whose ledger records every call; `ledger` is the unwrapped one, to interfere with. */
  const withSpiedLedger = <A, E>(
    actor: Actor.Any,
    handlers: Readonly<Record<string, Handler>>,
    body: (calls: Array<Call>, ledger: () => Ledger["Service"]) => Effect.Effect<A, E, Client.Client | MemoryBroker | Scope.Scope>
  ) => {
    const calls: Array<Call> = []
    let inner: Ledger["Service"] | undefined
    const spy = (l: Ledger["Service"]): Ledger["Service"] => {
      inner = l
      return {
        ...l,
        claim: (requests) => (calls.push({ op: "claim", keys: requests.map((r) => r.run.key), detail: requests.flatMap((r) => r.audit.map((a) => a.step)) }), l.claim(requests)),
        check: (runs) => (calls.push({ op: "check", keys: runs.map((r) => r.key), detail: [] }), l.check!(runs)),
        settle: (items) => (calls.push({
          op: "settle",
          keys: items.flatMap((i) => ("run" in i ? [i.run.key] : [])),
          detail: items.flatMap((i) => [
            `${i._tag}${"run" in i && i.run.claimed === false ? " unclaimed" : ""}`,
            ...i.audit.map((a) => a.step)
          ])
        }), l.settle(items)),
        renew: (runs, leaseMs) => (calls.push({ op: "renew", keys: runs.map((r) => r.key), detail: [] }), l.renew(runs, leaseMs))
      }
    }
    return Effect.runPromise(
      body(calls, () => inner!).pipe(
        Effect.provide(
          Memory.layer([actor], { ledger: spy }).pipe(Layer.provide(actor.toLayer(handlers as never))) as Layer.Layer<Client.Client | MemoryBroker>
        ),
        Effect.scoped,
        Effect.provide(TestClock.layer())
      )
    )
  }
  const steal = (ledger: Ledger["Service"], key: string) =>
    ledger.claim([{ run: { key, owner: "another-worker", sequence: 0 }, leaseMs: 10 * 60_000, audit: [] }])

  test("a short run keyed by its message id is only checked before it runs, and writes once: its key, started and succeeded rows together", () => {
    const name = named("short")
    const J = Job(name)
    let key = ""
    return withSpiedLedger(Actor.make(name, { protocol: [J] }), {
      [J.subject]: ({ idempotencyKey }) => Effect.sync(() => ((key = idempotencyKey), { ok: true }))
    }, (calls) =>
      Effect.gen(function*() {
        const client = yield* Client.Client
        const handle = yield* client.enqueue(J, { id: "a" })
        expect(yield* client.result(handle, "1 minute")).toEqual({ ok: true })
        yield* settleDown
        const mine = calls.filter((c) => c.keys.includes(key))
        expect(mine.map((c) => [c.op, ...c.detail])).toEqual([
          ["check"],
          ["settle", "Complete unclaimed", "enqueued", "started", "succeeded"]
        ])
      }))
  })

  test("a run that goes on past a quarter of ack_wait (at most 1 s) claims its key with its started row, then renews it", () => {
    const name = named("long")
    const J = Job(name)
    let key = ""
    let release: (() => void) | undefined
    return withSpiedLedger(Actor.make(name, { protocol: [J] }), {
      [J.subject]: ({ idempotencyKey }) =>
        Effect.callback<{ ok: boolean }>((resume) => {
          key = idempotencyKey
          release = () => resume(Effect.succeed({ ok: true }))
        })
    }, (calls) =>
      Effect.gen(function*() {
        const client = yield* Client.Client
        const handle = yield* client.enqueue(J, { id: "a" })
        yield* settleDown
        yield* TestClock.adjust("900 millis")
        expect(calls.filter((c) => c.keys.includes(key)).map((c) => c.op)).toEqual(["check"])
        yield* TestClock.adjust("200 millis")
        yield* TestClock.adjust("30 seconds")
        release!()
        expect(yield* client.result(handle, "1 minute")).toEqual({ ok: true })
        yield* settleDown
        const mine = calls.filter((c) => c.keys.includes(key))
        expect(mine[1]).toEqual({ op: "claim", keys: [key], detail: ["enqueued", "started"] })
        expect(mine.some((c) => c.op === "renew")).toBe(true)
        expect(mine.at(-1)!.detail).toEqual(["Complete", "succeeded"])
      }))
  })

  test("a run whose key another run takes before it claims it is stopped at its late claim and stores nothing", () => {
    const name = named("stolen")
    const J = Job(name)
    let key = ""
    let runs = 0
    let aborted = 0
    return withSpiedLedger(Actor.make(name, { protocol: [J] }), {
      [J.subject]: ({ idempotencyKey, signal }) =>
        Effect.suspend(() => {
          runs++
          key = idempotencyKey
          signal.addEventListener("abort", () => aborted++)
          return Effect.never
        })
    }, (calls, ledger) =>
      Effect.gen(function*() {
        const client = yield* Client.Client
        const broker = yield* MemoryBroker
        const handle = yield* client.enqueue(J, { id: "a" })
        yield* settleDown
        yield* steal(ledger(), key)
        yield* TestClock.adjust("1100 millis")
        yield* settleDown
        expect(aborted).toBe(1)
        expect(runs).toBe(1)
        expect(calls.some((c) => c.op === "settle" && c.keys.includes(key))).toBe(false)
        expect((yield* broker.audit).filter((r) => r.messageId === handle.id && r.step === "succeeded")).toEqual([])
        expect((yield* client.status(handle.id)).status).not.toBe("succeeded")
      }))
  })

  test("a short run that ends while another run holds its key stores nothing and leaves its message for redelivery", () => {
    const name = named("race")
    const J = Job(name)
    let runs = 0
    return Effect.runPromise(Effect.gen(function*() {
      let inner: Ledger["Service"] | undefined
      const A = Actor.make(name, { protocol: [J] })
      const handlers = A.toLayer({
        [J.subject]: ({ idempotencyKey }: { idempotencyKey: string }) =>
          Effect.gen(function*() {
            runs++
            // another worker got the same message (say, after a stall past ack_wait) and claimed it
            yield* steal(inner!, idempotencyKey)
            return { ok: true }
          })
      } as never)
      const layer = Memory.layer([A], { ledger: (l) => (inner = l) }).pipe(Layer.provide(handlers)) as Layer.Layer<Client.Client | MemoryBroker>
      yield* Effect.gen(function*() {
        const client = yield* Client.Client
        const broker = yield* MemoryBroker
        const handle = yield* client.enqueue(J, { id: "a" })
        yield* settleDown
        expect(runs).toBe(1)
        expect((yield* broker.audit).filter((r) => r.messageId === handle.id).map((r) => r.step)).toEqual([])
        expect(yield* broker.held(name)).toBe(1)
      }).pipe(Effect.provide(layer), Effect.scoped)
    }).pipe(Effect.provide(TestClock.layer())))
  })

  test("a given key (shared by different messages) is claimed before its run starts", () => {
    const name = named("given")
    const J = Job(name)
    const order: Array<string> = []
    return withSpiedLedger(Actor.make(name, { protocol: [J] }), {
      [J.subject]: () => Effect.sync(() => (order.push("run"), { ok: true }))
    }, (calls) =>
      Effect.gen(function*() {
        const client = yield* Client.Client
        const handle = yield* client.enqueue(J, { id: "a" }, { key: "order-7" })
        yield* client.result(handle, "1 minute")
        const mine = calls.filter((c) => c.keys.some((k) => k.endsWith("/key/order-7")))
        expect(mine.map((c) => c.op)).toEqual(["claim", "settle"])
        expect(mine[0]!.detail).toEqual(["enqueued", "started"])
        expect(mine[1]!.detail).toEqual(["Complete", "succeeded"])
        expect(order).toEqual(["run"])
      }))
  })

  test("a second message of a task id this worker is running waits for the first, then is answered from its outcome without running", () => {
    const name = named("copy")
    const J = Job(name)
    let runs = 0
    let release: (() => void) | undefined
    const id = "01M0000000000000000000000C"
    return withSpiedLedger(Actor.make(name, { protocol: [J] }), {
      [J.subject]: () =>
        Effect.callback<{ ok: boolean }>((resume) => {
          runs++
          release = () => resume(Effect.succeed({ ok: true }))
        })
    }, () =>
      Effect.gen(function*() {
        const client = yield* Client.Client
        const broker = yield* MemoryBroker
        // two stored messages with one task id (a copy published without the stream's dedup id)
        yield* broker.publish(J.subject, JSON.stringify({ id: "a" }), { "Msgsys-Id": id })
        yield* settleDown
        yield* broker.publish(J.subject, JSON.stringify({ id: "a" }), { "Msgsys-Id": id })
        yield* settleDown
        yield* TestClock.adjust("500 millis")
        expect(runs).toBe(1)
        release!()
        yield* settleDown
        yield* TestClock.adjust("15 seconds")
        expect(runs).toBe(1)
        expect(yield* broker.pending(name)).toBe(0)
        const steps = (yield* broker.audit).filter((r) => r.messageId === id).map((r) => r.step)
        expect(steps.filter((s) => s === "succeeded")).toHaveLength(1)
        expect(steps).toContain("skipped_duplicate")
      }))
  })

  test("a redelivery claims its key before it runs (it may be a copy another worker still runs)", () => {
    const name = named("again")
    const J = Job(name)
    let key = ""
    const A = Actor.make(name, { protocol: [J], retry: Retry.exponential({ base: "1 second", jitter: false, maxAttempts: 3 }) })
    return withSpiedLedger(A, {
      [J.subject]: ({ attempt, idempotencyKey }) =>
        Effect.suspend(() => {
          key = idempotencyKey
          return attempt === 1 ? Effect.fail(new Error("first time")) : Effect.succeed({ ok: true })
        })
    }, (calls) =>
      Effect.gen(function*() {
        const client = yield* Client.Client
        const handle = yield* client.enqueue(J, { id: "a" })
        yield* settleDown
        yield* TestClock.adjust("2 seconds")
        expect(yield* client.result(handle, "1 minute")).toEqual({ ok: true })
        const mine = calls.filter((c) => c.keys.includes(key))
        expect(mine.map((c) => [c.op, c.detail[0]])).toEqual([
          ["check", undefined],
          ["settle", "Release unclaimed"],
          ["claim", "started"],
          ["settle", "Complete"]
        ])
      }))
  })
})
