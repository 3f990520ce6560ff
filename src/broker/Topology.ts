/**
 * Streams, consumers and KV buckets declared as data and applied idempotently at start-up.
 *
 * `apply` creates what is missing, updates in place what differs in a field the server can change,
 * and refuses with `TopologyConflict` whatever would need deleting a stream, a consumer or a bucket:
 * msgsys never deletes one, because that loses messages or delivery state.
 *
 * - Streams: `retention` and `storage` never change. A subject may be dropped from a stream only
 *   while no message is stored under it (counted per subject with `subjects_filter`): otherwise
 *   those messages would be stranded.
 * - Consumers (durable, pull, explicit ack): `deliverPolicy`, the ack policy and `filterSubject`
 *   never change. nats-server 2.9.10 would accept a new filter, but the consumer's delivery state
 *   and the messages under the old filter would no longer line up, so msgsys asks for a new name.
 * - Buckets: `ttl`, `history`, `maxValueSize`, `replicas` and `description` update the bucket's
 *   stream (`KV_<bucket>`) in place.
 *
 * Two processes applying the same topology at once both succeed: creating what another process
 * just created is answered by re-reading it and comparing.
 * @since 0.1.0
 */
import { type ConsumerInfo, JetStreamApiError, type StreamConfig, type StreamInfo } from "@nats-io/jetstream"
import { Data, Duration, Effect, Option } from "effect"
import { BrokerError } from "./BrokerError.ts"
import * as Diff from "./internal/topologyDiff.ts"
import { Nats } from "./Nats.ts"

type NatsService = Nats["Service"]

/** A JetStream stream msgsys needs. @category models @since 0.1.0 */
export interface StreamSpec {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  readonly retention: "limits" | "workqueue" | "interest"
  /** Default `"file"`. */
  readonly storage?: "file" | "memory"
  /** Default 1. */
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
  /** Default `"old"`. */
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
  /** Default -1 (unlimited). Must exceed the number of backoff steps. */
  readonly maxDeliver?: number
  /** Default 1000. */
  readonly maxAckPending?: number
  /** Redelivery delays after an ack timeout; default none. */
  readonly backoff?: ReadonlyArray<Duration.Input>
  /** Default `"all"`. */
  readonly deliverPolicy?: "all" | "new" | "last"
  /** Left as the server has it when not given. */
  readonly description?: string
}

/** A KV bucket. @category models @since 0.1.0 */
export interface KvSpec {
  readonly bucket: string
  /** How long a key lives; default for ever. */
  readonly ttl?: Duration.Input
  /** Values kept per key; default 1. */
  readonly history?: number
  /** Default 1. */
  readonly replicas?: number
  /** Default unlimited. */
  readonly maxValueSize?: number
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
 * `kind` says how: `destructive` (the default: only deleting the resource would do), `refused`
 * (the server rejected an update; `current` holds its reason), `declared-twice` (two declarations
 * disagree; `current` and `wanted` are the two values) or `invalid` (the declaration itself is bad).
 * @category errors @since 0.1.0
 */
export class TopologyConflict extends Data.TaggedError("TopologyConflict")<{
  readonly resource: string
  readonly field: string
  readonly current: string
  readonly wanted: string
  readonly fix: string
  readonly kind?: "destructive" | "refused" | "declared-twice" | "invalid"
  /** What applying the declaration would take; default: deleting the resource. */
  readonly consequence?: string
}> {
  override get message() {
    const q = JSON.stringify
    switch (this.kind) {
      case "refused":
        return `${this.resource}: the server refused ${this.field} ${q(this.wanted)}: ${this.current}. ` +
          `Fix: ${this.fix}`
      case "declared-twice":
        return `${this.resource} is declared twice, with ${this.field} ${q(this.current)} and ${q(this.wanted)}, ` +
          `and msgsys cannot tell which to apply. Fix: ${this.fix}`
      case "invalid":
        return `${this.resource} declares ${this.field} ${q(this.wanted)}, which ${this.current}. Fix: ${this.fix}`
      default:
        return `${this.resource} exists with ${this.field} ${q(this.current)} but msgsys declares ${q(this.wanted)}: ` +
          `${this.consequence ?? defaultConsequence(this.resource)}, which msgsys never does. Fix: ${this.fix}`
    }
  }
}

const defaultConsequence = (resource: string) =>
  resource.startsWith("consumer ")
    ? "this would need deleting the consumer and its delivery state"
    : resource.startsWith("kv ")
    ? "this would need deleting the bucket and its values"
    : "this would need deleting the stream and its messages"

/** A topology with nothing in it. @category constructors @since 0.1.0 */
export const empty: Topology = { streams: [], consumers: [], kv: [] }

/**
 * Combines topologies. Two declarations of one stream that differ only in subjects become one with
 * the union of the subjects; identical declarations become one; declarations of one resource that
 * disagree otherwise are kept, and `apply` fails on them with a `declared-twice` `TopologyConflict`.
 * @category combinators @since 0.1.0
 */
export const merge = (...ts: Array<Topology>): Topology => Diff.mergeTopologies(ts)

/**
 * A duration as JetStream config wants it: integer nanoseconds (infinite → 0, "unlimited").
 * @category utils @since 0.1.0
 */
export const durationToNanos: (input: Duration.Input) => number = Diff.durationToNanos

/** JetStream nanoseconds (`max_age`, `ack_wait`) as a Duration. @category utils @since 0.1.0 */
export const nanosToDuration: (nanos: number) => Duration.Duration = Diff.nanosToDuration

// ---------------------------------------------------------------------------------------------
// nats.js calls, with their errors mapped once

interface ApiFailure {
  readonly code: number
  readonly description: string
}

const apiFailure = (e: unknown): ApiFailure | undefined =>
  e instanceof JetStreamApiError ? { code: e.code, description: e.apiError().description ?? e.message } : undefined

const reasonOf = (e: unknown) => apiFailure(e)?.description ?? (e instanceof Error ? e.message : String(e))

/** A nats.js call whose failures are kept for the caller to classify. */
const call = <A>(operation: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => ({ operation, cause }) })

