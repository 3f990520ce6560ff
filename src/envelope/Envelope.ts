/**
 * The envelope every message carries in its headers: id, type, schema version, creation time,
 * tenant, correlation and causation ids, attempt and W3C trace context. Encoding to and from plain
 * header records lives here; the broker maps those records to NATS headers.
 *
 * Decoding never fails: a message from a plain NATS client (no msgsys headers) or with malformed
 * header values gets defaults, so the payload can still be handled (DESIGN: Envelope).
 * @since 0.1.0
 */
import { Clock, Effect, Schema } from "effect"
import * as MessageId from "./MessageId.ts"

/**
 * Header names. NATS header names are matched case-insensitively on decode.
 * @category constants @since 0.1.0
 */
export const Headers = {
  Id: "Msgsys-Id",
  Type: "Msgsys-Type",
  Version: "Msgsys-Version",
  CreatedAt: "Msgsys-Created-At",
  Tenant: "Msgsys-Tenant",
  CorrelationId: "Msgsys-Correlation-Id",
  CausationId: "Msgsys-Causation-Id",
  Attempt: "Msgsys-Attempt",
  Traceparent: "traceparent",
  Tracestate: "tracestate",
  NatsMsgId: "Nats-Msg-Id"
} as const

/** The prefix of msgsys headers; unknown ones are kept in `extra`. @category constants @since 0.1.0 */
export const HeaderPrefix = "Msgsys-"

/**
 * At most this many extension headers (`Msgsys-*` beyond the envelope's own) are read into
 * `extra`; any publisher can send them, and each is held while the message is handled.
 * @category constants @since 0.1.0
 */
export const maxExtraHeaders = 32

/** At most this many characters (names and values together) of extension headers are read into `extra`. @category constants @since 0.1.0 */
export const maxExtraSize = 8 * 1024

/** The tenant of a message that names none. @category constants @since 0.1.0 */
export const defaultTenant = "default"

/** @category models @since 0.1.0 */
export interface Envelope {
  /** `Msgsys-Id`; also `Nats-Msg-Id` unless `dedupKey` overrides it. */
  readonly id: string
  /** `Msgsys-Type`: the logical subject, e.g. `etl.extract.salesforce`. */
  readonly type: string
  /** `Msgsys-Version`: the payload's schema version, default 1. */
  readonly version: number
  /** `Msgsys-Created-At`, epoch ms (written as ISO-8601). */
  readonly createdAt: number
  /** `Msgsys-Tenant`, default `"default"`. */
  readonly tenant: string
  /** `Msgsys-Correlation-Id`, default: the id. */
  readonly correlationId: string
  /** `Msgsys-Causation-Id`: the id of the message that caused this one. */
  readonly causationId: string | undefined
  /** 1 when published; on receive, JetStream's delivery count. */
  readonly attempt: number
  /** W3C `traceparent`. */
  readonly traceparent: string | undefined
  /** W3C `tracestate`. */
  readonly tracestate: string | undefined
  /** `Nats-Msg-Id` when it differs from the id (deduplication by a caller's key). */
  readonly dedupKey: string | undefined
  /** Other `Msgsys-*` headers, e.g. `Msgsys-Priority`, `Msgsys-Run-At`. */
  readonly extra: Readonly<Record<string, string>>
}

// ---------------------------------------------------------------------------------------------
// tenant

const TENANT = /^[A-Za-z0-9_-]{1,64}$/

/**
 * A tenant name that cannot be used: it becomes part of subjects and stream names.
 * @category errors @since 0.1.0
 */
export class InvalidTenant extends Schema.TaggedError<InvalidTenant>()("InvalidTenant", {
  tenant: Schema.String
}) {
  override get message() {
    return `invalid tenant ${JSON.stringify(this.tenant)}: a tenant becomes part of NATS subjects, so use ` +
      "1 to 64 characters of A-Z, a-z, 0-9, '_' or '-' (no dots, spaces or wildcards), e.g. \"acme-eu\""
  }
}

