/**
 * The dead-letter format: metadata in bounded `Msgsys-Dlq-*` headers that read back as written,
 * trimmed with a marker (never failing) when the error or the history is long, and format-1
 * letters (JSON, base64 body) still read.
 */
import { describe, expect, test } from "bun:test"
import { Option } from "effect"
import * as DeadLetter from "../../../src/dlq/DeadLetter.ts"
import type { FailedAttempt } from "../../../src/task/TaskRecord.ts"

const original = (headers: Record<string, string> = {}, body = new TextEncoder().encode("{\"n\":1}")): DeadLetter.Original => ({
  stream: "P_TASKS_etl",
  sequence: 42,
  storedSubject: "P.prio.high.etl.extract",
  headers,
  body,
  storedAt: 1_000
})

const metadata = (extra: Partial<DeadLetter.Metadata> = {}): DeadLetter.Metadata => ({
  taskId: "01ABC",
  subject: "etl.extract",
  actor: "etl",
  tenant: "acme",
  reason: "exhausted",
  error: { tag: "SourceDown", message: "salesforce is down", encoded: { _tag: "SourceDown", since: 3 } },
  attempts: 3,
  history: [1, 2, 3].map((attempt) => ({ attempt, at: attempt * 10, error: { tag: "SourceDown", message: "down" } })),
  deadLetteredAt: 2_000,
  ...extra
})

/** Header values as a NATS frame carries them: ASCII, no CR or LF. */
const frameSafe = (h: Record<string, string>) => Object.values(h).every((v) => /^[\x20-\x7e]*$/.test(v))

describe("dead-letter format", () => {
  test("metadata headers read back as the letter that was written", () => {
    const o = original({ "Msgsys-Id": "01ABC", "Nats-Msg-Id": "01ABC", "X-Custom": "yes" })
    const { carried, held } = DeadLetter.splitHeaders(o.headers)
    const h = { ...carried, ...DeadLetter.metadataHeaders(metadata(), o, held) }
    const letter = Option.getOrThrow(DeadLetter.fromHeaders(h))
    expect(letter).toMatchObject({
      format: 2,
      taskId: "01ABC",
      subject: "etl.extract",
      storedSubject: "P.prio.high.etl.extract",
      actor: "etl",
      tenant: "acme",
      reason: "exhausted",
      error: metadata().error,
      attempts: 3,
      history: metadata().history,
      historyDropped: 0,
      stream: "P_TASKS_etl",
      streamSequence: 42,
      storedAt: 1_000,
      deadLetteredAt: 2_000,
      bodySize: 7,
      bodySequence: undefined,
      heldHeaders: { "Nats-Msg-Id": "01ABC" },
      trimmed: []
    })
    // the original's headers come back without the format's own, and without the server's
    expect(DeadLetter.originalHeadersOf(h)).toEqual({ "Msgsys-Id": "01ABC", "X-Custom": "yes" })
  })

  test("headers the server would act on, or nats.js cannot send, are held aside, and Msgsys-Dlq-* ones dropped", () => {
    const { carried, held } = DeadLetter.splitHeaders({
      "Nats-Expected-Last-Sequence": "7",
      "nats-msg-id": "x",
      "Bad Name": "v",
      "msgsys-dlq-reason": "forged",
      traceparent: "00-1-2-01"
    })
    expect(carried).toEqual({ traceparent: "00-1-2-01" })
    expect(held).toEqual({ "Nats-Expected-Last-Sequence": "7", "nats-msg-id": "x", "Bad Name": "v" })
  })

  test("a huge error and a long history are trimmed with a marker and stay within their bounds, never failing", () => {
    const long = `first line\n${"é\"\\".repeat(100_000)}`
    const history: Array<FailedAttempt> = Array.from({ length: 1_000 }, (_, i) => ({
      attempt: i + 1,
      at: i,
      error: { tag: "Boom", message: `attempt ${i + 1}: ${"x".repeat(2_000)}` }
    }))
    const h = DeadLetter.metadataHeaders(
      metadata({ error: { tag: "Boom", message: long, encoded: { big: "y".repeat(50_000) } }, history }),
      original(),
      { "Nats-Msg-Id": "z".repeat(10_000) }
    )
    expect(frameSafe(h)).toBe(true)
    expect(h[DeadLetter.Headers.Error]!.length).toBeLessThanOrEqual(DeadLetter.bounds.error)
    expect(h[DeadLetter.Headers.History]!.length).toBeLessThanOrEqual(DeadLetter.bounds.history)
    expect(h[DeadLetter.Headers.HeldHeaders]!.length).toBeLessThanOrEqual(DeadLetter.bounds.heldHeaders)
    const total = Object.entries(h).reduce((n, [k, v]) => n + k.length + v.length + 4, 0)
    expect(total).toBeLessThan(16 * 1024)

    const letter = Option.getOrThrow(DeadLetter.fromHeaders(h))
    expect(letter.trimmed).toEqual(["error", "history", "held-headers"])
    expect(letter.error.tag).toBe("Boom")
    expect(letter.error.message.startsWith("first line\né\"\\")).toBe(true)
    expect(letter.error.message).toMatch(/ … \[trimmed \d+ characters\]$/)
    expect(letter.error.encoded).toBeUndefined()
    // the newest attempts are kept, the dropped ones counted
    const kept = letter.history.length
    expect(kept).toBeGreaterThan(0)
    expect(letter.historyDropped).toBe(1_000 - kept)
    expect(letter.history.at(-1)!.attempt).toBe(1_000)
    expect(letter.history.at(-1)!.error.message).toMatch(/^attempt 1000: x+ … \[trimmed \d+ characters\]$/)
  })

  test("a letter's headers without the format marker, or with a field missing, are not read as a letter", () => {
    const h = DeadLetter.metadataHeaders(metadata(), original(), {})
    expect(Option.isSome(DeadLetter.fromHeaders(h))).toBe(true)
    const { [DeadLetter.Headers.Format]: _f, ...noFormat } = h
    expect(Option.isNone(DeadLetter.fromHeaders(noFormat))).toBe(true)
    const { [DeadLetter.Headers.Attempts]: _a, ...noAttempts } = h
    expect(Option.isNone(DeadLetter.fromHeaders(noAttempts))).toBe(true)
    expect(Option.isNone(DeadLetter.fromHeaders({ ...h, ...DeadLetter.bodyPartHeaders(original()) }))).toBe(true)
  })

  test("a format-1 letter (JSON, body in base64) reads with its headers and body", () => {
    const body = new TextEncoder().encode("\u0000raw")
    const data = DeadLetter.encodeLegacy({
      taskId: "01OLD",
      subject: "etl.extract",
      storedSubject: "etl.extract",
      actor: "etl",
      tenant: "default",
      reason: "poison",
      error: { tag: "PayloadDecodeError", message: "bad" },
      attempts: 1,
      history: [],
      headers: { "Msgsys-Id": "01OLD", "Nats-Msg-Id": "01OLD" },
      payload: Buffer.from(body).toString("base64"),
      stream: "P_TASKS_etl",
      streamSequence: 9,
      storedAt: 5,
      deadLetteredAt: 6
    })
    const read = Option.getOrThrow(DeadLetter.fromLegacy(data))
    expect(read.letter).toMatchObject({ format: 1, taskId: "01OLD", reason: "poison", bodySize: body.length, streamSequence: 9 })
    expect(read.headers).toEqual({ "Msgsys-Id": "01OLD" })
    expect(read.body).toEqual(body)
    expect(Option.isNone(DeadLetter.fromLegacy(new TextEncoder().encode("{}")))).toBe(true)
  })
})