type CallFailure = { readonly operation: string; readonly cause: unknown }

const toBrokerError = (f: CallFailure) => new BrokerError({ operation: f.operation, reason: reasonOf(f.cause), cause: f.cause })

/** `None` when the server answers with `notFoundCode`. */
const readOptional = <A>(operation: string, notFoundCode: number, f: () => Promise<A>) =>
  call(operation, f).pipe(
    Effect.map(Option.some),
    Effect.catch((failure) =>
      apiFailure(failure.cause)?.code === notFoundCode ? Effect.succeed(Option.none<A>()) : Effect.fail(toBrokerError(failure))
    )
  )

const Codes = {
  consumerNotFound: 10014,
  streamNameInUse: 10058,
  streamNotFound: 10059,
  subjectsOverlap: 10065,
  workqueueUnfiltered: 10099,
  workqueueNotUnique: 10100,
  consumerExists: 10148
} as const

const featuresOf = (nats: NatsService): Diff.Features => ({ metadata: nats.atLeast("2.10") })

const refused = (resource: string, fields: ReadonlyArray<string>, wanted: string, reason: string, fix: string) =>
  new TopologyConflict({ resource, field: fields.join(", "), current: reason, wanted, fix, kind: "refused" })

/**
 * nats-server 2.9.10 answers a create racing another create of the same stream with 10058 ("name
 * already in use") or, in a narrow window, 10065 ("subjects overlap"): re-read before believing it.
 */
const lostRace = (code: number) => code === Codes.streamNameInUse || code === Codes.subjectsOverlap

const overlap = (resource: string, subjects: ReadonlyArray<string>, reason: string) =>
  new TopologyConflict({
    resource,
    field: "subjects",
    current: reason,
    wanted: subjects.join(", "),
    kind: "refused",
    fix: "another stream already stores some of these subjects: find it with `nats stream ls` and " +
      "`nats stream info NAME`, then remove the subjects from it, or change MSGSYS_STREAM_PREFIX"
  })

// ---------------------------------------------------------------------------------------------
// streams

const streamFix = (name: string) =>
  `rename the stream prefix (MSGSYS_STREAM_PREFIX) so msgsys creates new streams, or move the messages out and ` +
  `delete the stream with \`nats stream rm ${name}\``

