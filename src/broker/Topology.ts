/**
 * Streams, consumers and KV buckets declared as data and applied idempotently at start-up.
 *
 * `apply` reads what the server has, compares it with the declaration field by field (in the
 * declaration's own words: `maxAge`, `ackWait`, `ttl`), creates what is missing and updates in
 * place what the server can change. It refuses with `TopologyConflict`, and never does, whatever
 * would delete a stream, a consumer, a bucket or a message:
 * - a field fixed at creation: a stream's `retention` and `storage`; a consumer's filter, deliver
 *   policy, ack policy and kind (pull);
 * - dropping a subject under which messages are stored (they would be stranded);
 * - lowering `maxBytes` or `maxMsgs` below what the stream or bucket holds (the server would
 *   delete the oldest messages to fit);
 * - bounding by `maxBytes` a stream that refuses when full (`discard: "new"`) on a server before
 *   2.10.5, which can delete the oldest message anyway: the bound is left out, with a warning.
 *
 * Two processes applying the same topology at once both succeed: creating what another process
 * just created is answered by re-reading it and comparing.
 * @since 0.1.0
 */
import { type ConsumerConfig, JetStreamApiError, type StreamConfig, type StreamInfo } from "@nats-io/jetstream"
import { Data, Duration, Effect, Option } from "effect"
import { BrokerError, retryTransient } from "./BrokerError.ts"
import { Nats } from "./Nats.ts"
import { matchesFilter } from "./Subjects.ts"

type NatsService = Nats["Service"]

/** A JetStream stream msgsys needs. @category models @since 0.1.0 */
export interface StreamSpec {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  readonly retention: "limits" | "workqueue" | "interest"
  /** Default `"file"`. */
  readonly storage?: "file" | "memory"
  /** Default: the connection's `replicas` (`MSGSYS_NATS_REPLICAS`, 1). */
  readonly replicas?: number
  /** Default unlimited. */
  readonly maxAge?: Duration.Input
  /** Default unlimited. */
  readonly maxMsgs?: number
  /** Default unlimited. */
  readonly maxBytes?: number
  /** Default unlimited. */
  readonly maxMsgSize?: number
  /** Default 2 minutes, or `maxAge` when that is shorter. */
  readonly duplicateWindow?: Duration.Input
  /** Default `"old"`; `"new"` makes a full stream refuse messages instead of dropping its oldest. */
  readonly discard?: "old" | "new"
  /** Left as the server has it when not given. */
  readonly description?: string
}

/** A durable pull consumer with explicit acks. @category models @since 0.1.0 */
export interface ConsumerSpec {
  readonly stream: string
  /** The durable name. */
  readonly name: string
  /** Default: every subject of the stream. */
  readonly filterSubject?: string
  /** Default 30 seconds; with a `backoff`, the server uses its first step instead. */
  readonly ackWait?: Duration.Input
  /** Default -1 (unlimited). At least the number of backoff steps (nats-server 2.9: more than). */
  readonly maxDeliver?: number
  /** Default 1000. */
  readonly maxAckPending?: number
  /** Redelivery delays after an ack timeout; default none. */
  readonly backoff?: ReadonlyArray<Duration.Input>
  /** Default `"all"`. */
  readonly deliverPolicy?: "all" | "new" | "last"
  /**
   * Where the consumer starts, applied only when it is created (an event group's first read):
   * overrides `deliverPolicy` then, and is not compared with an existing consumer afterwards.
   */
  readonly start?:
    | { readonly policy: "all" | "new" }
    | { readonly policy: "by_start_time"; readonly time: Date }
    | { readonly policy: "by_start_sequence"; readonly sequence: number }
  /** Left as the server has it when not given. */
  readonly description?: string
}

