import { describe, expect, test } from "bun:test"
import * as DeadLetter from "../../../src/dlq/DeadLetter.ts"
import * as DlqWorker from "../../../src/dlq/DlqWorker.ts"

const minute = 60_000
const policy: DlqWorker.Policy = { attempts: 5, baseMs: minute, capMs: 15 * minute, reasons: ["exhausted", "max_deliveries"] }
const letter = (over: Partial<Pick<DeadLetter.Letter, "reason" | "retries" | "deadLetteredAt" | "taskId">> = {}) => ({
  reason: "exhausted",
  retries: 0,
  deadLetteredAt: 1_000_000,
  taskId: "task-1",
  ...over
})

describe("DlqWorker.delayMs", () => {
  test("doubles from the base for each retry and never passes the cap, within ±20% per task", () => {
    for (const taskId of ["a", "b", "task-1", "01M8QFQTXKAPKKK38KH3SRNZZM"]) {
      const delays = [1, 2, 3, 4, 5, 6].map((n) => DlqWorker.delayMs(policy, n, taskId))
      const nominal = [1, 2, 4, 8, 15, 15].map((m) => m * minute)
      delays.forEach((d, i) => {
        expect(d).toBeGreaterThanOrEqual(Math.min(nominal[i]! * 0.8, 15 * minute * 0.8))
        expect(d).toBeLessThanOrEqual(Math.min(nominal[i]! * 1.2, 15 * minute))
      })
    }
  })

  test("is the same on every call for one task and retry, and differs between tasks", () => {
    expect(DlqWorker.delayMs(policy, 2, "x")).toBe(DlqWorker.delayMs(policy, 2, "x"))
    const spread = new Set(Array.from({ length: 50 }, (_, i) => DlqWorker.delayMs(policy, 1, `task-${i}`)))
    expect(spread.size).toBeGreaterThan(40)
  })
})

describe("DlqWorker.decide", () => {
  const at = (retry: number) => 1_000_000 + DlqWorker.delayMs(policy, retry, "task-1")

  test("a letter waits for its retry's delay after it was dead-lettered, then is replayed as the next retry", () => {
    expect(DlqWorker.decide(policy, letter(), 1_000_000)).toEqual({ _tag: "Wait", ms: at(1) - 1_000_000 })
    expect(DlqWorker.decide(policy, letter(), at(1) - 1)).toEqual({ _tag: "Wait", ms: 1 })
    expect(DlqWorker.decide(policy, letter(), at(1))).toEqual({ _tag: "Replay", retry: 1 })
    expect(DlqWorker.decide(policy, letter({ retries: 3 }), at(4))).toEqual({ _tag: "Replay", retry: 4 })
    expect(DlqWorker.decide(policy, letter({ reason: "max_deliveries", retries: 4 }), at(5))).toEqual({ _tag: "Replay", retry: 5 })
  })

  test("after the last retry a letter is exhausted, at once", () => {
    const d = DlqWorker.decide(policy, letter({ retries: 5 }), 1_000_000)
    expect(d).toEqual({ _tag: "Exhaust", why: "still failing after 5 retries" })
    expect(DlqWorker.decide({ ...policy, attempts: 0 }, letter(), 0)._tag).toBe("Exhaust")
  })

  test("poison is exhausted at once, even when its reason is listed; other reasons not listed too", () => {
    expect(DlqWorker.decide({ ...policy, reasons: ["poison"] }, letter({ reason: "poison" }), 0)).toEqual({
      _tag: "Exhaust",
      why: "poison (a retry would send the same payload)"
    })
    expect(DlqWorker.decide(policy, letter({ reason: "permanent" }), 0)).toEqual({
      _tag: "Exhaust",
      why: "permanent letters are not retried (MSGSYS_DLQ_RETRY_REASONS)"
    })
    expect(DlqWorker.decide({ ...policy, reasons: ["permanent"] }, letter({ reason: "permanent" }), 0)._tag).toBe("Wait")
  })

  test("a reason this version does not know is left to a person", () => {
    expect(DlqWorker.decide(policy, letter({ reason: "timeout-storm" }), 0)._tag).toBe("Leave")
  })
})

describe("the DLQ worker's retry count", () => {
  test("travels with the task: carried from a task's headers onto its letter, and read back", () => {
    const { carried } = DeadLetter.splitHeaders({ "Msgsys-Id": "t", [DeadLetter.RetriesHeader]: "3", "Msgsys-Dlq-Reason": "x" })
    expect(carried).toEqual({ "Msgsys-Id": "t", [DeadLetter.RetriesHeader]: "3" })
    expect(DeadLetter.isFormatHeader(DeadLetter.RetriesHeader)).toBe(false)
    expect(DeadLetter.retriesOf(carried)).toBe(3)
    expect(DeadLetter.retriesOf({ "msgsys-dlq-retries": "2" })).toBe(2)
    expect(DeadLetter.retriesOf({})).toBe(0)
    expect(DeadLetter.retriesOf({ [DeadLetter.RetriesHeader]: "lots" })).toBe(0)
  })
})