const applyStream = (nats: NatsService, spec: Diff.NormalStream, features: Diff.Features) => {
  const resource = Diff.streamResource(spec.name)
  const streams = nats.manager.streams

  const reconcile = Effect.fnUntraced(function*(info: StreamInfo) {
    const plan = Diff.diffStream(spec, info.config)
    const conflict = plan.conflicts[0]
    if (conflict !== undefined) {
      return yield* new TopologyConflict({ resource, ...conflict, fix: streamFix(spec.name) })
    }
    if (plan.changed.length === 0) return { resource, action: "unchanged" } as Change
    for (const subject of plan.removedSubjects) yield* checkNothingStranded(info, subject)
    yield* call(`update ${resource}`, () => streams.update(spec.name, plan.update)).pipe(
      Effect.mapError((f) => {
        const api = apiFailure(f.cause)
        return api === undefined ? toBrokerError(f) : refused(
          resource,
          plan.changed,
          plan.changed.map((field) => `${field}: ${Diff.showStreamSpecField(field, spec)}`).join("; "),
          api.description,
          `declare what the server accepts (it has ${
            plan.changed.map((field) => `${field}: ${Diff.showStreamField(field, info.config)}`).join("; ")
          }), or change the stream by hand with \`nats stream edit ${spec.name}\``
        )
      })
    )
    yield* Effect.logInfo(`updated ${resource}: ${plan.changed.join(", ")}`)
    return { resource, action: "updated", fields: plan.changed } as Change
  })

  // a subject may go only while no message is stored under it (and not under a kept subject)
  const checkNothingStranded = Effect.fnUntraced(function*(info: StreamInfo, subject: string) {
    if (info.state.messages === 0) return
    const filtered = yield* call(`count messages of ${resource} under ${subject}`, () =>
      streams.info(spec.name, { subjects_filter: subject })).pipe(Effect.mapError(toBrokerError))
    const stranded = Diff.strandedCount(filtered.state.subjects ?? {}, spec.subjects)
    if (stranded === 0) return
    return yield* new TopologyConflict({
      resource,
      field: "subjects",
      current: Diff.showStreamField("subjects", info.config),
      wanted: Diff.showStreamSpecField("subjects", spec),
      consequence: `this would strand the ${stranded} message${stranded === 1 ? "" : "s"} stored under ${subject}`,
      fix: `keep ${subject} in the declared subjects until its messages are consumed, or remove them with ` +
        `\`nats stream purge ${spec.name} --subject ${subject}\``
    })
  })

  const read = readOptional(`read ${resource}`, Codes.streamNotFound, () => streams.info(spec.name))

  const create = call(`create ${resource}`, () => streams.add(Diff.streamConfig(spec, features))).pipe(
    Effect.as<Change>({ resource, action: "created" }),
    Effect.tap(() => Effect.logInfo(`created ${resource}`)),
    Effect.catch((f): Effect.Effect<Change, TopologyConflict | BrokerError> => {
      const api = apiFailure(f.cause)
      if (api === undefined || !lostRace(api.code)) return Effect.fail(toBrokerError(f))
      // another process may have created it first: compare with what it made
      return Effect.logDebug(`${resource}: create answered "${api.description}"; comparing with the server's`).pipe(
        Effect.andThen(read),
        Effect.flatMap(Option.match({
          onNone: () =>
            Effect.fail(api.code === Codes.subjectsOverlap ? overlap(resource, spec.subjects, api.description) : toBrokerError(f)),
          onSome: reconcile
        }))
      )
    })
  )

  return read.pipe(Effect.flatMap(Option.match({ onNone: () => create, onSome: reconcile })))
}

// ---------------------------------------------------------------------------------------------
// consumers

const consumerFix = (stream: string, name: string) =>
  `declare the new settings under a new consumer name, or delete the consumer with ` +
  `\`nats consumer rm ${stream} ${name}\` (its delivery state is lost; the stream keeps its messages)`