/** Whether `tenant` matches `/^[A-Za-z0-9_-]{1,64}$/`. @category guards @since 0.1.0 */
export const isValidTenant = (tenant: string): boolean => TENANT.test(tenant)

/**
 * Succeeds with the tenant when it is usable in a subject, else fails with `InvalidTenant`.
 * @category validation @since 0.1.0
 */
export const validateTenant = (tenant: string): Effect.Effect<string, InvalidTenant> =>
  TENANT.test(tenant) ? Effect.succeed(tenant) : Effect.fail(new InvalidTenant({ tenant }))

// ---------------------------------------------------------------------------------------------
// task ids

// Ids become KV keys and subject tokens: letters, digits, '-', '_', '=' and inner dots.
const ID = /^[A-Za-z0-9_=-]+(?:\.[A-Za-z0-9_=-]+)*$/
const isId = (s: string | undefined): s is string => s !== undefined && s.length <= 128 && ID.test(s)

/**
 * A task id that cannot be one. Ids become KV keys and subjects, so a wildcard would reach every
 * task's record.
 * @category errors @since 0.1.0
 */
export class InvalidTaskId extends Schema.TaggedError<InvalidTaskId>()("InvalidTaskId", {
  taskId: Schema.String
}) {
  override get message() {
    const shown = this.taskId.length > 80 ? `${JSON.stringify(this.taskId.slice(0, 80))}...` : JSON.stringify(this.taskId)
    return `invalid task id ${shown}: use the id enqueue returned (e.g. 01M8QD7SY1W2GCTYCADADXCTW6): ` +
      "1 to 128 characters of A-Z, a-z, 0-9, '_', '-', '=' and inner dots, no spaces or wildcards (* >)"
  }
}

/**
 * Whether `id` can be a task id: what `fromHeaders` accepts as an id, and every id it makes.
 * @category guards @since 0.1.0
 */
export const isTaskId = (id: string): boolean => isId(id)

/**
 * Succeeds with the id when it can be a task id, else fails with `InvalidTaskId`.
 * @category validation @since 0.1.0
 */
export const validateTaskId = (id: string): Effect.Effect<string, InvalidTaskId> =>
  isId(id) ? Effect.succeed(id) : Effect.fail(new InvalidTaskId({ taskId: id }))

/** A schema version that is not a whole number >= 1. @category errors @since 0.1.0 */
export class InvalidVersion extends Schema.TaggedError<InvalidVersion>()("InvalidVersion", {
  version: Schema.Number
}) {
  override get message() {
    return `invalid schema version ${this.version}: a payload's version is a whole number >= 1 (e.g. 2), sent as Msgsys-Version`
  }
}

/** Succeeds with the version when it is a whole number >= 1. @category validation @since 0.1.0 */
export const validateVersion = (version: number): Effect.Effect<number, InvalidVersion> =>
  isVersion(version) ? Effect.succeed(version) : Effect.fail(new InvalidVersion({ version }))

// ---------------------------------------------------------------------------------------------
// trace context

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const ZERO_TRACE = "0".repeat(32)
const ZERO_SPAN = "0".repeat(16)

/**
 * Whether `s` is a W3C `traceparent` of version 00 with non-zero trace and span ids.
 * @category guards @since 0.1.0
 */
export const isTraceparent = (s: string): boolean => {
  const m = TRACEPARENT.exec(s)
  return m !== null && m[1] !== ZERO_TRACE && m[2] !== ZERO_SPAN
}

// Random bytes are drawn in blocks: one crypto call per ~170 trace ids instead of two per id.
const POOL = new Uint8Array(4096)
let poolOffset = POOL.length
const HEX: ReadonlyArray<string> = Array.from({ length: 256 }, (_, b) => (b < 16 ? "0" : "") + b.toString(16))

