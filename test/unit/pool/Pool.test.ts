import { describe, expect, test } from "bun:test"
import { Effect, Fiber } from "effect"
import * as Pool from "../../../src/pool/Pool.ts"
import * as Slots from "../../../src/pool/Slots.ts"

describe("slots", () => {
  test("hands out as many slots as are free, up to the maximum asked", async () => {
    const slots = Slots.make(5)
    expect(await Effect.runPromise(slots.acquireUpTo(3))).toBe(3)
    expect(await Effect.runPromise(slots.acquireUpTo(3))).toBe(2)
    expect(slots.inUse()).toBe(5)
  })

  test("waits while none is free, and wakes when one is released", async () => {
    await Effect.runPromise(Effect.gen(function*() {
      const slots = Slots.make(1)
      yield* slots.acquireUpTo(1)
      const waiting = yield* Effect.forkChild(slots.acquireUpTo(4), { startImmediately: true })
      yield* Effect.yieldNow
      expect(waiting.pollUnsafe()).toBeUndefined()
      yield* slots.release(1)
      expect(yield* Fiber.join(waiting)).toBe(1)
      expect(slots.inUse()).toBe(1)
    }))
  })

  test("an interrupted waiter takes no slot", async () => {
    await Effect.runPromise(Effect.gen(function*() {
      const slots = Slots.make(1)
      yield* slots.acquireUpTo(1)
      const waiting = yield* Effect.forkChild(slots.acquireUpTo(1), { startImmediately: true })
      yield* Fiber.interrupt(waiting)
      yield* slots.release(1)
      expect(slots.inUse()).toBe(0)
      const idle = yield* Effect.forkChild(slots.awaitIdle, { startImmediately: true })
      yield* Fiber.join(idle)
    }))
  })
})

describe("pools", () => {
  test("an actor in a pool that is not configured is refused with the variable to set", async () => {
    const error = await Effect.runPromise(Effect.flip(Pool.makeAll(
      [{ name: "fast", concurrency: 4 }, { name: "slow", concurrency: 1 }],
      [{ name: "etl", pool: "slow" }, { name: "gpu", pool: "cuda" }]
    )))
    expect(error._tag).toBe("UnknownPool")
    expect(error.message).toContain('actor gpu runs in pool "cuda"')
    expect(error.message).toContain('MSGSYS_POOLS="cuda=4"')
  })

  test("actors of one pool share its slots; other pools have their own", async () => {
    const pools = await Effect.runPromise(Pool.makeAll(
      [{ name: "fast", concurrency: 4 }, { name: "slow", concurrency: 1 }],
      [{ name: "a", pool: "fast" }, { name: "b", pool: "fast" }, { name: "c", pool: "slow" }]
    ))
    expect([...pools.keys()].sort()).toEqual(["fast", "slow"])
    expect(pools.get("fast")!.slots.size).toBe(4)
    expect(pools.get("slow")!.slots.size).toBe(1)
  })
})