/** A KV bucket. When it holds `maxBytes`, writes of new keys fail. @category models @since 0.1.0 */
export interface KvSpec {
  readonly bucket: string
  /** How long a key lives; default for ever. */
  readonly ttl?: Duration.Input
  /** Values kept per key; default 1. */
  readonly history?: number
  /** Default: the connection's `replicas` (`MSGSYS_NATS_REPLICAS`, 1). */
  readonly replicas?: number
  /** Default unlimited. */
  readonly maxValueSize?: number
  /** Default unlimited. */
  readonly maxBytes?: number
  /** Left as the server has it when not given. */
  readonly description?: string
}

/** @category models @since 0.1.0 */
export interface Topology {
  readonly streams: ReadonlyArray<StreamSpec>
  readonly consumers: ReadonlyArray<ConsumerSpec>
  readonly kv: ReadonlyArray<KvSpec>
}

/** What `apply` did to one resource. @category models @since 0.1.0 */
export type Change = {
  /** `"stream MSGSYS_TASKS_etl"`, `"consumer MSGSYS_TASKS_etl/etl-normal"`, `"kv bucket msgsys_results"`. */
  readonly resource: string
  readonly action: "created" | "updated" | "unchanged"
  /** The declared fields that were updated. */
  readonly fields?: ReadonlyArray<string>
}

/**
 * An existing resource differs from its declaration in a way msgsys will not fix by itself.
 * `kind` says how: `destructive` (the default: applying it would delete the resource or some of
 * its messages), `refused` (the server rejected the declaration; `current` holds its reason) or
 * `declared-twice` (two declarations disagree; `current` and `wanted` are the two values).
 * @category errors @since 0.1.0
 */
export class TopologyConflict extends Data.TaggedError("TopologyConflict")<{
  readonly resource: string
  readonly field: string
  readonly current: string
  readonly wanted: string
  readonly fix: string
  readonly kind?: "destructive" | "refused" | "declared-twice"
  /** What applying the declaration would take; default: deleting the resource. */
  readonly consequence?: string
}> {
  override get message() {
    const q = JSON.stringify
    switch (this.kind) {
      case "refused":
        return `${this.resource}: the server refused ${this.field} ${q(this.wanted)}: ${this.current}. Fix: ${this.fix}`
      case "declared-twice":
        return `${this.resource} is declared twice, with ${this.field} ${q(this.current)} and ${q(this.wanted)}, ` +
          `and msgsys cannot tell which to apply. Fix: ${this.fix}`
      default:
        return `${this.resource} exists with ${this.field} ${q(this.current)} but msgsys declares ${q(this.wanted)}: ` +
          `${this.consequence ?? `this would need deleting ${holds[this.resource.split(" ")[0]!] ?? "it"}`}, ` +
          `which msgsys never does. Fix: ${this.fix}`
    }
  }
}

const holds: Readonly<Record<string, string>> = {
  stream: "the stream and its messages",
  consumer: "the consumer and its delivery state",
  kv: "the bucket and its values"
}

/** A topology with nothing in it. @category constructors @since 0.1.0 */
export const empty: Topology = { streams: [], consumers: [], kv: [] }

/**
 * All the declarations of `ts`. A resource declared more than once is applied once; `apply`
 * fails with a `declared-twice` `TopologyConflict` when its declarations disagree.
 * @category combinators @since 0.1.0
 */
export const merge = (...ts: Array<Topology>): Topology => ({
  streams: ts.flatMap((t) => t.streams),
  consumers: ts.flatMap((t) => t.consumers),
  kv: ts.flatMap((t) => t.kv)
})

// ---------------------------------------------------------------------------------------------
// one table per kind of resource: for each declared field, its JetStream key, the value sent,
// and the value shown in messages and compared with what the server has

type View = Readonly<Record<string, string | undefined>>

/** Declared field -> [JetStream key, value sent (`undefined`: none), value shown (`undefined`: not compared)]. */
type Fields<S, C> = Readonly<Record<string, readonly [keyof C & string, (spec: S) => unknown, (value: never) => string | undefined]>>

