/**
 * The pure half of `Topology.apply`: declarations normalised to server units, the configs msgsys
 * sends, and the comparison of a declaration with what the server already has.
 * @since 0.1.0
 */
import type { ConsumerConfig, StreamConfig } from "@nats-io/jetstream"
import type { KvOptions } from "@nats-io/kv"
import { millis, nanos } from "@nats-io/transport-node"
import { Duration, Option } from "effect"
import type { ConsumerSpec, KvSpec, StreamSpec, Topology } from "../Topology.ts"

/** Server features msgsys may use; newer ones are never sent to an older server. */
export interface Features {
  /** `metadata` on streams and consumers (2.10+). */
  readonly metadata: boolean
}

/** What 2.10+ servers get as stream/consumer metadata, so people can tell who owns a resource. */
export const ownerMetadata: Readonly<Record<string, string>> = { managed_by: "msgsys" }

/** A declaration msgsys cannot send: a bad duration, a contradiction. */
export interface Problem {
  readonly resource: string
  readonly field: string
  readonly wanted: string
  readonly problem: string
  readonly fix: string
}

/** A declared field that differs from the server's. */
export interface FieldDiff {
  readonly field: string
  readonly current: string
  readonly wanted: string
}

// ---------------------------------------------------------------------------------------------
// names and units

/** @internal */
export const streamResource = (name: string) => `stream ${name}`
/** @internal */
export const consumerResource = (stream: string, name: string) => `consumer ${stream}/${name}`
/** @internal */
export const kvResource = (bucket: string) => `kv bucket ${bucket}`
/** The stream behind a KV bucket. */
export const kvStream = (bucket: string) => `KV_${bucket}`

/** Milliseconds of a duration input; `undefined` when it is not a duration. */
export const toMillis = (input: Duration.Input): number | undefined =>
  Option.match(Duration.fromInput(input), { onNone: () => undefined, onSome: (d) => Duration.toMillis(d) })

/** A duration as JetStream wants it: integer nanoseconds (0 for an infinite duration). */
export const durationToNanos = (input: Duration.Input): number => {
  const ms = toMillis(input)
  return ms === undefined || !Number.isFinite(ms) ? 0 : Math.round(nanos(ms))
}

/** JetStream nanoseconds back to a Duration. */
export const nanosToDuration = (ns: number): Duration.Duration => Duration.millis(millis(ns))

/** Compares server durations at millisecond precision: large nanosecond counts lose digits in JSON. */
const sameNanos = (a: number | undefined, b: number | undefined) => Math.round(millis(a ?? 0)) === Math.round(millis(b ?? 0))

const showMillis = (ms: number, zero = "unlimited") => ms <= 0 ? zero : Duration.format(Duration.millis(ms))
const showNanos = (ns: number | undefined, zero = "unlimited") => showMillis(Math.round(millis(ns ?? 0)), zero)
const showLimit = (n: number | undefined) => n === undefined || n < 0 ? "unlimited" : String(n)

/** Reads a declared duration, noting a problem when it is not a finite, non-negative duration. */
const readDuration = (
  problems: Array<Problem>,
  resource: string,
  field: string,
  input: Duration.Input | undefined,
  fallback: number,
  allowInfinite: boolean
): number => {
  if (input === undefined) return fallback
  const ms = toMillis(input)
  if (ms === undefined || Number.isNaN(ms) || ms < 0 || (!allowInfinite && !Number.isFinite(ms))) {
    problems.push({
      resource,
      field,
      wanted: String(input),
      problem: "is not a finite, non-negative duration",
      fix: `declare ${field} as a duration such as "30 seconds" or a number of milliseconds`
    })
    return fallback
  }
  return Number.isFinite(ms) ? ms : 0
}

// ---------------------------------------------------------------------------------------------
// streams

/** A stream declaration with every default filled in, durations in milliseconds. */
export interface NormalStream {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  readonly retention: StreamSpec["retention"]
  readonly storage: "file" | "memory"
  readonly replicas: number
  /** 0 = unlimited */
  readonly maxAgeMs: number
  readonly maxMsgs: number
  readonly maxBytes: number
  readonly maxMsgSize: number
  readonly duplicateWindowMs: number
  readonly discard: "old" | "new"
  readonly description: string | undefined
}

