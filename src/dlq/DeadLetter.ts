/**
 * The dead-letter format (guarantee 4). A letter is the original message — its body as it was
 * stored, its headers carried as headers — plus the facts of the move in `Msgsys-Dlq-*` headers:
 * task id, subjects, actor, tenant, reason, the error (a `StoredError` as JSON), the attempt
 * history (JSON), where and when the original was stored, and when it was dead-lettered. It is
 * published on `<prefix>.dlq.<actor>.<tenant>`.
 *
 * The variable parts are bounded (the error to 4 KB, the history to 8 KB, set-aside headers to
 * 2 KB, all ASCII): what does not fit is trimmed with a marker and named in `Msgsys-Dlq-Trimmed`,
 * so the metadata never fails a move. When the original message and the metadata together exceed
 * the server's `max_payload`, the original goes on its own to `<prefix>.dlq.$body.<actor>.<tenant>`
 * (a "body part", which fits because the original did) and the letter carries only the metadata
 * and `Msgsys-Dlq-Body-Sequence`, the body part's stream sequence.
 *
 * Original headers the server would act on when stored again (`Nats-*`: dedup ids, expectations)
 * or that nats.js cannot send are not carried as headers: they are kept, as JSON, in
 * `Msgsys-Dlq-Held-Headers`, for people to read; replay does not send them.
 *
 * One header of the prefix travels with the task rather than the letter: `Msgsys-Dlq-Retries`, the
 * number of times the DLQ worker has replayed the task. The DLQ worker sets it on the message it
 * replays; when that run is dead-lettered again, the header is carried onto the new letter like
 * any other header of the task, so the count survives the round trip (and a crash of the DLQ
 * worker, which keeps no count of its own).
 *
 * Letters written before this format (JSON with the body in base64, no `Msgsys-Dlq-Format`
 * header) still decode, as format 1.
 * @since 0.1.0
 */
import { Exit, Option, Schema } from "effect"
import type { RetriedReason } from "../config/MsgsysConfig.ts"
import { FailedAttempt, StoredError } from "../task/TaskRecord.ts"

/** Why the message was dead-lettered. @category models @since 0.1.0 */
export const Reason = Schema.Literals(["exhausted", "permanent", "poison", "unroutable", "max_deliveries"])
/** @category models @since 0.1.0 */
export type Reason = typeof Reason.Type

// MSGSYS_DLQ_RETRY_REASONS lists the reasons it accepts itself (config is below dlq/): every
// reason but poison, no more and no fewer, or this line does not compile.
const retriedReasonsAgree: [RetriedReason] extends [Exclude<Reason, "poison">]
  ? [Exclude<Reason, "poison">] extends [RetriedReason] ? true : false
  : false = true
void retriedReasonsAgree

/** The headers of the format. @category constants @since 0.1.0 */
export const Headers = {
  /** `2` on every letter and body part of this format. */
  Format: "Msgsys-Dlq-Format",
  /** `body` on a body part. */
  Part: "Msgsys-Dlq-Part",
  /** On a body part: `<stream>:<sequence>` of the original message. */
  Of: "Msgsys-Dlq-Of",
  TaskId: "Msgsys-Dlq-Task-Id",
  Subject: "Msgsys-Dlq-Subject",
  StoredSubject: "Msgsys-Dlq-Stored-Subject",
  Actor: "Msgsys-Dlq-Actor",
  Tenant: "Msgsys-Dlq-Tenant",
  Reason: "Msgsys-Dlq-Reason",
  /** A `StoredError` as JSON. */
  Error: "Msgsys-Dlq-Error",
  Attempts: "Msgsys-Dlq-Attempts",
  /** The attempt history as a JSON array, newest last. */
  History: "Msgsys-Dlq-History",
  /** How many of the oldest attempts were left out of `History` to bound it. */
  HistoryDropped: "Msgsys-Dlq-History-Dropped",
  Stream: "Msgsys-Dlq-Stream",
  Sequence: "Msgsys-Dlq-Sequence",
  /** Epoch ms. */
  StoredAt: "Msgsys-Dlq-Stored-At",
  /** Epoch ms. */
  DeadLetteredAt: "Msgsys-Dlq-At",
  BodySize: "Msgsys-Dlq-Body-Size",
  /** Only when the body is stored apart: the body part's sequence in the dead-letter stream. */
  BodySequence: "Msgsys-Dlq-Body-Sequence",
  /** Original headers not carried as headers, as a JSON object. */
  HeldHeaders: "Msgsys-Dlq-Held-Headers",
  /** Comma-separated: which of error, history, held-headers were trimmed. */
  Trimmed: "Msgsys-Dlq-Trimmed"
} as const