const configOf = <S, C>(fields: Fields<S, C>, spec: S) =>
  Object.fromEntries(Object.values(fields).map(([key, send]) => [key, send(spec)]).filter(([, v]) => v !== undefined)) as Partial<C>

const viewOf = <S, C>(fields: Fields<S, C>, config: Partial<C>): View =>
  Object.fromEntries(Object.entries(fields).map(([name, [key, , show]]) => [name, show(config[key] as never)]))

/** Integer nanoseconds, as JetStream wants durations (an infinite one is 0: unlimited). */
const nanos = (input: Duration.Input | undefined, fallback = 0) => {
  if (input === undefined) return fallback
  const d = Duration.fromInputUnsafe(input)
  return Duration.isFinite(d) ? Math.round(Duration.toMillis(d) * 1e6) : 0
}
/** Server durations compare at millisecond precision: large nanosecond counts lose digits in JSON. */
const showNanos = (ns: number | undefined) => {
  const ms = Math.round((ns ?? 0) / 1e6)
  return ms > 0 ? Duration.format(Duration.millis(ms)) : "unlimited"
}
const showLimit = (n: number | undefined) => n === undefined || n < 0 ? "unlimited" : String(n)
const showCount = (fallback: number) => (n: number | undefined) => String(n ?? fallback)
const same = (v: string | undefined) => v
const hidden = () => undefined

const streamFields: Fields<StreamSpec, StreamConfig> = {
  retention: ["retention", (s) => s.retention, same],
  storage: ["storage", (s) => s.storage ?? "file", same],
  subjects: ["subjects", (s) => [...new Set(s.subjects)], (v: Array<string> | undefined) => [...(v ?? [])].sort().join(", ")],
  replicas: ["num_replicas", (s) => s.replicas ?? 1, showCount(1)],
  maxAge: ["max_age", (s) => nanos(s.maxAge), showNanos],
  maxMsgs: ["max_msgs", (s) => s.maxMsgs ?? -1, showLimit],
  maxBytes: ["max_bytes", (s) => s.maxBytes ?? -1, showLimit],
  maxMsgSize: ["max_msg_size", (s) => s.maxMsgSize ?? -1, showLimit],
  // the server rejects a window longer than max_age (10052), and shortens its own default the same way
  duplicateWindow: ["duplicate_window", (s) => nanos(s.duplicateWindow, Math.min(nanos(s.maxAge) || 120e9, 120e9)), showNanos],
  discard: ["discard", (s) => s.discard ?? "old", same],
  description: ["description", (s) => s.description, same]
}

const filterOf = (subject: string | undefined) => subject === "" || subject === ">" ? undefined : subject

const consumerFields: Fields<ConsumerSpec, ConsumerConfig> = {
  name: ["durable_name", (c) => c.name, hidden],
  kind: ["deliver_subject", hidden, (v: string | undefined) => v ? `push (delivers to ${v})` : "pull"],
  ackPolicy: ["ack_policy", () => "explicit", same],
  replayPolicy: ["replay_policy", () => "instant", hidden],
  deliverPolicy: ["deliver_policy", (c) => c.start?.policy ?? c.deliverPolicy ?? "all", same],
  // a chosen start is never compared: it applies at creation only, and the consumer has moved on since
  startTime: ["opt_start_time", (c) => c.start?.policy === "by_start_time" ? c.start.time.toISOString() : undefined, hidden],
  startSequence: ["opt_start_seq", (c) => c.start?.policy === "by_start_sequence" ? c.start.sequence : undefined, hidden],
  filterSubject: ["filter_subject", (c) => filterOf(c.filterSubject), (v: string | undefined) => filterOf(v) ?? "(none)"],
  backoff: [
    "backoff",
    (c) => c.backoff?.length ? c.backoff.map((b) => nanos(b)) : undefined,
    (v: Array<number> | undefined) => (v ?? []).map(showNanos).join(", ") || "none"
  ],
  // with a backoff, the server sets ack_wait to its first step
  ackWait: ["ack_wait", (c) => nanos(c.backoff?.[0] ?? c.ackWait ?? "30 seconds"), showNanos],
  maxDeliver: ["max_deliver", (c) => c.maxDeliver ?? -1, showLimit],
  maxAckPending: ["max_ack_pending", (c) => c.maxAckPending ?? 1000, showCount(1000)],
  description: ["description", (c) => c.description, same]
}