const defaultDuplicateWindowMs = 120_000

/** Fills in a stream's defaults (see `StreamSpec`). */
export const normalizeStream = (spec: StreamSpec, problems: Array<Problem> = []): NormalStream => {
  const resource = streamResource(spec.name)
  const maxAgeMs = readDuration(problems, resource, "maxAge", spec.maxAge, 0, true)
  // the server rejects a window longer than max_age (10052), and shortens its own default the same way
  const defaultWindow = maxAgeMs > 0 ? Math.min(defaultDuplicateWindowMs, maxAgeMs) : defaultDuplicateWindowMs
  const duplicateWindowMs = readDuration(problems, resource, "duplicateWindow", spec.duplicateWindow, defaultWindow, false)
  if (maxAgeMs > 0 && duplicateWindowMs > maxAgeMs) {
    problems.push({
      resource,
      field: "duplicateWindow",
      wanted: showMillis(duplicateWindowMs),
      problem: `is longer than maxAge (${showMillis(maxAgeMs)}), which the server rejects`,
      fix: "declare a duplicateWindow no longer than maxAge, or leave it out (it then defaults to the shorter of 2 minutes and maxAge)"
    })
  }
  if (spec.subjects.length === 0) {
    problems.push({
      resource,
      field: "subjects",
      wanted: "",
      problem: "is empty",
      fix: "declare at least one subject the stream stores"
    })
  }
  return {
    name: spec.name,
    subjects: unique(spec.subjects),
    retention: spec.retention,
    storage: spec.storage ?? "file",
    replicas: spec.replicas ?? 1,
    maxAgeMs,
    maxMsgs: spec.maxMsgs ?? -1,
    maxBytes: spec.maxBytes ?? -1,
    maxMsgSize: spec.maxMsgSize ?? -1,
    duplicateWindowMs,
    discard: spec.discard ?? "old",
    description: spec.description
  }
}

/** The fields of a stream that can change in place. */
const streamUpdatable = (s: NormalStream) => ({
  subjects: [...s.subjects],
  num_replicas: s.replicas,
  max_age: nanos(s.maxAgeMs),
  max_msgs: s.maxMsgs,
  max_bytes: s.maxBytes,
  max_msg_size: s.maxMsgSize,
  duplicate_window: nanos(s.duplicateWindowMs),
  discard: s.discard,
  ...(s.description !== undefined ? { description: s.description } : {})
})

/** The config sent to create a stream. */
export const streamConfig = (s: NormalStream, features: Features): Partial<StreamConfig> & { name: string } => ({
  name: s.name,
  retention: s.retention,
  storage: s.storage,
  ...streamUpdatable(s),
  ...(features.metadata ? { metadata: { ...ownerMetadata } } : {})
})

/** How a stream on the server differs from its declaration. */
export interface StreamPlan {
  /** Fields that cannot change without deleting the stream. */
  readonly conflicts: ReadonlyArray<FieldDiff>
  /** Updatable fields that differ, by their declared names. */
  readonly changed: ReadonlyArray<string>
  /** Subjects the server has that the declaration no longer lists. */
  readonly removedSubjects: ReadonlyArray<string>
  /** What to send to `streams.update` when `changed` is not empty. */
  readonly update: Partial<StreamConfig>
}

