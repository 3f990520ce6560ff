import { describe, expect, test } from "bun:test"
import { Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import * as Envelope from "../../../src/envelope/Envelope.ts"
import * as MessageId from "../../../src/envelope/MessageId.ts"

const runAt = <A, E>(now: number, effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(
    Effect.gen(function*() {
      yield* TestClock.setTime(now)
      return yield* effect
    }).pipe(Effect.provide(TestClock.layer()))
  )

const receive = { now: 5_000, fallbackId: "TASKS-42" }
const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

describe("Envelope headers", () => {
  test("every field survives toHeaders then fromHeaders", () => {
    const e: Envelope.Envelope = {
      id: "01HZY4C3J5Q0V4X9M2N8B7K6TA",
      type: "etl.extract.salesforce",
      version: 3,
      createdAt: Date.UTC(2026, 10, 23, 12, 30, 15, 123),
      tenant: "acme-eu",
      correlationId: "corr-1",
      causationId: "01HZY4C3J5Q0V4X9M2N8B7K6T9",
      attempt: 4,
      traceparent: TP,
      tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
      dedupKey: "key:etl.extract.salesforce:acme-2026",
      extra: { "Msgsys-Priority": "high", "Msgsys-Run-At": "1790000000000" }
    }
    const headers = Envelope.toHeaders(e)
    expect(headers["Nats-Msg-Id"]).toBe("key:etl.extract.salesforce:acme-2026")
    expect(headers["Msgsys-Created-At"]).toBe("2026-11-23T12:30:15.123Z")
    const back = Envelope.fromHeaders("etl.extract.salesforce", headers, { ...receive })
    expect(back).toEqual(e)
  })

  test("without a dedup key, Nats-Msg-Id is the id and decodes to no dedup key", async () => {
    const e = await runAt(1_000, Envelope.make("reports.build"))
    const headers = Envelope.toHeaders(e)
    expect(headers["Nats-Msg-Id"]).toBe(e.id)
    expect(Envelope.fromHeaders("reports.build", headers, receive)).toEqual(e)
  })

  test("the delivery count overrides the published attempt", async () => {
    const e = await runAt(1_000, Envelope.make("reports.build"))
    const back = Envelope.fromHeaders("reports.build", Envelope.toHeaders(e), { ...receive, deliveryCount: 3 })
    expect(back.attempt).toBe(3)
  })

  test("a message from a plain NATS client (no headers) gets defaults", () => {
    for (const headers of [undefined, {}]) {
      const e = Envelope.fromHeaders("events.user.registered", headers, { ...receive, deliveryCount: 2 })
      expect(e).toEqual({
        id: "TASKS-42",
        type: "events.user.registered",
        version: 1,
        createdAt: 5_000,
        tenant: "default",
        correlationId: "TASKS-42",
        causationId: undefined,
        attempt: 2,
        traceparent: undefined,
        tracestate: undefined,
        dedupKey: undefined,
        extra: {}
      })
    }
    expect(Envelope.fromHeaders("x.y", undefined, receive).attempt).toBe(1)
  })

  test("a plain client's Nats-Msg-Id becomes the id", () => {
    const e = Envelope.fromHeaders("x.y", { "Nats-Msg-Id": "order-991" }, receive)
    expect(e.id).toBe("order-991")
    expect(e.correlationId).toBe("order-991")
    expect(e.dedupKey).toBeUndefined()
  })

  test("a Nats-Msg-Id unusable as an id (spaces, colons) falls back but is kept as the dedup key", () => {
    const e = Envelope.fromHeaders("x.y", { "Nats-Msg-Id": "order 991:a" }, receive)
    expect(e.id).toBe("TASKS-42")
    expect(e.dedupKey).toBe("order 991:a")
    expect(Envelope.toHeaders(e)["Nats-Msg-Id"]).toBe("order 991:a")
  })

  test("garbage header values fall back to defaults without throwing", () => {
    const garbage = {
      "Msgsys-Id": "../../etc passwd",
      "Msgsys-Type": "has space",
      "Msgsys-Version": "two",
      "Msgsys-Created-At": "yesterday",
      "Msgsys-Tenant": "acme.*",
      "Msgsys-Correlation-Id": "",
      "Msgsys-Causation-Id": "x".repeat(1000),
      "Msgsys-Attempt": "-1",
      traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      tracestate: "rojo=1"
    }
    const e = Envelope.fromHeaders("etl.load", garbage, receive)
    expect(e).toEqual({
      id: "TASKS-42",
      type: "etl.load",
      version: 1,
      createdAt: 5_000,
      tenant: "default",
      correlationId: "TASKS-42",
      causationId: undefined,
      attempt: 1,
      traceparent: undefined,
      tracestate: undefined,
      dedupKey: undefined,
      extra: {}
    })
  })

  test("more malformed versions, dates and traceparents are each rejected", () => {
    for (const v of ["0", "1.5", "1e3", "99999999999999999999", " ", "-2"]) {
      expect(Envelope.fromHeaders("a.b", { "Msgsys-Version": v }, receive).version).toBe(1)
    }
    for (const d of ["2026-13-45T99:99:99Z", "Tue, 24 Nov 2026 10:00:00 GMT", "NaN", "2026-11-23"]) {
      expect(Envelope.fromHeaders("a.b", { "Msgsys-Created-At": d }, receive).createdAt).toBe(5_000)
    }
    for (const t of [
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
      "garbage"
    ]) {
      expect(Envelope.isTraceparent(t)).toBe(false)
      expect(Envelope.fromHeaders("a.b", { traceparent: t }, receive).traceparent).toBeUndefined()
    }
  })

  test("created-at is accepted as ISO-8601 or as epoch milliseconds", () => {
    expect(Envelope.fromHeaders("a.b", { "Msgsys-Created-At": "1790000000123" }, receive).createdAt).toBe(1790000000123)
    expect(Envelope.fromHeaders("a.b", { "Msgsys-Created-At": "2026-11-23T12:00:00+01:00" }, receive).createdAt)
      .toBe(Date.UTC(2026, 10, 23, 11))
  })

  test("header names are matched case-insensitively and extras keep canonical names", () => {
    const e = Envelope.fromHeaders("a.b", {
      "msgsys-id": "abc",
      "MSGSYS-TENANT": "t1",
      Traceparent: TP,
      "msgsys-run-at": "123",
      "X-Other": "ignored"
    }, receive)
    expect(e.id).toBe("abc")
    expect(e.tenant).toBe("t1")
    expect(e.traceparent).toBe(TP)
    expect(e.extra).toEqual({ "Msgsys-Run-At": "123" })
  })

  test("a publisher cannot make the envelope hold unbounded extension headers: their number and size are capped", () => {
    const many: Record<string, string> = { "Msgsys-Id": "abc", "Msgsys-Run-At": "123" }
    for (let i = 0; i < 500; i++) many[`Msgsys-X-${i}`] = "v".repeat(100)
    const e = Envelope.fromHeaders("a.b", many, receive)
    const entries = Object.entries(e.extra)
    expect(entries.length).toBe(Envelope.maxExtraHeaders)
    expect(entries.reduce((n, [k, v]) => n + k.length + v.length, 0)).toBeLessThanOrEqual(Envelope.maxExtraSize)
    // read in order: the first ones are kept, and the core fields are read whatever follows
    expect(e.extra["Msgsys-Run-At"]).toBe("123")
    expect(e.id).toBe("abc")

    const huge = Envelope.fromHeaders("a.b", { "Msgsys-Blob": "x".repeat(1_000_000), "Msgsys-Priority": "high" }, receive)
    expect(huge.extra).toEqual({ "Msgsys-Priority": "high" })
  })

  test("extras cannot override core headers, and CR/LF cannot break the header frame", async () => {
    const e = await runAt(1_000, Envelope.make("a.b", {
      extra: { "Msgsys-Id": "forged", "msgsys-tenant": "forged", "Msgsys-Note": "line1\r\nline2" },
      correlationId: "c\n1"
    }))
    const h = Envelope.toHeaders(e)
    expect(h["Msgsys-Id"]).toBe(e.id)
    expect(h["msgsys-tenant"]).toBeUndefined()
    expect(h["Msgsys-Tenant"]).toBe("default")
    expect(h["Msgsys-Note"]).toBe("line1 line2")
    for (const v of Object.values(h)) expect(v).not.toMatch(/[\r\n]/)
  })
})

describe("Envelope.make", () => {
  test("fills defaults: new sortable id, version 1, now, default tenant, correlation = id, a new trace", async () => {
    // after any time other tests gave the process-wide id generator, which never goes back
    const now = MessageId.timestampOf(MessageId.makeUnsafe(0)) + 1_000
    const e = await runAt(now, Envelope.make("etl.extract.salesforce"))
    expect(MessageId.isMessageId(e.id)).toBe(true)
    expect(MessageId.timestampOf(e.id)).toBe(now)
    expect(e).toMatchObject({
      type: "etl.extract.salesforce",
      version: 1,
      createdAt: now,
      tenant: "default",
      correlationId: e.id,
      causationId: undefined,
      attempt: 1,
      dedupKey: undefined,
      extra: {}
    })
    expect(Envelope.isTraceparent(e.traceparent!)).toBe(true)
  })

  test("a child inherits correlation, tenant and trace id; its causation is the parent's id", async () => {
    const parent = await runAt(1_000, Envelope.make("etl.extract.salesforce", {
      tenant: "acme",
      correlationId: "run-7",
      traceparent: TP,
      tracestate: "rojo=1"
    }))
    const child = await runAt(2_000, Envelope.make("etl.load.warehouse", { parent }))
    expect(child.id).not.toBe(parent.id)
    expect(child.correlationId).toBe("run-7")
    expect(child.causationId).toBe(parent.id)
    expect(child.tenant).toBe("acme")
    expect(Envelope.traceIdOf(child.traceparent!)).toBe("4bf92f3577b34da6a3ce929d0e0e4736")
    expect(child.traceparent).not.toBe(TP)
    expect(child.tracestate).toBe("rojo=1")
  })

  test("a child of a parent without correlation id set correlates to the parent's id", async () => {
    const parent = await runAt(1_000, Envelope.make("a.b"))
    const grandchild = await runAt(3_000, Envelope.make("a.d", { parent: await runAt(2_000, Envelope.make("a.c", { parent })) }))
    expect(grandchild.correlationId).toBe(parent.id)
  })

  test("explicit options win over the parent's", async () => {
    const parent = await runAt(1_000, Envelope.make("a.b", { tenant: "acme", traceparent: TP }))
    const other = Envelope.newTraceparent()
    const child = await runAt(2_000, Envelope.make("a.c", {
      parent, tenant: "globex", correlationId: "c2", causationId: "x1", traceparent: other, version: 2
    }))
    expect(child).toMatchObject({ tenant: "globex", correlationId: "c2", causationId: "x1", traceparent: other, version: 2 })
    expect(child.tracestate).toBeUndefined()
  })
})

describe("trace context helpers", () => {
  test("newTraceparent gives distinct valid sampled traces", () => {
    const a = Envelope.newTraceparent()
    const b = Envelope.newTraceparent()
    expect(Envelope.isTraceparent(a)).toBe(true)
    expect(a.endsWith("-01")).toBe(true)
    expect(Envelope.traceIdOf(a)).not.toBe(Envelope.traceIdOf(b))
  })

  test("childTraceparent keeps trace id and flags with a new span id", () => {
    const child = Envelope.childTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    expect(child).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/)
    expect(child.slice(36, 52)).not.toBe("00f067aa0ba902b7")
  })

  test("childTraceparent of an invalid parent starts a new trace", () => {
    expect(Envelope.isTraceparent(Envelope.childTraceparent("nope"))).toBe(true)
  })
})

describe("tenant validation", () => {
  test("accepts letters, digits, '_' and '-' up to 64 characters", () => {
    for (const t of ["default", "acme-eu", "A_1", "x".repeat(64)]) {
      expect(Exit.isSuccess(Effect.runSyncExit(Envelope.validateTenant(t)))).toBe(true)
    }
  })

  test("rejects a tenant that would break a subject, with a message naming the allowed characters", () => {
    for (const t of ["", "acme.eu", "a b", "*", ">", "x".repeat(65), "ümlaut"]) {
      const exit = Effect.runSyncExit(Envelope.validateTenant(t))
      expect(Exit.isFailure(exit)).toBe(true)
      const err = Effect.runSync(Effect.flip(Envelope.validateTenant(t)))
      expect(err._tag).toBe("InvalidTenant")
      expect(err.message).toContain(JSON.stringify(t))
      expect(err.message).toContain("1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")
    }
  })
})

describe("task id validation", () => {
  test("accepts every id msgsys gives a task: message ids, fallback ids, Nats-Msg-Id keys", () => {
    for (const id of [MessageId.makeUnsafe(Date.now()), "MSGSYS_TASKS_etl-42", "order-7", "a.b=c", "x".repeat(128)]) {
      expect(Envelope.isTaskId(id)).toBe(true)
      expect(Effect.runSync(Envelope.validateTaskId(id))).toBe(id)
      // and fromHeaders keeps it as the id
      expect(Envelope.fromHeaders("etl.x", { "Msgsys-Id": id }, receive).id).toBe(id)
    }
  })

  test("refuses wildcards, spaces and empty tokens, naming the problem and what an id looks like", () => {
    for (const id of [">", "*", "etl.>", "a b", "", ".a", "a..b", "a.", "x".repeat(129), "id\n"]) {
      const err = Effect.runSync(Effect.flip(Envelope.validateTaskId(id)))
      expect(err._tag).toBe("InvalidTaskId")
      expect(err.message).toContain("invalid task id")
      expect(err.message).toContain("no spaces or wildcards")
    }
  })
})