/** The bucket's settings as fields of its stream `KV_<bucket>`. */
const kvFields: Fields<KvSpec, StreamConfig> = {
  ttl: ["max_age", (k) => nanos(k.ttl), showNanos],
  history: ["max_msgs_per_subject", (k) => k.history ?? 1, String],
  replicas: ["num_replicas", (k) => k.replicas ?? 1, showCount(1)],
  maxValueSize: ["max_msg_size", (k) => k.maxValueSize ?? -1, showLimit],
  maxBytes: ["max_bytes", (k) => k.maxBytes ?? -1, showLimit],
  description: ["description", (k) => k.description, same]
}

// ---------------------------------------------------------------------------------------------
// nats.js calls, with their errors mapped once

const Codes = {
  consumerNotFound: 10014,
  streamNameInUse: 10058,
  streamNotFound: 10059,
  subjectsOverlap: 10065,
  workqueueUnfiltered: 10099,
  workqueueNotUnique: 10100,
  consumerExists: 10148
} as const

type Failure = { readonly operation: string; readonly cause: unknown }

// a JetStream API call nobody answered or that timed out (a cluster forming or changing leaders)
// is made again: each is a create-or-compare, or an update to the same config
const call = <A>(operation: string, f: () => Promise<A>) =>
  retryTransient(Effect.tryPromise({ try: f, catch: (cause): Failure => ({ operation, cause }) }))

const apiOf = (f: Failure) =>
  f.cause instanceof JetStreamApiError
    ? { code: f.cause.code, description: f.cause.apiError().description ?? f.cause.message }
    : undefined

const toBrokerError = (f: Failure) =>
  new BrokerError({ operation: f.operation, reason: apiOf(f)?.description ?? String((f.cause as Error)?.message ?? f.cause), cause: f.cause })

/** `None` when the server answers `notFoundCode`. */
const readOptional = <A>(operation: string, notFoundCode: number, f: () => Promise<A>) =>
  call(operation, f).pipe(
    Effect.map(Option.some),
    Effect.catch((e) => apiOf(e)?.code === notFoundCode ? Effect.succeed(Option.none<A>()) : Effect.fail(toBrokerError(e)))
  )

/**
 * nats-server 2.9.10 answers a create racing another create of the same stream with 10058 ("name
 * already in use") or, in a narrow window, 10065 ("subjects overlap"): re-read before believing it.
 */
const lostRace = (f: Failure) => apiOf(f)?.code === Codes.streamNameInUse || apiOf(f)?.code === Codes.subjectsOverlap

/** A create the server refused, with its reason. */
const refusedCreate = (resource: string, wanted: View, f: Failure, fix = "declare settings the server accepts") => {
  const api = apiOf(f)
  if (api === undefined) return toBrokerError(f)
  const declared = Object.entries(wanted).flatMap(([k, v]) => v === undefined ? [] : [`${k}: ${v}`]).join("; ")
  return new TopologyConflict({ resource, field: "settings", current: api.description, wanted: declared, kind: "refused", fix })
}

const overlapFix = "another stream already stores some of these subjects: find it with `nats stream ls` and " +
  "`nats stream info NAME`, then remove the subjects from it, or change MSGSYS_STREAM_PREFIX"

const owner = (nats: NatsService) => nats.atLeast("2.10") ? { metadata: { managed_by: "msgsys" } } : {}

// ---------------------------------------------------------------------------------------------
// comparing and updating, the same for every kind of resource