const randomHex = (bytes: number): string => {
  if (poolOffset + bytes > POOL.length) {
    crypto.getRandomValues(POOL)
    poolOffset = 0
  }
  let out = ""
  for (let i = 0; i < bytes; i++) out += HEX[POOL[poolOffset + i]!]
  poolOffset += bytes
  return out
}
// The all-zero id is invalid in W3C; 2^-64 odds, but a retry costs nothing.
const nonZeroHex = (bytes: number): string => {
  for (;;) {
    const h = randomHex(bytes)
    if (/[^0]/.test(h)) return h
  }
}

/**
 * A new sampled `traceparent` with random trace and span ids.
 * @category trace @since 0.1.0
 */
export const newTraceparent = (): string => `00-${nonZeroHex(16)}-${nonZeroHex(8)}-01`

/**
 * A `traceparent` in the same trace as `parent` with a new span id and the parent's flags; a new
 * trace when `parent` is not a valid `traceparent`.
 * @category trace @since 0.1.0
 */
export const childTraceparent = (parent: string): string => {
  const m = TRACEPARENT.exec(parent)
  if (m === null || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return newTraceparent()
  return `00-${m[1]}-${nonZeroHex(8)}-${m[3]}`
}

/** The trace id (32 hex) of a valid `traceparent`. @category trace @since 0.1.0 */
export const traceIdOf = (traceparent: string): string | undefined =>
  isTraceparent(traceparent) ? traceparent.slice(3, 35) : undefined

// ---------------------------------------------------------------------------------------------
// construction

/** @category models @since 0.1.0 */
export interface MakeOptions {
  /** Default: a new `MessageId`. */
  readonly id?: string
  /** Default: the parent's tenant, else `"default"`. Check it with `validateTenant` first. */
  readonly tenant?: string
  /** Default: the parent's correlation id, else the id. */
  readonly correlationId?: string
  /** Default: the parent's id. */
  readonly causationId?: string
  /** Default: 1. */
  readonly version?: number
  /** Default: a child of the parent's trace, else a new trace. */
  readonly traceparent?: string
  /** Default: the parent's. */
  readonly tracestate?: string
  /** Sent as `Nats-Msg-Id` instead of the id, so republishing the same key is deduplicated. */
  readonly dedupKey?: string
  /** More `Msgsys-*` headers. Only `Msgsys-*` names survive a round trip. */
  readonly extra?: Readonly<Record<string, string>>
  /** The message being handled when this one is sent: correlation, causation, tenant and trace follow it. */
  readonly parent?: Envelope
}

/** A new message id for a message created at `now` (epoch ms). @category constructors @since 0.1.0 */
export const newId: (now: number) => string = MessageId.makeUnsafe

/**
 * A new envelope for a message of `type` (its logical subject) created at `now`, synchronously
 * (for hot paths; `make` reads the `Clock`).
 * @category constructors @since 0.1.0
 */
export const makeUnsafe = (type: string, now: number, options: MakeOptions = {}): Envelope => {
  const parent = options.parent
  const id = options.id ?? MessageId.makeUnsafe(now)
  const traceparent = options.traceparent !== undefined && isTraceparent(options.traceparent)
    ? options.traceparent
    : parent?.traceparent !== undefined
    ? childTraceparent(parent.traceparent)
    : newTraceparent()
  const tracestate = options.tracestate ?? (options.traceparent === undefined ? parent?.tracestate : undefined)
  return {
    id,
    type,
    version: options.version !== undefined && isVersion(options.version) ? options.version : 1,
    createdAt: now,
    tenant: options.tenant ?? parent?.tenant ?? defaultTenant,
    correlationId: options.correlationId ?? parent?.correlationId ?? id,
    causationId: options.causationId ?? parent?.id,
    attempt: 1,
    traceparent,
    tracestate,
    dedupKey: options.dedupKey !== undefined && options.dedupKey !== id ? options.dedupKey : undefined,
    extra: options.extra ?? {}
  }
}

/**
 * A new envelope for a message of `type` (its logical subject), created now (by `Clock`).
 * @category constructors @since 0.1.0
 */
export const make = (type: string, options: MakeOptions = {}): Effect.Effect<Envelope> =>
  Effect.map(Clock.currentTimeMillis, (now) => makeUnsafe(type, now, options))

// ---------------------------------------------------------------------------------------------
// headers

// A header value with CR or LF would break the NATS frame.
const clean = (v: string): string => /[\r\n]/.test(v) ? v.replace(/[\r\n]+/g, " ") : v

const isoOf = (ms: number): string => {
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString()
}

const CORE = new Set(
  Object.values(Headers).map((h) => h.toLowerCase())
)

/** @category models @since 0.1.0 */
export interface HeaderOptions {
  /**
   * Leave out what a receiver derives by itself (`fromHeaders` gives the same envelope back): the
   * type (the subject), version 1, the creation time (the stream's stored time), the default
   * tenant, a correlation id equal to the id, and the attempt (the delivery count). The id always
   * travels in `Msgsys-Id`: a republisher (a replay, the delay mover) changes `Nats-Msg-Id`.
   * Fewer headers are cheaper to send and to read on every message.
   */
  readonly compact?: boolean
}

/**
 * The headers for an envelope, including `Nats-Msg-Id` (`dedupKey` or the id).
 * @category encoding @since 0.1.0
 */
export const toHeaders = (e: Envelope, options: HeaderOptions = {}): Record<string, string> => {
  const h: Record<string, string> = {}
  for (const k in e.extra) {
    // core fields win over an extra of the same name
    if (!CORE.has(k.toLowerCase())) h[k] = clean(e.extra[k]!)
  }
  const full = options.compact !== true
  h[Headers.Id] = clean(e.id)
  if (full) h[Headers.Type] = clean(e.type)
  if (full || e.version !== 1) h[Headers.Version] = String(e.version)
  if (full) h[Headers.CreatedAt] = isoOf(e.createdAt)
  if (full || e.tenant !== defaultTenant) h[Headers.Tenant] = clean(e.tenant)
  if (full || e.correlationId !== e.id) h[Headers.CorrelationId] = clean(e.correlationId)
  if (e.causationId !== undefined) h[Headers.CausationId] = clean(e.causationId)
  if (full) h[Headers.Attempt] = String(e.attempt)
  if (e.traceparent !== undefined) {
    h[Headers.Traceparent] = e.traceparent
    if (e.tracestate !== undefined) h[Headers.Tracestate] = clean(e.tracestate)
  }
  h[Headers.NatsMsgId] = clean(e.dedupKey ?? e.id)
  return h
}

// Free-form references (correlation, causation, type): printable, no spaces, bounded.
const REF = /^[\x21-\x7e]+$/
const isRef = (s: string | undefined): s is string => s !== undefined && s.length <= 256 && REF.test(s)
const isVersion = (n: number): boolean => Number.isSafeInteger(n) && n >= 1
const DIGITS = /^\d{1,16}$/
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/

const parseCount = (s: string | undefined): number | undefined => {
  if (s === undefined || !DIGITS.test(s.trim())) return undefined
  const n = Number(s.trim())
  return isVersion(n) ? n : undefined
}

const parseTime = (s: string | undefined): number | undefined => {
  if (s === undefined) return undefined
  const v = s.trim()
  if (DIGITS.test(v)) return Number(v)
  if (!ISO.test(v)) return undefined
  const ms = Date.parse(v)
  return Number.isFinite(ms) ? ms : undefined
}

// most messages carry no extension header: they share one empty, frozen record
const noExtra: Readonly<Record<string, string>> = Object.freeze({})

/** `msgsys-run-at` → `Msgsys-Run-At`, so lookups by the constants work whatever case was sent. */
const canonical = (name: string): string =>
  name.split("-").map((p) => p.length === 0 ? p : p[0]!.toUpperCase() + p.slice(1).toLowerCase()).join("-")

/** @category models @since 0.1.0 */
export interface ReceiveInfo {
  /** Epoch ms of receipt: the default `createdAt`. */
  readonly now: number
  /** The id when the message carries none, e.g. `${stream}-${streamSequence}`. */
  readonly fallbackId: string
  /** JetStream's delivery count: overrides `Msgsys-Attempt`. */
  readonly deliveryCount?: number
}

/**
 * Reads an envelope from received headers. Never fails: missing or malformed values get defaults
 * (id: `Nats-Msg-Id`, else `fallbackId`; type: `subject`; version 1; createdAt: `now`; tenant
 * `"default"`; correlation id: the id; attempt: the delivery count, else 1), and a `traceparent`
 * that is not W3C version 00 is dropped with its `tracestate`. Extension headers are read in
 * order up to `maxExtraHeaders` and `maxExtraSize`; the rest are not read.
 * @category decoding @since 0.1.0
 */
export const fromHeaders = (
  subject: string,
  headers: Readonly<Record<string, string>> | undefined,
  receive: ReceiveInfo
): Envelope => {
  let id: string | undefined
  let natsMsgId: string | undefined
  let type: string | undefined
  let version: string | undefined
  let createdAt: string | undefined
  let tenant: string | undefined
  let correlationId: string | undefined
  let causationId: string | undefined
  let attempt: string | undefined
  let traceparent: string | undefined
  let tracestate: string | undefined
  let extra: Record<string, string> | undefined
  let extraCount = 0
  let extraSize = 0
  if (headers !== undefined) {
    // one pass, case-insensitive: other clients may send `Traceparent` or `msgsys-id`
    for (const key in headers) {
      const value = headers[key]
      if (typeof value !== "string") continue
      switch (key.toLowerCase()) {
        case "msgsys-id": id = value; break
        case "nats-msg-id": natsMsgId = value; break
        case "msgsys-type": type = value; break
        case "msgsys-version": version = value; break
        case "msgsys-created-at": createdAt = value; break
        case "msgsys-tenant": tenant = value; break
        case "msgsys-correlation-id": correlationId = value; break
        case "msgsys-causation-id": causationId = value; break
        case "msgsys-attempt": attempt = value; break
        case "traceparent": traceparent = value.trim(); break
        case "tracestate": tracestate = value; break
        default:
          if (key.length > HeaderPrefix.length && key.slice(0, HeaderPrefix.length).toLowerCase() === "msgsys-") {
            // beyond the caps, extensions stay on the message (and go with it to dead letters) unread
            const size = key.length + value.length
            if (extraCount >= maxExtraHeaders || extraSize + size > maxExtraSize) break
            extraCount++
            extraSize += size
            ;(extra ??= {})[canonical(key)] = value
          }
      }
    }
  }
  const theId = isId(id) ? id : isId(natsMsgId) ? natsMsgId : receive.fallbackId
  const validTrace = traceparent !== undefined && isTraceparent(traceparent)
  const deliveries = receive.deliveryCount
  return {
    id: theId,
    type: isRef(type) ? type : subject,
    version: parseCount(version) ?? 1,
    createdAt: parseTime(createdAt) ?? receive.now,
    tenant: tenant !== undefined && TENANT.test(tenant) ? tenant : defaultTenant,
    correlationId: isRef(correlationId) ? correlationId : theId,
    causationId: isRef(causationId) ? causationId : undefined,
    attempt: deliveries !== undefined && isVersion(deliveries) ? deliveries : parseCount(attempt) ?? 1,
    traceparent: validTrace ? traceparent : undefined,
    tracestate: validTrace && tracestate !== undefined && tracestate.length <= 512 ? tracestate : undefined,
    dedupKey: natsMsgId !== undefined && natsMsgId.length > 0 && natsMsgId !== theId ? natsMsgId : undefined,
    extra: extra ?? noExtra
  }
}
