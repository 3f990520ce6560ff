import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as MessageId from "../../../src/envelope/MessageId.ts"

const assertStrictlyIncreasingAndUnique = (ids: ReadonlyArray<string>) => {
  expect(new Set(ids).size).toBe(ids.length)
  for (let i = 1; i < ids.length; i++) {
    if (!(ids[i - 1]! < ids[i]!)) throw new Error(`ids out of order at ${i}: ${ids[i - 1]} >= ${ids[i]}`)
  }
}

// The process-wide generator never goes back in time, and other test files share it: start each
// test after the latest timestamp it has seen.
const later = (ms: number) => MessageId.timestampOf(MessageId.makeUnsafe(0)) + ms

describe("MessageId", () => {
  test("100k ids made in the same millisecond are unique and strictly increasing", () => {
    const now = later(1_000)
    const ids = Array.from({ length: 100_000 }, () => MessageId.makeUnsafe(now))
    assertStrictlyIncreasingAndUnique(ids)
    for (const id of [ids[0]!, ids[99_999]!]) expect(MessageId.timestampOf(id)).toBe(now)
  })

  test("100k ids across advancing milliseconds are unique and strictly increasing", () => {
    const start = later(1_000)
    const ids = Array.from({ length: 100_000 }, (_, i) => MessageId.makeUnsafe(start + Math.floor(i / 7)))
    assertStrictlyIncreasingAndUnique(ids)
  })

  test("ids keep increasing when the clock steps back", () => {
    const t = later(10_000)
    const a = MessageId.makeUnsafe(t)
    const b = MessageId.makeUnsafe(t - 5_000)
    expect(b > a).toBe(true)
    expect(MessageId.timestampOf(b)).toBe(t)
  })

  test("the timestamp round-trips from 0 to the 48-bit maximum", () => {
    for (const t of [0, 1, 1_234_567_890_123, 2 ** 48 - 1]) {
      const id = MessageId.makeGenerator()(t)
      expect(MessageId.isMessageId(id)).toBe(true)
      expect(id).toHaveLength(26)
      expect(MessageId.timestampOf(id)).toBe(t)
    }
  })

  test("make takes its timestamp from the Clock", async () => {
    const t = later(1_000)
    const id = await Effect.runPromise(
      Effect.gen(function*() {
        yield* TestClock.setTime(t)
        return yield* MessageId.make
      }).pipe(Effect.provide(TestClock.layer()))
    )
    expect(MessageId.timestampOf(id)).toBe(t)
  })

  test("rejects strings that are not canonical ids", () => {
    for (const s of ["", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVV", "01arz3ndektsv4rrffq69g5fav",
      "01ARZ3NDEKTSV4RRFFQ69G5FAU", "81ARZ3NDEKTSV4RRFFQ69G5FAV"]) {
      expect(MessageId.isMessageId(s)).toBe(false)
      expect(MessageId.timestampOf(s)).toBeNaN()
    }
    expect(MessageId.isMessageId("01ARZ3NDEKTSV4RRFFQ69G5FAV")).toBe(true)
  })

  test("each generator orders its own ids, independent of the process-wide one", () => {
    const gen = MessageId.makeGenerator()
    MessageId.makeUnsafe(later(1_000))
    const a = gen(1000)
    const b = gen(1000)
    expect(MessageId.timestampOf(a)).toBe(1000)
    expect(b > a).toBe(true)
  })

  test("random parts differ between milliseconds (not a counter)", () => {
    const t = later(1_000)
    const a = MessageId.makeUnsafe(t).slice(10)
    const b = MessageId.makeUnsafe(t + 1).slice(10)
    expect(a).not.toBe(b)
  })
})