interface Target {
  readonly resource: string
  readonly wanted: View
  /** Fields that cannot change without deleting the resource. */
  readonly fixed: ReadonlyArray<string>
  /** How to get past a conflict on a fixed field. */
  readonly fix: string
  /** How to change the resource by hand. */
  readonly byHand: string
}

const unchanged = (resource: string): Change => ({ resource, action: "unchanged" })

/** Compares, refuses what would delete anything, and runs `update` when an updatable field differs. */
const reconcile = (
  t: Target,
  current: View,
  update: () => Promise<unknown>,
  guard: (changed: ReadonlyArray<string>) => Effect.Effect<void, TopologyConflict | BrokerError> = () => Effect.void
): Effect.Effect<Change, TopologyConflict | BrokerError> =>
  Effect.gen(function*() {
    const changed = Object.keys(t.wanted).filter((f) => t.wanted[f] !== undefined && t.wanted[f] !== current[f])
    const fixed = changed.find((f) => t.fixed.includes(f))
    if (fixed !== undefined) {
      return yield* new TopologyConflict({ resource: t.resource, field: fixed, current: current[fixed] ?? "", wanted: t.wanted[fixed]!, fix: t.fix })
    }
    if (changed.length === 0) return unchanged(t.resource)
    yield* guard(changed)
    const listed = (view: View) => changed.map((f) => `${f}: ${view[f]}`).join("; ")
    yield* call(`update ${t.resource}`, update).pipe(Effect.mapError((f) => {
      const api = apiOf(f)
      return api === undefined ? toBrokerError(f) : new TopologyConflict({
        resource: t.resource,
        field: changed.join(", "),
        current: api.description,
        wanted: listed(t.wanted),
        kind: "refused",
        fix: `declare what the server accepts (it has ${listed(current)}), or ${t.byHand}`
      })
    }))
    yield* Effect.logInfo(`updated ${t.resource}: ${changed.join(", ")}`)
    return { resource: t.resource, action: "updated", fields: changed } satisfies Change
  })

/** Lowering a limit below what a stream holds makes the server delete its oldest messages. */
const limitsHold = (t: Target, info: StreamInfo, changed: ReadonlyArray<string>, fix: string) =>
  Effect.forEach([["maxBytes", info.state.bytes, "bytes"], ["maxMsgs", info.state.messages, "messages"]] as const, ([field, held, unit]) => {
    const limit = Number(t.wanted[field])
    return changed.includes(field) && limit < held
      ? Effect.fail(new TopologyConflict({
        resource: t.resource,
        field,
        current: showLimit(field === "maxBytes" ? info.config.max_bytes : info.config.max_msgs),
        wanted: String(limit),
        consequence: `it holds ${held} ${unit}, so the server would delete the oldest messages to fit`,
        fix
      }))
      : Effect.void
  }, { discard: true })

// ---------------------------------------------------------------------------------------------
// streams

/**
 * Before 2.10.5 a stream that refuses new messages when full (`discard: "new"`) can still delete
 * its oldest message to fit `maxBytes`: the server admits a message by its payload and headers,
 * then trims the store by its full size (nats-server#4771). Such a stream keeps its messages and
 * goes without the byte bound there.
 */
const unsafeByteBound = (nats: NatsService, spec: StreamSpec) =>
  spec.discard === "new" && spec.maxBytes !== undefined && !nats.atLeast("2.10.5")