const applyConsumer = (nats: NatsService, spec: Diff.NormalConsumer, features: Diff.Features) => {
  const resource = Diff.consumerResource(spec.stream, spec.name)
  const consumers = nats.manager.consumers

  const reconcile = Effect.fnUntraced(function*(info: ConsumerInfo) {
    const plan = Diff.diffConsumer(spec, info.config)
    const conflict = plan.conflicts[0]
    if (conflict !== undefined) {
      return yield* new TopologyConflict({ resource, ...conflict, fix: consumerFix(spec.stream, spec.name) })
    }
    if (plan.changed.length === 0) return { resource, action: "unchanged" } as Change
    yield* call(`update ${resource}`, () => consumers.update(spec.stream, spec.name, plan.update)).pipe(
      Effect.mapError((f) => {
        const api = apiFailure(f.cause)
        return api === undefined ? toBrokerError(f) : refused(
          resource,
          plan.changed,
          plan.changed.join(", "),
          api.description,
          `declare settings the server accepts, or ${consumerFix(spec.stream, spec.name)}`
        )
      })
    )
    yield* Effect.logInfo(`updated ${resource}: ${plan.changed.join(", ")}`)
    return { resource, action: "updated", fields: plan.changed } as Change
  })

  const read = readOptional(`read ${resource}`, Codes.consumerNotFound, () => consumers.info(spec.stream, spec.name))

  const create = call(`create ${resource}`, () => consumers.add(spec.stream, Diff.consumerConfig(spec, features))).pipe(
    Effect.as<Change>({ resource, action: "created" }),
    Effect.tap(() => Effect.logInfo(`created ${resource}`)),
    Effect.catch((f): Effect.Effect<Change, TopologyConflict | BrokerError> => {
      const api = apiFailure(f.cause)
      // 2.10+ answers a racing create with "consumer already exists": compare with what won
      if (api?.code === Codes.consumerExists) {
        return read.pipe(
          Effect.flatMap(Option.match({ onNone: () => Effect.fail(toBrokerError(f)), onSome: reconcile }))
        )
      }
      if (api?.code === Codes.streamNotFound) {
        return Effect.fail(
          new BrokerError({
            operation: `create ${resource}`,
            reason: `stream ${spec.stream} does not exist: declare it in the same topology (streams are applied first)`,
            cause: f.cause
          })
        )
      }
      if (api?.code === Codes.workqueueUnfiltered || api?.code === Codes.workqueueNotUnique) {
        return Effect.fail(
          new TopologyConflict({
            resource,
            field: "filterSubject",
            current: api.description,
            wanted: spec.filterSubject ?? "(none)",
            kind: "refused",
            fix: `each consumer of a work-queue stream needs its own filter, and no two may overlap: list the ` +
              `consumers with \`nats consumer ls ${spec.stream}\` and remove one msgsys does not declare with ` +
              `\`nats consumer rm ${spec.stream} NAME\``
          })
        )
      }
      return Effect.fail(toBrokerError(f))
    })
  )

  return read.pipe(Effect.flatMap(Option.match({ onNone: () => create, onSome: reconcile })))
}

// ---------------------------------------------------------------------------------------------
// KV buckets

const applyKv = (nats: NatsService, spec: Diff.NormalKv, features: Diff.Features) => {
  const resource = Diff.kvResource(spec.bucket)
  const stream = Diff.kvStream(spec.bucket)

  const reconcile = Effect.fnUntraced(function*(config: StreamConfig) {
    const plan = Diff.diffKv(spec, config)
    if (plan.changed.length === 0) return { resource, action: "unchanged" } as Change
    yield* call(`update ${resource}`, () => nats.manager.streams.update(stream, plan.update)).pipe(
      Effect.mapError((f) => {
        const api = apiFailure(f.cause)
        return api === undefined ? toBrokerError(f) : refused(
          resource,
          plan.changed,
          plan.changed.map((field) => `${field}: ${Diff.showKvSpecField(field, spec)}`).join("; "),
          api.description,
          `declare what the server accepts (it has ${
            plan.changed.map((field) => `${field}: ${Diff.showKvField(field, config)}`).join("; ")
          }), or change the bucket by hand with \`nats kv edit ${spec.bucket}\``
        )
      })
    )
    yield* Effect.logInfo(`updated ${resource}: ${plan.changed.join(", ")}`)
    return { resource, action: "updated", fields: plan.changed } as Change
  })

  const read = readOptional(`read ${resource}`, Codes.streamNotFound, () => nats.manager.streams.info(stream))

  // `Kvm.create` opens a bucket that exists already (another process won a race) without looking
  // at its settings, so what it left is compared like any existing bucket
  const create = Effect.gen(function*() {
    const lost = yield* call(`create ${resource}`, () => nats.kvm.create(spec.bucket, Diff.kvOptions(spec, features))).pipe(
      Effect.as(undefined),
      Effect.catch((f) => {
        const api = apiFailure(f.cause)
        return api !== undefined && lostRace(api.code) ? Effect.succeed({ f, api }) : Effect.fail(toBrokerError(f))
      })
    )
    if (lost !== undefined) {
      yield* Effect.logDebug(`${resource}: create answered "${lost.api.description}"; comparing with the server's`)
    }
    const info = yield* read
    if (Option.isNone(info)) {
      return yield* lost === undefined
        ? new BrokerError({ operation: `create ${resource}`, reason: `${stream} is missing right after creating it` })
        : lost.api.code === Codes.subjectsOverlap
        ? overlap(resource, [`$KV.${spec.bucket}.>`], lost.api.description)
        : toBrokerError(lost.f)
    }
    const change = yield* reconcile(info.value.config)
    if (lost !== undefined || change.action !== "unchanged") return change
    yield* Effect.logInfo(`created ${resource}`)
    return { resource, action: "created" } as Change
  })

  return read.pipe(Effect.flatMap(Option.match({ onNone: () => create, onSome: (i) => reconcile(i.config) })))
}

// ---------------------------------------------------------------------------------------------
// apply

