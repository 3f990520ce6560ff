import { describe, expect, test } from "bun:test"
import { Duration } from "effect"
import type { Delivery } from "../../../src/broker/Delivery.ts"
import type * as Publish from "../../../src/broker/Publish.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as DelayMover from "../../../src/runtime/DelayMover.ts"

/** What the mover does with one delayed message: its nak delays, its warnings, what it published. */
const moveOne = (runAt: string | undefined, now = Date.now()) => {
  const naks: Array<number> = []
  const warnings: Array<string> = []
  const published: Array<Publish.Message> = []
  let acked = false
  const delivery: Delivery = {
    subject: "MSGSYS.delayed.etl.x",
    headers: { "Msgsys-Id": "t1", "Nats-Msg-Id": "t1", ...(runAt === undefined ? {} : { "Msgsys-Run-At": runAt }) },
    data: new Uint8Array(0),
    stream: "MSGSYS_TASKS_etl",
    consumer: "etl-delayed",
    deliveryCount: 1,
    streamSequence: 1,
    storedAt: 0,
    pending: 0,
    ack: () => void (acked = true),
    nak: (ms = 0) => void naks.push(ms),
    working: () => {},
    term: () => {}
  }
  const publisher: Publish.Publisher = {
    submit: (message, done) => {
      published.push(message)
      done({ ok: true, ack: { stream: "MSGSYS_TASKS_etl", sequence: 2, duplicate: false } })
    },
    inFlight: () => 0,
    disconnected: () => {},
    reconnected: () => {},
    close: () => {}
  }
  DelayMover.handle(delivery, now, { publisher, names: Subjects.make("MSGSYS"), warn: (m) => warnings.push(m) })
  return { naks, warnings, published, acked: () => acked }
}

describe("delay mover", () => {
  test("a far run-at is held a day at a time: the nak delay never overflows the server's nanoseconds", () => {
    const { naks, warnings } = moveOne(String(1e16))
    expect(naks).toEqual([Duration.toMillis(DelayMover.maxHold)])
    // and the absurd value is reported, naming the header and what it should hold
    expect(warnings.join("\n")).toContain("Msgsys-Run-At 10000000000000000, more than 10 years ahead")
  })

  test("a run-at within a day is held exactly until then, without a warning", () => {
    const now = Date.now()
    const { naks, warnings } = moveOne(String(now + 60_000), now)
    expect(naks).toEqual([60_000])
    expect(warnings).toEqual([])
  })

  test("a due task is released on its real subject under its own id with a new dedup id, then acked", () => {
    const now = Date.now()
    const { published, acked, naks } = moveOne(String(now - 1), now)
    expect(naks).toEqual([])
    expect(published).toHaveLength(1)
    expect(published[0]!.subject).toBe("etl.x")
    expect(published[0]!.headers?.["Msgsys-Id"]).toBe("t1")
    expect(published[0]!.headers?.["Msgsys-Run-At"]).toBeUndefined()
    expect(published[0]!.msgId).toBe("t1:due")
    expect(acked()).toBe(true)
  })

  test("a run-at that is not epoch milliseconds is released now, with a warning naming it", () => {
    const { published, warnings } = moveOne("tomorrow")
    expect(published).toHaveLength(1)
    expect(warnings.join("\n")).toContain('Msgsys-Run-At "tomorrow", not epoch milliseconds')
  })
})