/** The format this version writes. @category constants @since 0.1.0 */
export const format = 2

/**
 * On a task the DLQ worker replayed, and on the letter of its next failure: how many times the
 * DLQ worker has replayed it. Absent means none. A replay from the CLI leaves it out, so the DLQ
 * worker starts counting afresh.
 * @category constants @since 0.1.0
 */
export const RetriesHeader = "Msgsys-Dlq-Retries"

const prefix = "msgsys-dlq-"
const retriesLower = RetriesHeader.toLowerCase()

/**
 * Whether a header name belongs to the format (case-insensitive); `Msgsys-Dlq-Retries` does not:
 * it belongs to the task.
 * @category guards @since 0.1.0
 */
export const isFormatHeader = (name: string): boolean => {
  const lower = name.toLowerCase()
  return lower.startsWith(prefix) && lower !== retriesLower
}

/** The DLQ worker's replays of a task, from its (or its letter's) headers; 0 when absent or malformed. @category reading @since 0.1.0 */
export const retriesOf = (headers: Readonly<Record<string, string>> | undefined): number => {
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() === retriesLower) return /^\d{1,6}$/.test(v.trim()) ? Number(v.trim()) : 0
  }
  return 0
}

/** What the caller decided about the message: who, why, and the history. @category models @since 0.1.0 */
export interface Metadata {
  readonly taskId: string
  /** The task subject (without priority or delay prefixes). */
  readonly subject: string
  readonly actor: string
  readonly tenant: string
  readonly reason: Reason
  readonly error: StoredError
  /** The delivery that gave up (JetStream's delivery count). */
  readonly attempts: number
  /** The failed attempts, oldest first, including the last one. */
  readonly history: ReadonlyArray<FailedAttempt>
  /** Epoch ms. */
  readonly deadLetteredAt: number
}

/** The stored message being moved, as a delivery or a stream read gives it. @category models @since 0.1.0 */
export interface Original {
  readonly stream: string
  readonly sequence: number
  /** The subject it was stored on (with any priority or delay prefix). */
  readonly storedSubject: string
  readonly headers: Readonly<Record<string, string>> | undefined
  readonly body: Uint8Array
  /** Epoch ms. */
  readonly storedAt: number
}

/** A letter as read back, without its body. @category models @since 0.1.0 */
export interface Letter {
  /** 2 for this format, 1 for letters written as JSON with a base64 body. */
  readonly format: 1 | 2
  readonly taskId: string
  readonly subject: string
  readonly storedSubject: string
  readonly actor: string
  readonly tenant: string
  /** A `Reason`; read as a string so letters of newer versions still list. */
  readonly reason: string
  readonly error: StoredError
  readonly attempts: number
  readonly history: ReadonlyArray<FailedAttempt>
  /** Oldest attempts left out of `history` to bound its size. */
  readonly historyDropped: number
  readonly stream: string
  readonly streamSequence: number
  readonly storedAt: number
  readonly deadLetteredAt: number
  readonly bodySize: number
  /** The body part's sequence, when the body is stored apart. */
  readonly bodySequence: number | undefined
  /** Original headers kept aside (not replayed). */
  readonly heldHeaders: Readonly<Record<string, string>>
  /** Which variable parts were trimmed to bound the letter's size. */
  readonly trimmed: ReadonlyArray<string>
  /** How many times the DLQ worker had replayed the task before this letter (`Msgsys-Dlq-Retries`). */
  readonly retries: number
}

