/**
 * The message body: the JSON encoding of a typed payload. Schemas are used through their canonical
 * JSON codec (`Schema.toCodecJson`), so types without a JSON form of their own (`Schema.Date`,
 * `Schema.BigInt`, classes) survive the trip: what `encode` writes, `decode` reads back.
 * An empty body decodes as `undefined`, so `Schema.Void` and `Schema.Undefined` payloads work.
 * @since 0.1.0
 */
import { Effect, Exit, Result, Schema, SchemaIssue } from "effect"

/**
 * A body that is not valid UTF-8 JSON, or does not match the subject's schema (a poison message).
 * @category errors @since 0.1.0
 */
export class PayloadDecodeError extends Schema.TaggedError<PayloadDecodeError>()("PayloadDecodeError", {
  subject: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot decode the payload of ${this.subject}: ${this.reason}. Fix the publisher so it sends ` +
      `the JSON of ${this.subject}'s schema, or, if the schema changed, accept the old shape too ` +
      "(a Schema.Union of both versions) until old messages are gone"
  }
}

/**
 * A value that does not match the schema it is sent with.
 * @category errors @since 0.1.0
 */
export class PayloadEncodeError extends Schema.TaggedError<PayloadEncodeError>()("PayloadEncodeError", {
  subject: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot encode the payload for ${this.subject}: ${this.reason}. Pass a value that matches ` +
      `${this.subject}'s schema (build it with the schema's make() to catch this where the value is created)`
  }
}

/**
 * An encoded body (with its headers, where they are known) larger than the server accepts.
 * @category errors @since 0.1.0
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  subject: Schema.String,
  /** Body and headers together, as the server counts them. */
  size: Schema.Number,
  maxPayload: Schema.Number,
  /** The headers' share of `size`, when they were counted. */
  headerSize: Schema.optional(Schema.Number)
}) {
  override get message() {
    const parts = this.headerSize !== undefined
      ? ` (body ${formatBytes(this.size - this.headerSize)}, headers ${formatBytes(this.headerSize)})`
      : ""
    return `payload for ${this.subject} is ${formatBytes(this.size)}${parts}, over the server's max_payload of ` +
      `${formatBytes(this.maxPayload)}: store the data elsewhere (object store, S3) and send a reference, ` +
      "or raise max_payload in nats-server.conf"
  }
}

/**
 * `1048576` → `"1 MB"`, `2202009` → `"2.1 MB"`, `900` → `"900 bytes"`.
 * @category formatting @since 0.1.0
 */
export const formatBytes = (n: number): string => {
  const one = (x: number) => {
    const s = x.toFixed(1)
    return s.endsWith(".0") ? s.slice(0, -2) : s
  }
  if (n < 1024) return `${n} bytes`
  if (n < 1024 * 1024) return `${one(n / 1024)} KB`
  return `${one(n / (1024 * 1024))} MB`
}

// ---------------------------------------------------------------------------------------------

type AnyCodec = Schema.Codec<any, any, never, never>

