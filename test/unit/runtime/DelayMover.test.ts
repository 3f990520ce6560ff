import { describe, expect, test } from "bun:test"
import type { JetStreamClient } from "@nats-io/jetstream"
import { Duration, Effect, Fiber, Logger } from "effect"
import type { Delivery, Puller } from "../../../src/broker/Pull.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as DelayMover from "../../../src/runtime/DelayMover.ts"

/** Runs the mover over one delayed message until it nak'ed it; returns the nak delays and the warnings. */
const holdOf = (runAt: string) =>
  Effect.runPromise(Effect.gen(function*() {
    const naks: Array<number> = []
    const warnings: Array<string> = []
    let given = false
    const delivery: Delivery = {
      subject: "MSGSYS.delayed.etl.x",
      headers: { "Msgsys-Id": "t1", "Msgsys-Run-At": runAt },
      data: new Uint8Array(0),
      stream: "MSGSYS_TASKS_etl",
      consumer: "etl-delayed",
      deliveryCount: 1,
      streamSequence: 1,
      storedAt: 0,
      pending: 0,
      ack: Effect.void,
      nak: (ms = 0) => Effect.sync(() => void naks.push(ms)),
      working: Effect.void,
      term: Effect.void
    }
    const puller: Puller = { pull: () => Effect.sync(() => given ? [] : (given = true, [delivery])) }
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel === "Warn") warnings.push(String(Array.isArray(message) ? message[0] : message))
    })
    const fiber = yield* DelayMover.run({
      js: {} as JetStreamClient,
      names: Subjects.make("MSGSYS"),
      puller,
      pollInterval: "5 millis"
    }).pipe(Effect.provide(Logger.layer([logger])), Effect.forkChild)
    while (naks.length === 0) yield* Effect.sleep("5 millis")
    yield* Fiber.interrupt(fiber)
    return { naks, warnings }
  }))

describe("delay mover", () => {
  test("a far run-at is held a day at a time: the nak delay never overflows the server's nanoseconds", async () => {
    const { naks, warnings } = await holdOf(String(1e16))
    expect(naks).toEqual([Duration.toMillis(DelayMover.maxHold)])
    // and the absurd value is reported, naming the header and what it should hold
    expect(warnings.join("\n")).toContain("Msgsys-Run-At 10000000000000000, more than 10 years ahead")
  })

  test("a run-at within a day is held exactly until then, without a warning", async () => {
    const { naks, warnings } = await holdOf(String(Date.now() + 60_000))
    expect(naks.length).toBe(1)
    expect(naks[0]!).toBeGreaterThan(55_000)
    expect(naks[0]!).toBeLessThanOrEqual(60_000)
    expect(warnings).toEqual([])
  })
})
