import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import * as Partitions from "../../../src/runtime/Partitions.ts"

describe("partitions", () => {
  test("runs with one key go one at a time in call order; other keys run alongside", async () => {
    const partitions = Partitions.make()
    const log: Array<string> = []
    let running = 0
    let most = 0
    const job = (key: string, n: number, ms: number) =>
      partitions.withKey(key, Effect.gen(function*() {
        running++
        most = Math.max(most, running)
        log.push(`start ${key}${n}`)
        yield* Effect.sleep(ms)
        log.push(`end ${key}${n}`)
        running--
      }))
    await Effect.runPromise(Effect.all([job("a", 1, 30), job("a", 2, 1), job("b", 1, 5), job("a", 3, 1)], { concurrency: "unbounded" }))
    const aEvents = log.filter((l) => l.includes(" a"))
    expect(aEvents).toEqual(["start a1", "end a1", "start a2", "end a2", "start a3", "end a3"])
    expect(most).toBe(2)
    expect(partitions.size()).toBe(0)
  })

  test("a failed run does not block the next one of its key", async () => {
    const partitions = Partitions.make()
    const first = await Effect.runPromiseExit(partitions.withKey("k", Effect.fail("boom")))
    expect(first._tag).toBe("Failure")
    expect(await Effect.runPromise(partitions.withKey("k", Effect.succeed(2)))).toBe(2)
  })
})