/** The dedup id of the letter of one stored message: a retried move makes one letter, not two. @category utils @since 0.1.0 */
export const dedupId = (stream: string, sequence: number) => `dlq:${stream}:${sequence}`

/** The dedup id of the body part of one stored message. @category utils @since 0.1.0 */
export const bodyDedupId = (stream: string, sequence: number) => `dlq-body:${stream}:${sequence}`

// ---------------------------------------------------------------------------------------------
// bounds

/** Size bounds of the variable parts, in bytes of their (ASCII) header values. @category constants @since 0.1.0 */
export const bounds = { error: 4096, attemptError: 512, history: 8192, heldHeaders: 2048 } as const

// JSON with every non-ASCII character escaped: a header value whose length is its size in bytes
const asciiJson = (value: unknown): string =>
  JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

const cut = (text: string, keep: number): string => {
  const k = Math.max(0, keep)
  return k >= text.length ? text : `${text.slice(0, k)} … [trimmed ${text.length - k} characters]`
}

/** The error within `max` bytes of JSON: without its encoded form first, then with a shorter message. */
const boundError = (error: StoredError, max: number): { readonly json: string; readonly trimmed: boolean } => {
  const whole = asciiJson(error)
  if (whole.length <= max) return { json: whole, trimmed: false }
  const tag = cut(error.tag, 200)
  // a character costs at least a byte: no more than `max` of them can fit
  let keep = Math.min(error.message.length, max)
  for (let i = 0; i < 24; i++) {
    const json = asciiJson({ tag, message: cut(error.message, keep) })
    if (json.length <= max) return { json, trimmed: true }
    // escapes make a character cost 1 to 6 bytes: shrink in proportion, at least 5% a round
    keep = Math.floor(keep * Math.min(0.95, (max - 128) / json.length))
  }
  return { json: asciiJson({ tag, message: cut(error.message, 0) }), trimmed: true }
}

const boundHistory = (history: ReadonlyArray<FailedAttempt>) => {
  let trimmed = false
  const entries = history.map((a) => {
    const e = boundError(a.error, bounds.attemptError)
    trimmed ||= e.trimmed
    return e.trimmed ? { ...a, error: JSON.parse(e.json) as StoredError } : a
  })
  // keep the newest attempts that fit: each entry's size plus a comma, from the newest back
  const sizes = entries.map((e) => asciiJson(e).length + 1)
  let used = 1
  let kept = 0
  while (kept < entries.length && used + sizes[entries.length - 1 - kept]! <= bounds.history) {
    used += sizes[entries.length - 1 - kept]!
    kept++
  }
  const dropped = entries.length - kept
  const json = asciiJson(entries.slice(dropped))
  return { json, dropped, trimmed: trimmed || dropped > 0 }
}

const boundRecord = (record: Readonly<Record<string, string>>) => {
  const whole = asciiJson(record)
  if (whole.length <= bounds.heldHeaders) return { json: whole, trimmed: false }
  const kept: Record<string, string> = {}
  for (const [k, v] of Object.entries(record)) {
    const next = { ...kept, [k.slice(0, 100)]: cut(v, 200) }
    if (asciiJson(next).length > bounds.heldHeaders - 64) break
    kept[k.slice(0, 100)] = cut(v, 200)
  }
  return { json: asciiJson(kept), trimmed: true }
}

// ---------------------------------------------------------------------------------------------
// writing

// nats.js refuses a header name with characters outside 33..126 or a colon (it throws)
const sendableName = (name: string) => name.length > 0 && /^[\x21-\x39\x3b-\x7e]+$/.test(name)

/**
 * Splits an original message's headers into those carried as headers on the letter (or body part)
 * and those held aside: `Nats-*` (the server would act on them) and names nats.js cannot send.
 * Headers of the format itself (`Msgsys-Dlq-*`) are dropped: they mean nothing on a task.
 * @category writing @since 0.1.0
 */