/** Compares a declared stream with the server's config. */
export const diffStream = (s: NormalStream, current: StreamConfig): StreamPlan => {
  const conflicts: Array<FieldDiff> = []
  if (current.retention !== s.retention) {
    conflicts.push({ field: "retention", current: current.retention, wanted: s.retention })
  }
  if (current.storage !== s.storage) {
    conflicts.push({ field: "storage", current: current.storage, wanted: s.storage })
  }
  const currentSubjects = current.subjects ?? []
  const changed: Array<string> = []
  if (!sameSet(currentSubjects, s.subjects)) changed.push("subjects")
  if ((current.num_replicas ?? 1) !== s.replicas) changed.push("replicas")
  if (!sameNanos(current.max_age, nanos(s.maxAgeMs))) changed.push("maxAge")
  if ((current.max_msgs ?? -1) !== s.maxMsgs) changed.push("maxMsgs")
  if ((current.max_bytes ?? -1) !== s.maxBytes) changed.push("maxBytes")
  if ((current.max_msg_size ?? -1) !== s.maxMsgSize) changed.push("maxMsgSize")
  if (!sameNanos(current.duplicate_window, nanos(s.duplicateWindowMs))) changed.push("duplicateWindow")
  if ((current.discard ?? "old") !== s.discard) changed.push("discard")
  if (s.description !== undefined && (current.description ?? "") !== s.description) changed.push("description")
  return {
    conflicts,
    changed,
    removedSubjects: currentSubjects.filter((x) => !s.subjects.includes(x)),
    update: streamUpdatable(s)
  }
}

/** A stream field's server value, for messages. */
export const showStreamField = (field: string, c: StreamConfig): string => {
  switch (field) {
    case "subjects": return (c.subjects ?? []).join(", ")
    case "maxAge": return showNanos(c.max_age)
    case "duplicateWindow": return showNanos(c.duplicate_window, "0")
    case "replicas": return String(c.num_replicas)
    case "maxMsgs": return showLimit(c.max_msgs)
    case "maxBytes": return showLimit(c.max_bytes)
    case "maxMsgSize": return showLimit(c.max_msg_size)
    case "discard": return c.discard
    case "description": return c.description ?? ""
    default: return ""
  }
}

/** A declared stream field, for messages. */
export const showStreamSpecField = (field: string, s: NormalStream): string => {
  switch (field) {
    case "subjects": return s.subjects.join(", ")
    case "maxAge": return showMillis(s.maxAgeMs)
    case "duplicateWindow": return showMillis(s.duplicateWindowMs, "0")
    case "replicas": return String(s.replicas)
    case "maxMsgs": return showLimit(s.maxMsgs)
    case "maxBytes": return showLimit(s.maxBytes)
    case "maxMsgSize": return showLimit(s.maxMsgSize)
    case "discard": return s.discard
    case "description": return s.description ?? ""
    case "retention": return s.retention
    case "storage": return s.storage
    default: return ""
  }
}

// ---------------------------------------------------------------------------------------------
// consumers

/** A consumer declaration with every default filled in, durations in milliseconds. */
export interface NormalConsumer {
  readonly stream: string
  readonly name: string
  readonly filterSubject: string | undefined
  /** What the server will hold: with a backoff, the server sets ack_wait to backoff[0]. */
  readonly ackWaitMs: number
  readonly maxDeliver: number
  readonly maxAckPending: number
  readonly backoffMs: ReadonlyArray<number>
  readonly deliverPolicy: "all" | "new" | "last"
  readonly description: string | undefined
}

/** Fills in a consumer's defaults (see `ConsumerSpec`). */
export const normalizeConsumer = (spec: ConsumerSpec, problems: Array<Problem> = []): NormalConsumer => {
  const resource = consumerResource(spec.stream, spec.name)
  const backoffMs = (spec.backoff ?? []).map((b, i) => readDuration(problems, resource, `backoff[${i}]`, b, 0, false))
  const declaredAckWait = readDuration(problems, resource, "ackWait", spec.ackWait, 30_000, false)
  const maxDeliver = spec.maxDeliver ?? -1
  if (backoffMs.length > 0 && maxDeliver !== -1 && maxDeliver <= backoffMs.length) {
    problems.push({
      resource,
      field: "maxDeliver",
      wanted: String(maxDeliver),
      problem: `must be greater than the number of backoff steps (${backoffMs.length}), or the server rejects the consumer (10116)`,
      fix: `declare maxDeliver of at least ${backoffMs.length + 1}, or -1 for unlimited, or a shorter backoff`
    })
  }
  return {
    stream: spec.stream,
    name: spec.name,
    filterSubject: spec.filterSubject === "" || spec.filterSubject === ">" ? undefined : spec.filterSubject,
    ackWaitMs: backoffMs.length > 0 ? backoffMs[0]! : declaredAckWait,
    maxDeliver,
    maxAckPending: spec.maxAckPending ?? 1000,
    backoffMs,
    deliverPolicy: spec.deliverPolicy ?? "all",
    description: spec.description
  }
}

