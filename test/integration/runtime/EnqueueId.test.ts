/**
 * Enqueue with a task id the caller derives (as the scheduler does per tick) and with extension
 * headers for the handler.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

describe("enqueue with an id", () => {
  test("a given id is the task's id and dedup id: a second enqueue with it stores nothing and runs nothing; the handler reads the extra headers", () =>
    runTest(Effect.gen(function*() {
      const name = actorName("eid")
      const Echo = Task.make(`${name}.echo`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
      const seen: Array<{ taskId: string; n: number; extra: Readonly<Record<string, string>> }> = []
      const A = Actor.make(name, { protocol: [Echo], retry: Retry.none })
      const rt = yield* start(appOf([A, {
        [Echo.subject]: ({ input, taskId, envelope }) =>
          Effect.sync(() => {
            const n = (input as { n: number }).n
            seen.push({ taskId, n, extra: envelope.extra })
            return { n }
          })
      }]), h.settings())

      const headers = { "Msgsys-Origin": "test", "Msgsys-Run-At": "1", "X-Other": "dropped" }
      const first = yield* rt.client.enqueue(Echo, { n: 1 }, { id: "made-here-1", headers })
      const again = yield* rt.client.enqueue(Echo, { n: 2 }, { id: "made-here-1", headers })
      expect([first.id, first.duplicate]).toEqual(["made-here-1", false])
      expect([again.id, again.duplicate]).toEqual(["made-here-1", true])
      expect(yield* rt.client.result(first, "10 seconds")).toEqual({ n: 1 })
      yield* Effect.sleep("300 millis")
      expect(seen.map((s) => [s.taskId, s.n])).toEqual([["made-here-1", 1]])
      // only Msgsys-* extension headers pass; the ones msgsys sets itself cannot be given this way
      expect(seen[0]!.extra["Msgsys-Origin"]).toBe("test")
      expect(seen[0]!.extra["Msgsys-Run-At"]).toBeUndefined()
      expect(Object.keys(seen[0]!.extra).some((k) => k.toLowerCase() === "x-other")).toBe(false)

      const bad = yield* Effect.flip(rt.client.enqueueJson(Echo.subject, { n: 3 }, { id: "no spaces *" }))
      expect(bad._tag).toBe("InvalidTaskId")
      yield* waitFor("nothing else to run", Effect.sync(() => seen.length === 1), "1 second")
    })), 30_000)
})