export const splitHeaders = (headers: Readonly<Record<string, string>> | undefined) => {
  const carried: Record<string, string> = {}
  const held: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (isFormatHeader(k)) continue
    if (k.toLowerCase().startsWith("nats-") || !sendableName(k)) held[k] = v
    else carried[k] = v
  }
  return { carried, held }
}

/**
 * The metadata headers of a letter. Never fails: oversized parts are trimmed and named in
 * `Msgsys-Dlq-Trimmed`.
 * @category writing @since 0.1.0
 */
export const metadataHeaders = (
  metadata: Metadata,
  original: Original,
  held: Readonly<Record<string, string>>
): Record<string, string> => {
  const error = boundError(metadata.error, bounds.error)
  const history = boundHistory(metadata.history)
  const trimmed: Array<string> = []
  if (error.trimmed) trimmed.push("error")
  if (history.trimmed) trimmed.push("history")
  const h: Record<string, string> = {
    [Headers.Format]: String(format),
    [Headers.TaskId]: metadata.taskId,
    [Headers.Subject]: metadata.subject,
    [Headers.StoredSubject]: original.storedSubject,
    [Headers.Actor]: metadata.actor,
    [Headers.Tenant]: metadata.tenant,
    [Headers.Reason]: metadata.reason,
    [Headers.Error]: error.json,
    [Headers.Attempts]: String(metadata.attempts),
    [Headers.History]: history.json,
    [Headers.Stream]: original.stream,
    [Headers.Sequence]: String(original.sequence),
    [Headers.StoredAt]: String(original.storedAt),
    [Headers.DeadLetteredAt]: String(metadata.deadLetteredAt),
    [Headers.BodySize]: String(original.body.length)
  }
  if (history.dropped > 0) h[Headers.HistoryDropped] = String(history.dropped)
  if (Object.keys(held).length > 0) {
    const r = boundRecord(held)
    h[Headers.HeldHeaders] = r.json
    if (r.trimmed) trimmed.push("held-headers")
  }
  if (trimmed.length > 0) h[Headers.Trimmed] = trimmed.join(",")
  return h
}

/** The marker headers of a body part (sent only when they fit). @category writing @since 0.1.0 */
export const bodyPartHeaders = (original: Original): Record<string, string> => ({
  [Headers.Format]: String(format),
  [Headers.Part]: "body",
  [Headers.Of]: `${original.stream}:${original.sequence}`
})

// ---------------------------------------------------------------------------------------------
// reading

const decodeError = Schema.decodeUnknownExit(Schema.fromJsonString(StoredError))
const decodeHistory = Schema.decodeUnknownExit(Schema.fromJsonString(Schema.Array(FailedAttempt)))
const decodeRecord = Schema.decodeUnknownExit(Schema.fromJsonString(Schema.Record(Schema.String, Schema.String)))

const count = (s: string | undefined): number | undefined => {
  if (s === undefined || !/^\d{1,16}$/.test(s)) return undefined
  return Number(s)
}

/** Whether these headers are those of a letter of this format. @category reading @since 0.1.0 */
export const isLetter = (headers: Readonly<Record<string, string>>): boolean =>
  headers[Headers.Format] !== undefined && headers[Headers.Part] === undefined

/**
 * Reads a letter of this format from its headers; `None` when they are not such a letter's
 * (no `Msgsys-Dlq-Format`, or a field missing or malformed).
 * @category reading @since 0.1.0
 */