const applyAll = Effect.fn("Topology.apply")(function*(topology: Topology) {
  const nats = yield* Nats
  const t = merge(topology)

  const twice = Diff.disagreements(t)[0]
  if (twice !== undefined) {
    return yield* new TopologyConflict({
      resource: twice.resource,
      field: twice.field,
      current: twice.first,
      wanted: twice.second,
      kind: "declared-twice",
      fix: "make the declarations agree, or give one of them another name"
    })
  }

  const problems: Array<Diff.Problem> = []
  const streams = t.streams.map((s) => Diff.normalizeStream(s, problems))
  const consumers = t.consumers.map((c) => Diff.normalizeConsumer(c, problems))
  const buckets = t.kv.map((k) => Diff.normalizeKv(k, problems))
  const problem = problems[0]
  if (problem !== undefined) {
    return yield* new TopologyConflict({
      resource: problem.resource,
      field: problem.field,
      current: problem.problem,
      wanted: problem.wanted,
      kind: "invalid",
      fix: problem.fix
    })
  }

  const features = featuresOf(nats)
  const changes: Array<Change> = []
  // sequential: a stream must exist before its consumers, and the order of changes stays readable
  for (const s of streams) changes.push(yield* applyStream(nats, s, features))
  for (const c of consumers) changes.push(yield* applyConsumer(nats, c, features))
  for (const k of buckets) changes.push(yield* applyKv(nats, k, features))
  return changes as ReadonlyArray<Change>
})

/**
 * Makes the server hold `topology`: creates what is missing, updates what differs in place, and
 * fails with `TopologyConflict` on what would need deleting anything. Streams first, then
 * consumers, then buckets; applying the same topology again reports every resource `unchanged`.
 * @category apply @since 0.1.0
 */
export const apply: (topology: Topology) => Effect.Effect<ReadonlyArray<Change>, TopologyConflict | BrokerError, Nats> =
  applyAll

// ---------------------------------------------------------------------------------------------
// describe

/** One stream, for `msgsys status`. @category models @since 0.1.0 */
export interface StreamOverview {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  readonly retention: string
  readonly storage: string
  readonly messages: number
  readonly bytes: number
  readonly consumers: number
}

/** One consumer, for `msgsys status`. @category models @since 0.1.0 */
export interface ConsumerOverview {
  readonly name: string
  readonly stream: string
  /** `undefined`: every subject of the stream. */
  readonly filter: string | undefined
  /** Messages not yet delivered. */
  readonly pending: number
  /** Delivered, not yet acknowledged. */
  readonly ackPending: number
  readonly redelivered: number
  /** Pull requests waiting. */
  readonly waiting: number
}

/** @category models @since 0.1.0 */
export interface Overview {
  readonly streams: ReadonlyArray<StreamOverview>
  readonly consumers: ReadonlyArray<ConsumerOverview>
}

/**
 * Every stream on the server (or those whose name starts with `prefix`) and their consumers.
 * @category describe @since 0.1.0
 */
export const describe = Effect.fn("Topology.describe")(function*(nats: NatsService, options: { readonly prefix?: string } = {}) {
  const infos = yield* call("list streams", () => Array.fromAsync(nats.manager.streams.list())).pipe(
    Effect.mapError(toBrokerError)
  )
  const selected = infos
    .filter((i) => options.prefix === undefined || i.config.name.startsWith(options.prefix))
    .sort((a, b) => a.config.name.localeCompare(b.config.name))
  const streams: Array<StreamOverview> = selected.map((i) => ({
    name: i.config.name,
    subjects: [...(i.config.subjects ?? [])],
    retention: i.config.retention,
    storage: i.config.storage,
    messages: i.state.messages,
    bytes: i.state.bytes,
    consumers: i.state.consumer_count
  }))
  const perStream = yield* Effect.forEach(
    selected.filter((i) => i.state.consumer_count > 0),
    (i) =>
      call(`list consumers of ${i.config.name}`, () => Array.fromAsync(nats.manager.consumers.list(i.config.name))).pipe(
        Effect.mapError(toBrokerError)
      ),
    { concurrency: 4 }
  )
  const consumers: Array<ConsumerOverview> = perStream.flat()
    .map((c) => ({
      name: c.name,
      stream: c.stream_name,
      filter: c.config.filter_subject || undefined,
      pending: c.num_pending,
      ackPending: c.num_ack_pending,
      redelivered: c.num_redelivered,
      waiting: c.num_waiting
    }))
    .sort((a, b) => a.stream.localeCompare(b.stream) || a.name.localeCompare(b.name))
  return { streams, consumers } as Overview
})