const applyStream = (nats: NatsService, spec: StreamSpec) => {
  const streams = nats.manager.streams
  const unbounded = unsafeByteBound(nats, spec)
  const config = { name: spec.name, ...configOf(streamFields, unbounded ? { ...spec, maxBytes: undefined } : spec), ...owner(nats) }
  const kept: ReadonlyArray<string> = config.subjects ?? []
  const target: Target = {
    resource: `stream ${spec.name}`,
    wanted: viewOf(streamFields, config),
    fixed: ["retention", "storage"],
    fix: "rename the stream prefix (MSGSYS_STREAM_PREFIX) so msgsys creates new streams, or move the messages " +
      `out and delete the stream with \`nats stream rm ${spec.name}\``,
    byHand: `change the stream by hand with \`nats stream edit ${spec.name}\``
  }

  // a subject may go only while no message is stored under it (and not under a kept subject)
  const nothingStranded = (info: StreamInfo) =>
    Effect.forEach((info.config.subjects ?? []).filter((s) => !kept.includes(s)), (subject) =>
      call(`count messages of ${target.resource} under ${subject}`, () => streams.info(spec.name, { subjects_filter: subject })).pipe(
        Effect.mapError(toBrokerError),
        Effect.flatMap((filtered) => {
          const stranded = Object.entries(filtered.state.subjects ?? {})
            .filter(([s]) => !kept.some((k) => matchesFilter(s, k)))
            .reduce((n, [, count]) => n + count, 0)
          return stranded === 0 ? Effect.void : Effect.fail(new TopologyConflict({
            resource: target.resource,
            field: "subjects",
            current: viewOf(streamFields, info.config).subjects!,
            wanted: target.wanted.subjects!,
            consequence: `this would strand the ${stranded} message${stranded === 1 ? "" : "s"} stored under ${subject}`,
            fix: `keep ${subject} in the declared subjects until its messages are consumed, or remove them with ` +
              `\`nats stream purge ${spec.name} --subject ${subject}\``
          }))
        })
      ), { discard: true })

  const compare = (info: StreamInfo) =>
    reconcile(target, viewOf(streamFields, info.config), () => streams.update(spec.name, config), (changed) =>
      Effect.andThen(
        info.state.messages > 0 && changed.includes("subjects") ? nothingStranded(info) : Effect.void,
        limitsHold(target, info, changed, `raise the limit, or remove messages first (\`nats stream purge ${spec.name}\`)`)
      ))

  const read = readOptional(`read ${target.resource}`, Codes.streamNotFound, () => streams.info(spec.name))
  const create = call(`create ${target.resource}`, () => streams.add(config)).pipe(
    Effect.tap(() => Effect.logInfo(`created ${target.resource}`)),
    Effect.as<Change>({ resource: target.resource, action: "created" }),
    // another process may have created it first: compare with what it made
    Effect.catch((f) =>
      !lostRace(f) ? Effect.fail(refusedCreate(target.resource, target.wanted, f)) : read.pipe(Effect.flatMap(Option.match({
        onNone: () =>
          Effect.fail(apiOf(f)?.code === Codes.subjectsOverlap
            ? refusedCreate(target.resource, { subjects: target.wanted.subjects }, f, overlapFix)
            : toBrokerError(f)),
        onSome: compare
      })))
    )
  )
  const warn = Effect.logWarning(
    `${target.resource}: maxBytes ${spec.maxBytes} is not applied on nats-server ${nats.server.version}: before 2.10.5 ` +
      "a full stream that refuses new messages can still delete its oldest one (nats-server#4771), and this stream " +
      "must never lose one; upgrade nats-server to 2.10.5 or later to bound it"
  )
  return Effect.andThen(unbounded ? warn : Effect.void, read.pipe(Effect.flatMap(Option.match({ onNone: () => create, onSome: compare }))))
}

// ---------------------------------------------------------------------------------------------
// consumers