export const fromHeaders = (h: Readonly<Record<string, string>>): Option.Option<Letter> => {
  if (!isLetter(h) || count(h[Headers.Format]) !== format) return Option.none()
  const error = decodeError(h[Headers.Error] ?? "")
  const history = decodeHistory(h[Headers.History] ?? "[]")
  const held = h[Headers.HeldHeaders] === undefined ? Exit.succeed({}) : decodeRecord(h[Headers.HeldHeaders])
  const attempts = count(h[Headers.Attempts])
  const sequence = count(h[Headers.Sequence])
  const storedAt = count(h[Headers.StoredAt])
  const at = count(h[Headers.DeadLetteredAt])
  const bodySize = count(h[Headers.BodySize])
  const bodySequence = count(h[Headers.BodySequence])
  const strings = [Headers.TaskId, Headers.Subject, Headers.StoredSubject, Headers.Actor, Headers.Tenant, Headers.Reason,
    Headers.Stream].map((k) => h[k])
  if (
    Exit.isFailure(error) || Exit.isFailure(history) || Exit.isFailure(held) || attempts === undefined ||
    sequence === undefined || storedAt === undefined || at === undefined || bodySize === undefined ||
    (h[Headers.BodySequence] !== undefined && bodySequence === undefined) || strings.some((s) => s === undefined)
  ) return Option.none()
  const [taskId, subject, storedSubject, actor, tenant, reason, stream] = strings as Array<string>
  return Option.some({
    format: 2,
    taskId: taskId!,
    subject: subject!,
    storedSubject: storedSubject!,
    actor: actor!,
    tenant: tenant!,
    reason: reason!,
    error: error.value,
    attempts,
    history: history.value,
    historyDropped: count(h[Headers.HistoryDropped]) ?? 0,
    stream: stream!,
    streamSequence: sequence,
    storedAt,
    deadLetteredAt: at,
    bodySize,
    bodySequence,
    heldHeaders: held.value,
    trimmed: h[Headers.Trimmed]?.split(",").filter((s) => s.length > 0) ?? [],
    retries: retriesOf(h)
  })
}

/** The headers of a body part that came from the original message. @category reading @since 0.1.0 */
export const originalHeadersOf = (h: Readonly<Record<string, string>>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(h)) if (!isFormatHeader(k) && k !== "Nats-Msg-Id") out[k] = v
  return out
}

// ---------------------------------------------------------------------------------------------
// format 1

/** A letter as versions before format 2 wrote it: JSON, the body in base64. @category legacy @since 0.1.0 */
export const LegacyLetter = Schema.Struct({
  taskId: Schema.String,
  subject: Schema.String,
  storedSubject: Schema.String,
  actor: Schema.String,
  tenant: Schema.String,
  reason: Schema.String,
  error: StoredError,
  attempts: Schema.Number,
  history: Schema.Array(FailedAttempt),
  headers: Schema.Record(Schema.String, Schema.String),
  /** The original body, base64. */
  payload: Schema.String,
  stream: Schema.String,
  streamSequence: Schema.Number,
  storedAt: Schema.Number,
  deadLetteredAt: Schema.Number
})
/** @category legacy @since 0.1.0 */
export type LegacyLetter = typeof LegacyLetter.Type

const decodeLegacyJson = Schema.decodeUnknownExit(Schema.fromJsonString(LegacyLetter))

/**
 * Reads a format-1 letter from its body: the letter, the original's headers and body.
 * @category legacy @since 0.1.0
 */
export const fromLegacy = (data: Uint8Array): Option.Option<{
  readonly letter: Letter
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}> => {
  const decoded = decodeLegacyJson(new TextDecoder().decode(data))
  if (Exit.isFailure(decoded)) return Option.none()
  const l = decoded.value
  const body = Uint8Array.from(Buffer.from(l.payload, "base64"))
  const { carried, held } = splitHeaders(l.headers)
  return Option.some({
    letter: {
      format: 1,
      taskId: l.taskId,
      subject: l.subject,
      storedSubject: l.storedSubject,
      actor: l.actor,
      tenant: l.tenant,
      reason: l.reason,
      error: l.error,
      attempts: l.attempts,
      history: l.history,
      historyDropped: 0,
      stream: l.stream,
      streamSequence: l.streamSequence,
      storedAt: l.storedAt,
      deadLetteredAt: l.deadLetteredAt,
      bodySize: body.length,
      bodySequence: undefined,
      heldHeaders: held,
      trimmed: [],
      retries: retriesOf(carried)
    },
    headers: carried,
    body
  })
}

/** Writes a format-1 letter, as versions before format 2 did (for tests of old letters). @category legacy @since 0.1.0 */
export const encodeLegacy = (letter: LegacyLetter): Uint8Array => new TextEncoder().encode(JSON.stringify(letter))
