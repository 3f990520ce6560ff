/**
 * Effectively-once execution (guarantee 2): a repeated enqueue key makes one task, and a task
 * whose idempotency key is already done is not run again but answers with the stored outcome.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, auditSteps, Runs, runTest, start, taskCount, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

const settings = () => h.settings({ ackWait: Duration.seconds(3), shutdownGrace: Duration.seconds(2) })

describe("idempotency", () => {
  test("a second enqueue with the same key returns the first task's handle as a duplicate, and the handler runs once", async () => {
    const name = actorName("ikey")
    const Charge = Task.make(`${name}.charge`, { input: { cents: Schema.Number }, output: { cents: Schema.Number } })
    const A = Actor.make(name, { protocol: [Charge], retry: Retry.none })
    const runs = new Runs()
    const app = appOf([A, {
      [Charge.subject]: ({ input, taskId }) => Effect.sync(() => runs.add(taskId)).pipe(Effect.as({ cents: input.cents }))
    }])
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings())
      const first = yield* rt.client.enqueue(Charge, { cents: 100 }, { key: "order-1" })
      const second = yield* rt.client.enqueue(Charge, { cents: 100 }, { key: "order-1" })
      expect(first.duplicate).toBe(false)
      expect(second.duplicate).toBe(true)
      expect(second.id).toBe(first.id)
      expect(yield* rt.client.result(second, "10 seconds")).toEqual({ cents: 100 })
      // once more after it completed
      const third = yield* rt.client.enqueue(Charge, { cents: 100 }, { key: "order-1" })
      expect(third).toMatchObject({ id: first.id, duplicate: true })
      yield* Effect.sleep("500 millis")
      expect(runs.total).toBe(1)
      expect(runs.count(first.id)).toBe(1)
      yield* waitFor("the task stream to empty", Effect.map(taskCount(rt, name), (n) => n === 0))
    }))
  }, 30_000)

  test("a task whose idempotency key already completed is skipped with the stored output, duplicateOf set and audited", async () => {
    const name = actorName("idone")
    const Charge = Task.make(`${name}.charge`, {
      input: { orderId: Schema.String, cents: Schema.Number },
      output: { charged: Schema.Number },
      idempotencyKey: (input: { orderId: string }) => input.orderId
    })
    const A = Actor.make(name, { protocol: [Charge], retry: Retry.none })
    const runs = new Runs()
    const app = appOf([A, {
      [Charge.subject]: ({ input, taskId }) => Effect.sync(() => runs.add(taskId)).pipe(Effect.as({ charged: input.cents }))
    }])
    const s = settings()
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, s)
      const first = yield* rt.client.enqueue(Charge, { orderId: "o-7", cents: 500 })
      expect(yield* rt.client.result(first, "10 seconds")).toEqual({ charged: 500 })
      // another message (another id) for the same order, with a different amount
      const again = yield* rt.client.enqueue(Charge, { orderId: "o-7", cents: 999 })
      expect(again.duplicate).toBe(false)
      expect(again.id).not.toBe(first.id)
      expect(yield* rt.client.result(again, "10 seconds")).toEqual({ charged: 500 })
      const record = yield* rt.client.status(again.id)
      expect(record.status).toBe("succeeded")
      expect(record.duplicateOf).toBeDefined()
      expect(record.duplicateOf).toContain("o-7")
      expect(runs.count(first.id)).toBe(1)
      expect(runs.count(again.id)).toBe(0)
      expect(runs.total).toBe(1)
      yield* waitFor("the audit rows", Effect.sync(() => auditSteps(s.sqlitePath, again.id).includes("skipped_duplicate")))
      expect(auditSteps(s.sqlitePath, again.id)).not.toContain("started")
      expect(auditSteps(s.sqlitePath, first.id)).toContain("succeeded")
    }))
  }, 30_000)
})