const applyConsumer = (nats: NatsService, spec: ConsumerSpec) => {
  const consumers = nats.manager.consumers
  const config = { ...configOf(consumerFields, spec), ...owner(nats) } as ConsumerConfig
  const manual = `delete the consumer with \`nats consumer rm ${spec.stream} ${spec.name}\` (its delivery state ` +
    "is lost; the stream keeps its messages)"
  const target: Target = {
    resource: `consumer ${spec.stream}/${spec.name}`,
    wanted: viewOf(consumerFields, config),
    // a chosen start applies at creation only: the consumer has moved on since
    fixed: spec.start === undefined ? ["kind", "ackPolicy", "deliverPolicy", "filterSubject"] : ["kind", "ackPolicy", "filterSubject"],
    fix: `declare the new settings under a new consumer name, or ${manual}`,
    byHand: manual
  }
  const { ack_wait, max_deliver, max_ack_pending, backoff = [] } = config
  const updatable = { ack_wait, max_deliver, max_ack_pending, backoff, ...(spec.description ? { description: spec.description } : {}) }
  const compare = (current: ConsumerConfig) =>
    reconcile(target, viewOf(consumerFields, current), () => consumers.update(spec.stream, spec.name, updatable))

  const read = readOptional(`read ${target.resource}`, Codes.consumerNotFound, () => consumers.info(spec.stream, spec.name))
  const create = call(`create ${target.resource}`, () => consumers.add(spec.stream, config)).pipe(
    Effect.tap(() => Effect.logInfo(`created ${target.resource}`)),
    Effect.as<Change>({ resource: target.resource, action: "created" }),
    Effect.catch((f): Effect.Effect<Change, TopologyConflict | BrokerError> => {
      switch (apiOf(f)?.code) {
        // 2.10+ answers a racing create with "consumer already exists": compare with what won
        case Codes.consumerExists:
          return read.pipe(Effect.flatMap(Option.match({ onNone: () => Effect.fail(toBrokerError(f)), onSome: (i) => compare(i.config) })))
        case Codes.streamNotFound:
          return Effect.fail(new BrokerError({
            operation: f.operation,
            reason: `stream ${spec.stream} does not exist: declare it in the same topology (streams are applied first)`,
            cause: f.cause
          }))
        case Codes.workqueueUnfiltered:
        case Codes.workqueueNotUnique:
          return Effect.fail(refusedCreate(target.resource, { filterSubject: target.wanted.filterSubject }, f,
            `each consumer of a work-queue stream needs its own filter, and no two may overlap: list the consumers ` +
              `with \`nats consumer ls ${spec.stream}\` and remove one msgsys does not declare with ` +
              `\`nats consumer rm ${spec.stream} NAME\``))
        default:
          return Effect.fail(refusedCreate(target.resource, target.wanted, f))
      }
    })
  )
  return read.pipe(Effect.flatMap(Option.match({ onNone: () => create, onSome: (i) => compare(i.config) })))
}

// ---------------------------------------------------------------------------------------------
// KV buckets

const applyKv = (nats: NatsService, spec: KvSpec) => {
  const stream = `KV_${spec.bucket}`
  const config = configOf(kvFields, spec)
  const ttl = config.max_age ?? 0
  const target: Target = {
    resource: `kv bucket ${spec.bucket}`,
    wanted: viewOf(kvFields, config),
    fixed: [],
    fix: "",
    byHand: `change the bucket by hand with \`nats kv edit ${spec.bucket}\``
  }
  const compare = (info: StreamInfo) =>
    reconcile(target, viewOf(kvFields, info.config), () =>
      nats.manager.streams.update(stream, {
        ...config,
        // a ttl shorter than the duplicate window is rejected (10052): shorten the window with it
        ...(ttl > 0 && (info.config.duplicate_window ?? 120e9) > ttl
          ? { duplicate_window: ttl }
          : {})
      }), (changed) => limitsHold(target, info, changed, `raise the limit, or delete keys first (\`nats kv purge ${spec.bucket} KEY\`)`))

  const read = readOptional(`read ${target.resource}`, Codes.streamNotFound, () => nats.manager.streams.info(stream))
  // `Kvm.create` opens a bucket that exists already (another process won a race) without looking at
  // its settings, so what it left is compared like any existing bucket
  const create = Effect.gen(function*() {
    const options = {
      history: config.max_msgs_per_subject,
      replicas: config.num_replicas,
      maxValueSize: config.max_msg_size,
      max_bytes: config.max_bytes,
      ...(ttl > 0 ? { ttl: ttl / 1e6 } : {}),
      ...(spec.description !== undefined ? { description: spec.description } : {}),
      ...owner(nats)
    }
    const lost = yield* call(`create ${target.resource}`, () => nats.kvm.create(spec.bucket, options)).pipe(
      Effect.as(undefined),
      Effect.catch((f) => lostRace(f) ? Effect.succeed(f) : Effect.fail(refusedCreate(target.resource, target.wanted, f)))
    )
    const info = yield* read
    if (Option.isNone(info)) {
      return yield* lost === undefined
        ? new BrokerError({ operation: `create ${target.resource}`, reason: `${stream} is missing right after creating it` })
        : refusedCreate(target.resource, { subjects: `$KV.${spec.bucket}.>` }, lost, overlapFix)
    }
    const change = yield* compare(info.value)
    if (lost !== undefined || change.action !== "unchanged") return change
    yield* Effect.logInfo(`created ${target.resource}`)
    return { resource: target.resource, action: "created" } satisfies Change
  })
  return read.pipe(Effect.flatMap(Option.match({ onNone: () => create, onSome: compare })))
}