const consumerUpdatable = (c: NormalConsumer) => ({
  ack_wait: nanos(c.ackWaitMs),
  max_deliver: c.maxDeliver,
  max_ack_pending: c.maxAckPending,
  backoff: c.backoffMs.map((b) => nanos(b)),
  ...(c.description !== undefined ? { description: c.description } : {})
})

/** The config sent to create a durable pull consumer with explicit acks. */
export const consumerConfig = (c: NormalConsumer, features: Features): Partial<ConsumerConfig> => ({
  durable_name: c.name,
  ack_policy: "explicit",
  deliver_policy: c.deliverPolicy,
  replay_policy: "instant",
  ...(c.filterSubject !== undefined ? { filter_subject: c.filterSubject } : {}),
  ...consumerUpdatable(c),
  ...(c.backoffMs.length === 0 ? { backoff: undefined } : {}),
  ...(features.metadata ? { metadata: { ...ownerMetadata } } : {})
})

/** How a consumer on the server differs from its declaration. */
export interface ConsumerPlan {
  readonly conflicts: ReadonlyArray<FieldDiff>
  readonly changed: ReadonlyArray<string>
  readonly update: Partial<ConsumerConfig>
}

/** Compares a declared consumer with the server's config. */
export const diffConsumer = (c: NormalConsumer, current: ConsumerConfig): ConsumerPlan => {
  const conflicts: Array<FieldDiff> = []
  if (current.deliver_subject) {
    conflicts.push({ field: "kind", current: `push (delivers to ${current.deliver_subject})`, wanted: "pull" })
  }
  if (current.ack_policy !== "explicit") {
    conflicts.push({ field: "ackPolicy", current: current.ack_policy, wanted: "explicit" })
  }
  if (current.deliver_policy !== c.deliverPolicy) {
    conflicts.push({ field: "deliverPolicy", current: current.deliver_policy, wanted: c.deliverPolicy })
  }
  const currentFilter = current.filter_subject === "" || current.filter_subject === ">" ? undefined : current.filter_subject
  if (currentFilter !== c.filterSubject) {
    conflicts.push({ field: "filterSubject", current: currentFilter ?? "(none)", wanted: c.filterSubject ?? "(none)" })
  }
  const changed: Array<string> = []
  const currentBackoff = current.backoff ?? []
  if (
    currentBackoff.length !== c.backoffMs.length ||
    currentBackoff.some((b, i) => !sameNanos(b, nanos(c.backoffMs[i]!)))
  ) changed.push("backoff")
  if (!sameNanos(current.ack_wait, nanos(c.ackWaitMs))) changed.push("ackWait")
  if ((current.max_deliver ?? -1) !== c.maxDeliver) changed.push("maxDeliver")
  if ((current.max_ack_pending ?? 1000) !== c.maxAckPending) changed.push("maxAckPending")
  if (c.description !== undefined && (current.description ?? "") !== c.description) changed.push("description")
  return { conflicts, changed, update: consumerUpdatable(c) }
}

// ---------------------------------------------------------------------------------------------
// KV buckets

/** A bucket declaration with every default filled in. */
export interface NormalKv {
  readonly bucket: string
  /** 0 = keys never expire */
  readonly ttlMs: number
  readonly history: number
  readonly replicas: number
  readonly maxValueSize: number
  readonly description: string | undefined
}

/** Fills in a bucket's defaults (see `KvSpec`). */
export const normalizeKv = (spec: KvSpec, problems: Array<Problem> = []): NormalKv => ({
  bucket: spec.bucket,
  ttlMs: readDuration(problems, kvResource(spec.bucket), "ttl", spec.ttl, 0, true),
  history: spec.history ?? 1,
  replicas: spec.replicas ?? 1,
  maxValueSize: spec.maxValueSize ?? -1,
  description: spec.description
})

