import { describe, expect, test } from "bun:test"
import { Effect, Schema } from "effect"
import * as Payload from "../../../src/envelope/Payload.ts"
import { headers as natsHeaders } from "@nats-io/transport-node"

const MB = 1024 * 1024
const Extract = Schema.Struct({
  tenant: Schema.String,
  since: Schema.Date,
  until: Schema.optionalKey(Schema.DateFromString),
  rows: Schema.Int,
  note: Schema.optional(Schema.String),
  tags: Schema.Array(Schema.String)
})

const bytes = (s: string) => new TextEncoder().encode(s)
const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runSync(e)
const fail = <A, E>(e: Effect.Effect<A, E>) => Effect.runSync(Effect.flip(e))

describe("Payload", () => {
  test("a struct with dates and optional fields round-trips", () => {
    const full = { tenant: "acme", since: new Date(1_700_000_000_123), until: new Date(0), rows: 3, note: "n", tags: ["a"] }
    const minimal = { tenant: "acme", since: new Date(5), rows: 0, tags: [] }
    for (const value of [full, minimal]) {
      const body = run(Payload.encode(Extract, "etl.extract", value, MB))
      const back = run(Payload.decode(Extract, "etl.extract", body))
      expect(back).toEqual(value)
      expect(back.since).toBeInstanceOf(Date)
    }
    const body = run(Payload.encode(Extract, "etl.extract", minimal, MB))
    expect(JSON.parse(new TextDecoder().decode(body))).toEqual({
      tenant: "acme", since: "1970-01-01T00:00:00.005Z", rows: 0, tags: []
    })
  })

  test("a class payload decodes to an instance of the class", () => {
    class Report extends Schema.Class<Report>("Report")({ name: Schema.String, at: Schema.Date }) {}
    const body = run(Payload.encode(Report, "reports.build", new Report({ name: "q3", at: new Date(9) }), MB))
    const back = run(Payload.decode(Report, "reports.build", body))
    expect(back).toBeInstanceOf(Report)
    expect(back.at.getTime()).toBe(9)
  })

  test("a body published by another client as plain JSON decodes", () => {
    const back = run(Payload.decode(Extract, "etl.extract", bytes(`{"tenant":"t","since":"2026-01-01T00:00:00Z","rows":1,"tags":[]}`)))
    expect(back.since.getTime()).toBe(Date.UTC(2026, 0, 1))
  })

  test("garbage bytes fail with a PayloadDecodeError naming the subject and the JSON problem", () => {
    const err = fail(Payload.decode(Extract, "etl.extract", bytes("hello {")))
    expect(err._tag).toBe("PayloadDecodeError")
    expect(err.subject).toBe("etl.extract")
    expect(err.reason).toStartWith("invalid JSON (")
    expect(err.reason).toContain(`"hello {"`)
    expect(err.message).toContain("cannot decode the payload of etl.extract: invalid JSON")
    expect(err.message).toContain("Fix the publisher")
  })

  test("bytes that are not UTF-8 fail with a PayloadDecodeError saying so", () => {
    const err = fail(Payload.decode(Extract, "etl.extract", new Uint8Array([0xff, 0xfe, 0x00, 0x80])))
    expect(err.reason).toBe("the body (4 bytes) is not UTF-8 text")
  })

  test("a schema mismatch lists every bad path", () => {
    const body = bytes(JSON.stringify({ tenant: 7, since: "not a date", rows: "many", tags: ["ok", 2] }))
    const err = fail(Payload.decode(Extract, "etl.extract", body))
    expect(err.reason).toContain("at .tenant: Expected string")
    expect(err.reason).toContain("at .since: ")
    expect(err.reason).toContain("at .rows: Expected number") // not the JSON codec's "Infinity" | "-Infinity" | "NaN"
    expect(err.reason).toContain("at .tags[1]: Expected string")
    expect(err.reason.split("; ")).toHaveLength(4)
  })

  test("a number of the wrong type reads 'Expected number' wherever it sits: field, array, record, tuple, union", () => {
    const Numbers = Schema.Struct({
      n: Schema.Number,
      xs: Schema.Array(Schema.Number),
      o: Schema.optional(Schema.Number),
      nn: Schema.NullOr(Schema.Number),
      r: Schema.Record(Schema.String, Schema.Number),
      t: Schema.Tuple([Schema.Number]),
      u: Schema.Union([Schema.Number, Schema.String])
    })
    const body = bytes(JSON.stringify({ n: "x", xs: [1, "a"], o: "z", nn: "w", r: { k: "v" }, t: ["q"], u: true }))
    const reason = fail(Payload.decode(Numbers, "a.b", body)).reason
    expect(reason.split("; ")).toEqual([
      "at .n: Expected number",
      "at .xs[1]: Expected number",
      "at .o: Expected number",
      "at .nn: Expected number",
      "at .r.k: Expected number",
      "at .t[0]: Expected number",
      "at .u: Expected number | string"
    ])
    expect(reason).not.toContain("Infinity")
  })

  test("a missing key and a non-object body are reported with their path", () => {
    expect(fail(Payload.decode(Extract, "etl.extract", bytes(`{"tenant":"t","since":"2026-01-01T00:00:00Z","tags":[]}`))).reason)
      .toBe("at .rows: Missing key")
    expect(fail(Payload.decode(Extract, "etl.extract", bytes("[1]"))).reason).toStartWith("at the root: Expected")
  })

  test("encoding a value that does not match the schema fails with PayloadEncodeError", () => {
    const err = fail(Payload.encode(Extract, "etl.extract", { tenant: 1 } as never, MB))
    expect(err._tag).toBe("PayloadEncodeError")
    if (err._tag !== "PayloadEncodeError") return
    expect(err.reason).toContain("at .tenant: Expected string")
    expect(err.message).toContain("cannot encode the payload for etl.extract")
  })

  test("an oversized payload fails with PayloadTooLarge giving both sizes and the fix", () => {
    const big = { tenant: "x".repeat(Math.round(2.1 * MB)), since: new Date(0), rows: 1, tags: [] }
    const err = fail(Payload.encode(Extract, "etl.x", big, MB))
    expect(err._tag).toBe("PayloadTooLarge")
    if (err._tag !== "PayloadTooLarge") return
    expect(err.size).toBeGreaterThan(2 * MB)
    expect(err.maxPayload).toBe(MB)
    expect(err.message).toBe(
      "payload for etl.x is 2.1 MB, over the server's max_payload of 1 MB: store the data elsewhere " +
        "(object store, S3) and send a reference, or raise max_payload in nats-server.conf"
    )
  })

  test("a payload of exactly max_payload bytes is accepted", () => {
    const body = run(Payload.encode(Schema.String, "a.b", "x".repeat(98), 100))
    expect(body.length).toBe(100)
    expect(fail(Payload.encode(Schema.String, "a.b", "x".repeat(99), 100))._tag).toBe("PayloadTooLarge")
  })

  test("headers are sized as the NATS client frames them", () => {
    const h = { "Msgsys-Id": "01M8QD7SY1W2GCTYCADADXCTW6", "Msgsys-Tenant": "acme", "Msgsys-Note": "größe", "Nats-Msg-Id": "k" }
    const framed = natsHeaders()
    for (const [k, v] of Object.entries(h)) framed.set(k, v)
    expect(Payload.headerSize(h)).toBe((framed as unknown as { encode(): Uint8Array }).encode().length)
    expect(Payload.headerSize({})).toBe(0)
  })

  test("a body that fits max_payload only without its headers is PayloadTooLarge, naming both shares", () => {
    const h = { "Msgsys-Id": "01M8QD7SY1W2GCTYCADADXCTW6" }
    const size = Payload.headerSize(h)
    Effect.runSync(Payload.checkSize("a.b", new Uint8Array(100 - size), h, 100))
    const err = fail(Payload.checkSize("a.b", new Uint8Array(101 - size), h, 100))
    expect(err._tag).toBe("PayloadTooLarge")
    expect(err.size).toBe(101)
    expect(err.message).toContain(`payload for a.b is 101 bytes (body ${101 - size} bytes, headers ${size} bytes), over`)
  })

  test("an empty body decodes as undefined for Void and Undefined payloads", () => {
    const empty = new Uint8Array(0)
    expect(run(Payload.decode(Schema.Void, "a.ping", empty))).toBeUndefined()
    expect(run(Payload.decode(Schema.Undefined, "a.ping", empty))).toBeUndefined()
    const body = run(Payload.encode(Schema.Void, "a.ping", undefined, MB))
    expect(run(Payload.decode(Schema.Void, "a.ping", body))).toBeUndefined()
  })

  test("an empty body for a struct payload is a decode error that says the body is empty", () => {
    const err = fail(Payload.decode(Extract, "etl.extract", new Uint8Array(0)))
    expect(err.reason).toStartWith("the body is empty (at the root: Expected")
  })

  test("arbitrary JSON goes through Schema.Json unchanged", () => {
    const value = { a: [1, "two", null, { b: true }] }
    const body = run(Payload.encode(Schema.Json, "x.y", value, MB))
    expect(run(Payload.decode(Schema.Json, "x.y", body))).toEqual(value)
  })

  test("formatBytes reads like the server's units", () => {
    expect(Payload.formatBytes(900)).toBe("900 bytes")
    expect(Payload.formatBytes(1536)).toBe("1.5 KB")
    expect(Payload.formatBytes(MB)).toBe("1 MB")
    expect(Payload.formatBytes(8 * MB)).toBe("8 MB")
  })
})