// ---------------------------------------------------------------------------------------------
// apply

/** Each resource once, or the first that is declared twice with different settings. */
const distinct = <A>(specs: ReadonlyArray<A>, resource: (a: A) => string, view: (a: A) => View) => {
  const seen = new Map<string, { readonly spec: A; readonly view: View }>()
  for (const spec of specs) {
    const prior = seen.get(resource(spec))
    const v = view(spec)
    const field = prior && Object.keys(v).find((f) => v[f] !== prior.view[f])
    if (field !== undefined) {
      return Effect.fail(new TopologyConflict({
        resource: resource(spec),
        field,
        current: prior!.view[field] ?? "(none)",
        wanted: v[field] ?? "(none)",
        kind: "declared-twice",
        fix: "make the declarations agree, or give one of them another name"
      }))
    }
    if (prior === undefined) seen.set(resource(spec), { spec, view: v })
  }
  return Effect.succeed([...seen.values()].map((s) => s.spec))
}

/** Resources of one phase checked at once. */
const applyConcurrency = 8

/**
 * Makes the server hold `topology`: creates what is missing, updates what differs in place, and
 * fails with `TopologyConflict` on what would delete anything. Streams first, then consumers,
 * then buckets; applying the same topology again reports every resource `unchanged`.
 * @category apply @since 0.1.0
 */
export const apply: (topology: Topology) => Effect.Effect<ReadonlyArray<Change>, TopologyConflict | BrokerError, Nats> =
  Effect.fn("Topology.apply")(function*(topology: Topology) {
    const nats = yield* Nats
    // what does not say how many copies gets the connection's (MSGSYS_NATS_REPLICAS)
    const copies = <A extends { readonly replicas?: number }>(spec: A): A => spec.replicas === undefined ? { ...spec, replicas: nats.replicas } : spec
    // every declaration is checked before anything is created
    const streams = yield* distinct(topology.streams.map(copies), (s) => `stream ${s.name}`, (s) => viewOf(streamFields, configOf(streamFields, s)))
    const consumers = yield* distinct(topology.consumers, (c) => `consumer ${c.stream}/${c.name}`, (c) => viewOf(consumerFields, configOf(consumerFields, c)))
    const buckets = yield* distinct(topology.kv.map(copies), (k) => `kv bucket ${k.bucket}`, (k) => viewOf(kvFields, configOf(kvFields, k)))
    // streams, then consumers (a stream must exist before its consumers), then buckets; within a
    // phase the resources are independent, and asked about at once: a start checks some twenty of
    // them, one round trip each. The changes keep the declared order.
    const each = { concurrency: applyConcurrency }
    return [
      ...yield* Effect.forEach(streams, (s) => applyStream(nats, s), each),
      ...yield* Effect.forEach(consumers, (c) => applyConsumer(nats, c), each),
      ...yield* Effect.forEach(buckets, (k) => applyKv(nats, k), each)
    ]
  })