/** The options for `Kvm.create`. */
export const kvOptions = (k: NormalKv, features: Features): Partial<KvOptions> => ({
  history: k.history,
  replicas: k.replicas,
  maxValueSize: k.maxValueSize,
  ...(k.ttlMs > 0 ? { ttl: k.ttlMs } : {}),
  ...(k.description !== undefined ? { description: k.description } : {}),
  ...(features.metadata ? { metadata: { ...ownerMetadata } } : {})
})

/** Compares a declared bucket with the config of its stream. */
export const diffKv = (k: NormalKv, current: StreamConfig): { readonly changed: ReadonlyArray<string>; readonly update: Partial<StreamConfig> } => {
  const changed: Array<string> = []
  if (!sameNanos(current.max_age, nanos(k.ttlMs))) changed.push("ttl")
  if ((current.max_msgs_per_subject ?? 1) !== k.history) changed.push("history")
  if ((current.num_replicas ?? 1) !== k.replicas) changed.push("replicas")
  if ((current.max_msg_size ?? -1) !== k.maxValueSize) changed.push("maxValueSize")
  if (k.description !== undefined && (current.description ?? "") !== k.description) changed.push("description")
  // a ttl shorter than the duplicate window is rejected (10052): shorten the window with it
  const window = current.duplicate_window ?? nanos(defaultDuplicateWindowMs)
  return {
    changed,
    update: {
      max_age: nanos(k.ttlMs),
      max_msgs_per_subject: k.history,
      num_replicas: k.replicas,
      max_msg_size: k.maxValueSize,
      ...(k.ttlMs > 0 && millis(window) > k.ttlMs ? { duplicate_window: nanos(k.ttlMs) } : {}),
      ...(k.description !== undefined ? { description: k.description } : {})
    }
  }
}

/** A bucket field's stream value, for messages. */
export const showKvField = (field: string, c: StreamConfig): string => {
  switch (field) {
    case "ttl": return showNanos(c.max_age)
    case "history": return String(c.max_msgs_per_subject)
    case "replicas": return String(c.num_replicas)
    case "maxValueSize": return showLimit(c.max_msg_size)
    case "description": return c.description ?? ""
    default: return ""
  }
}

/** A declared bucket field, for messages. */
export const showKvSpecField = (field: string, k: NormalKv): string => {
  switch (field) {
    case "ttl": return showMillis(k.ttlMs)
    case "history": return String(k.history)
    case "replicas": return String(k.replicas)
    case "maxValueSize": return showLimit(k.maxValueSize)
    case "description": return k.description ?? ""
    default: return ""
  }
}

// ---------------------------------------------------------------------------------------------
// merging declarations

/** Two declarations of one resource that disagree. */
export interface Disagreement {
  readonly resource: string
  readonly field: string
  readonly first: string
  readonly second: string
}

const unique = <A>(xs: ReadonlyArray<A>): Array<A> => [...new Set(xs)]
const sameSet = (a: ReadonlyArray<string>, b: ReadonlyArray<string>) => {
  const sa = new Set(a)
  const sb = new Set(b)
  return sa.size === sb.size && [...sa].every((x) => sb.has(x))
}

/** The first field on which two normalised declarations differ (description only when both declare one). */
const firstDifference = <A extends object>(a: A, b: A, skip: ReadonlyArray<string>): string | undefined => {
  for (const key of Object.keys(a) as Array<keyof A & string>) {
    if (skip.includes(key)) continue
    const x = a[key]
    const y = b[key]
    if (key === "description" && (x === undefined || y === undefined)) continue
    if (JSON.stringify(x) !== JSON.stringify(y)) return key
  }
  return undefined
}

const show = (v: unknown) => typeof v === "string" ? v : JSON.stringify(v)

/**
 * Merges declarations. One stream declared twice gets the union of the subjects; other
 * disagreements, in streams, consumers or buckets, are kept for `disagreements` to report.
 */