interface Codecs {
  readonly decodeJson: (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>
  readonly decodeEmpty: (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>
  readonly encodeJson: (a: unknown) => Exit.Exit<unknown, Schema.SchemaError>
}

// Built once per schema: deriving the JSON codec and its parsers is not free.
const cache = new WeakMap<object, Codecs>()
const ALL = { errors: "all" } as const

const codecsOf = (schema: AnyCodec): Codecs => {
  let c = cache.get(schema)
  if (c === undefined) {
    const json = Schema.toCodecJson(schema)
    c = {
      decodeJson: Schema.decodeUnknownExit(json, ALL),
      // an empty body is `undefined`, which the JSON codec (null for Void) would refuse
      decodeEmpty: Schema.decodeUnknownExit(schema, ALL),
      encodeJson: Schema.encodeUnknownExit(json, ALL)
    }
    cache.set(schema, c)
  }
  return c
}

// The JSON codec of a number also accepts "Infinity" / "-Infinity" / "NaN", and a mismatch names
// those literals wherever a number sits (a field, an array item, a union member), not "number":
// say what was meant. The union messages bypass the leaf hook, so this rewrites every message.
const NON_FINITE = '"Infinity" | "-Infinity" | "NaN"'
const plainNumbers = (message: string): string =>
  message.includes(NON_FINITE) ? message.replaceAll(NON_FINITE, "number").replaceAll("number | number", "number") : message
const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  if (path.length === 0) return "the root"
  let out = ""
  for (const p of path) {
    out += typeof p === "number" ? `[${p}]` : typeof p === "string" && /^[A-Za-z_$][\w$]*$/.test(p)
      ? `.${p}`
      : `[${JSON.stringify(String(p))}]`
  }
  return out
}

/**
 * Every schema issue as `at <path>: <message>`, joined by `; `.
 * @category formatting @since 0.1.0
 */
export const formatSchemaError = (error: Schema.SchemaError): string =>
  formatter(error.issue).issues
    .map((i) => `at ${formatPath((i.path ?? []).map((p) => typeof p === "object" ? p.key : p))}: ${plainNumbers(i.message)}`)
    .join("; ")

const schemaReason = <A>(exit: Exit.Exit<A, Schema.SchemaError>): string => {
  if (exit._tag === "Success") return ""
  for (const r of exit.cause.reasons) {
    if (r._tag === "Fail") return formatSchemaError(r.error)
    if (r._tag === "Die") return `the schema threw: ${String(r.defect)}`
  }
  return "the schema did not complete"
}

const utf8 = new TextDecoder("utf-8", { fatal: true })
const encoder = new TextEncoder()

const preview = (text: string): string => text.length > 60 ? `${JSON.stringify(text.slice(0, 60))}...` : JSON.stringify(text)

// ---------------------------------------------------------------------------------------------

/**
 * Encodes `value` with `schema` to JSON bytes, checked against `maxPayload` (the server's
 * `max_payload`). A value that encodes to `undefined` becomes an empty body.
 * @category encoding @since 0.1.0
 */
export const encode = <A, I>(
  schema: Schema.Codec<A, I>,
  subject: string,
  value: A,
  maxPayload: number
): Effect.Effect<Uint8Array, PayloadEncodeError | PayloadTooLarge> =>
  Effect.suspend((): Effect.Effect<Uint8Array, PayloadEncodeError | PayloadTooLarge> => {
    const exit = codecsOf(schema).encodeJson(value)
    if (exit._tag === "Failure") {
      return Effect.fail(new PayloadEncodeError({ subject, reason: schemaReason(exit) }))
    }
    const encoded = exit.value
    if (encoded === undefined) return Effect.succeed(new Uint8Array(0))
    const text = Result.try({
      try: () => JSON.stringify(encoded),
      catch: (e) => e instanceof Error ? e.message : String(e)
    })
    if (Result.isFailure(text)) {
      return Effect.fail(new PayloadEncodeError({ subject, reason: `not serializable as JSON: ${text.failure}` }))
    }
    const bytes = encoder.encode(text.success)
    return bytes.length > maxPayload
      ? Effect.fail(new PayloadTooLarge({ subject, size: bytes.length, maxPayload }))
      : Effect.succeed(bytes)
  })

/**
 * Decodes a JSON body with `schema`, reporting every schema issue with its path. Synchronous, for
 * the hot path; `decode` is the same as an Effect.
 * @category decoding @since 0.1.0
 */
export const decodeSync = <A, I>(
  schema: Schema.Codec<A, I>,
  subject: string,
  bytes: Uint8Array
): Result.Result<A, PayloadDecodeError> => {
  const codecs = codecsOf(schema)
  let exit: Exit.Exit<unknown, Schema.SchemaError>
  if (bytes.length === 0) {
    exit = codecs.decodeEmpty(undefined)
    if (exit._tag === "Failure") {
      return Result.fail(new PayloadDecodeError({ subject, reason: `the body is empty (${schemaReason(exit)})` }))
    }
  } else {
    let json: unknown
    try {
      json = JSON.parse(utf8.decode(bytes))
    } catch (e) {
      // tell a body that is not text from text that is not JSON
      const text = Result.try({ try: () => utf8.decode(bytes), catch: () => "" })
      if (Result.isFailure(text)) {
        return Result.fail(new PayloadDecodeError({ subject, reason: `the body (${bytes.length} bytes) is not UTF-8 text` }))
      }
      const why = e instanceof Error ? e.message : String(e)
      return Result.fail(new PayloadDecodeError({ subject, reason: `invalid JSON (${why}) in ${preview(text.success)}` }))
    }
    exit = codecs.decodeJson(json)
    if (exit._tag === "Failure") return Result.fail(new PayloadDecodeError({ subject, reason: schemaReason(exit) }))
  }
  return Result.succeed(exit.value as A)
}

/**
 * The bytes `headers` take in a NATS message (`NATS/1.0`, a `Name: value` line each, a blank
 * line): the server counts them with the body against `max_payload`.
 * @category sizing @since 0.1.0
 */
export const headerSize = (headers: Readonly<Record<string, string>>): number => {
  let n = 0
  for (const k in headers) n += encoder.encode(k).length + encoder.encode(headers[k]!).length + 4 // "\r\n" + ": "
  return n === 0 ? 0 : "NATS/1.0".length + n + 4 // the closing "\r\n\r\n"
}

/**
 * Fails with `PayloadTooLarge` when the body and its headers together exceed `maxPayload` (the
 * server's `max_payload`), which the publish would otherwise fail with a bare client error.
 * @category sizing @since 0.1.0
 */
export const checkSize = (
  subject: string,
  body: Uint8Array,
  headers: Readonly<Record<string, string>>,
  maxPayload: number
): Effect.Effect<void, PayloadTooLarge> =>
  Effect.suspend(() => {
    const h = headerSize(headers)
    return body.length + h > maxPayload
      ? Effect.fail(new PayloadTooLarge({ subject, size: body.length + h, maxPayload, headerSize: h }))
      : Effect.void
  })

/**
 * Decodes a JSON body with `schema`, reporting every schema issue with its path.
 * @category decoding @since 0.1.0
 */
export const decode = <A, I>(
  schema: Schema.Codec<A, I>,
  subject: string,
  bytes: Uint8Array
): Effect.Effect<A, PayloadDecodeError> => Effect.suspend(() => Effect.fromResult(decodeSync(schema, subject, bytes)))

/**
 * A value in its JSON form (what `encode` would serialize), for values stored as JSON elsewhere:
 * task outputs and errors in the results bucket. `Schema.Date` becomes an ISO string, and so on.
 * @category encoding @since 0.1.0
 */
export const toJson = <A, I>(schema: Schema.Codec<A, I>, value: A): Exit.Exit<unknown, Schema.SchemaError> =>
  codecsOf(schema).encodeJson(value)

/** The inverse of `toJson`. @category decoding @since 0.1.0 */
export const fromJson = <A, I>(schema: Schema.Codec<A, I>, json: unknown): Exit.Exit<A, Schema.SchemaError> =>
  codecsOf(schema).decodeJson(json) as Exit.Exit<A, Schema.SchemaError>