export const mergeTopologies = (ts: ReadonlyArray<Topology>): Topology => {
  const streams: Array<StreamSpec> = []
  const consumers: Array<ConsumerSpec> = []
  const kv: Array<KvSpec> = []
  for (const t of ts) {
    for (const s of t.streams) {
      const i = streams.findIndex((x) =>
        x.name === s.name && firstDifference(normalizeStream(x), normalizeStream(s), ["subjects"]) === undefined
      )
      if (i === -1) streams.push(s)
      else {
        const prior = streams[i]!
        streams[i] = {
          ...prior,
          subjects: unique([...prior.subjects, ...s.subjects]),
          ...(prior.description === undefined && s.description !== undefined ? { description: s.description } : {})
        }
      }
    }
    for (const c of t.consumers) {
      const i = consumers.findIndex((x) =>
        x.stream === c.stream && x.name === c.name &&
        firstDifference(normalizeConsumer(x), normalizeConsumer(c), []) === undefined
      )
      if (i === -1) consumers.push(c)
      else if (consumers[i]!.description === undefined && c.description !== undefined) {
        consumers[i] = { ...consumers[i]!, description: c.description }
      }
    }
    for (const k of t.kv) {
      const i = kv.findIndex((x) => x.bucket === k.bucket && firstDifference(normalizeKv(x), normalizeKv(k), []) === undefined)
      if (i === -1) kv.push(k)
      else if (kv[i]!.description === undefined && k.description !== undefined) kv[i] = { ...kv[i]!, description: k.description }
    }
  }
  return { streams, consumers, kv }
}

/** Resources declared more than once with different settings (after `mergeTopologies`). */
export const disagreements = (t: Topology): ReadonlyArray<Disagreement> => {
  const out: Array<Disagreement> = []
  const check = <A extends object>(items: ReadonlyArray<A>, key: (a: A) => string, resource: (a: A) => string, skip: ReadonlyArray<string>) => {
    const seen = new Map<string, A>()
    for (const item of items) {
      const prior = seen.get(key(item))
      if (prior === undefined) {
        seen.set(key(item), item)
        continue
      }
      const field = firstDifference(prior, item, skip) ?? "settings"
      // durations are held in milliseconds under a `…Ms` name: show them as durations
      const value = (a: A) => {
        const v = (a as Record<string, unknown>)[field]
        if (!field.endsWith("Ms")) return show(v)
        return Array.isArray(v) ? v.map((x) => showMillis(x, "0")).join(", ") : showMillis(v as number, "0")
      }
      out.push({ resource: resource(item), field: field.replace(/Ms$/, ""), first: value(prior), second: value(item) })
    }
  }
  check(t.streams.map((s) => normalizeStream(s)), (s) => s.name, (s) => streamResource(s.name), ["subjects"])
  check(t.consumers.map((c) => normalizeConsumer(c)), (c) => `${c.stream}\u0000${c.name}`, (c) => consumerResource(c.stream, c.name), [])
  check(t.kv.map((k) => normalizeKv(k)), (k) => k.bucket, (k) => kvResource(k.bucket), [])
  return out
}

// ---------------------------------------------------------------------------------------------
// subjects

/** Whether a subject pattern (with `*` and `>`) matches a concrete subject. */
export const subjectMatches = (pattern: string, subject: string): boolean => {
  const p = pattern.split(".")
  const s = subject.split(".")
  for (let i = 0; i < p.length; i++) {
    const t = p[i]!
    if (t === ">") return s.length > i
    if (i >= s.length) return false
    if (t !== "*" && t !== s[i]) return false
  }
  return p.length === s.length
}

/**
 * Messages stored under subjects the stream would stop listing: the per-subject counts of the
 * removed pattern, less those a kept subject still covers.
 */
export const strandedCount = (
  perSubject: Readonly<Record<string, number>>,
  kept: ReadonlyArray<string>
): number =>
  Object.entries(perSubject)
    .filter(([subject]) => !kept.some((k) => subjectMatches(k, subject)))
    .reduce((n, [, count]) => n + count, 0)
