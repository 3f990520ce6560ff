/**
 * The event groups on the broker: every events stream of a prefix (`<prefix>_EVENTS_<domain>`)
 * and, per group (a durable consumer of it), how far it has got — for `msgsys events groups` and
 * for finding the group a replay recreates.
 * @since 0.1.0
 */
import type { ConsumerInfo } from "@nats-io/jetstream"
import { Data, Effect } from "effect"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import type { Nats } from "../broker/Nats.ts"
import type { Names } from "../broker/Subjects.ts"

/** One group: its consumer's state. @category models @since 0.1.0 */
export interface Group {
  readonly name: string
  /** The subjects it takes; `undefined`: every subject of the stream. */
  readonly filter: string | undefined
  /** Events on its subjects not delivered yet: its lag. */
  readonly pending: number
  /** Delivered, not acknowledged yet (running, retrying, or handed back). */
  readonly ackPending: number
  /** Waiting to be delivered again. */
  readonly redelivered: number
  /** Pull requests waiting: workers listening now. */
  readonly waiting: number
  /** The stream sequence of the last event delivered to it. */
  readonly deliveredSequence: number
  /** Every event up to this stream sequence is acknowledged (0: none yet in order). */
  readonly ackFloorSequence: number
  /** When it was created (ISO 8601): a replay recreates it. */
  readonly created: string
}

/** One events stream and its groups. @category models @since 0.1.0 */
export interface Domain {
  readonly domain: string
  readonly stream: string
  readonly messages: number
  readonly firstSequence: number
  readonly lastSequence: number
  readonly groups: ReadonlyArray<Group>
}

/** No events stream of this prefix has a group of that name. @category errors @since 0.1.0 */
export class GroupNotFound extends Data.TaggedError("GroupNotFound")<{
  readonly group: string
  readonly domain: string | undefined
  readonly known: ReadonlyArray<string>
}> {
  override get message() {
    return `no event group ${this.group}${this.domain === undefined ? "" : ` in domain ${this.domain}`} on this broker ` +
      `(groups: ${this.known.join(", ") || "none"}): check the name (\`msgsys events groups\`) and MSGSYS_STREAM_PREFIX; ` +
      "a group exists once a worker that runs it has started"
  }
}

/** Groups of the same name read two domains. @category errors @since 0.1.0 */
export class AmbiguousGroup extends Data.TaggedError("AmbiguousGroup")<{
  readonly group: string
  readonly domains: ReadonlyArray<string>
}> {
  override get message() {
    return `event group ${this.group} reads several domains (${this.domains.join(", ")}): say which with --domain`
  }
}

/** A consumer's state as a group. @category reading @since 0.1.0 */
export const groupOf = (c: ConsumerInfo): Group => ({
  name: c.name,
  filter: c.config.filter_subject || undefined,
  pending: c.num_pending,
  ackPending: c.num_ack_pending,
  redelivered: c.num_redelivered,
  waiting: c.num_waiting,
  deliveredSequence: c.delivered.stream_seq,
  ackFloorSequence: c.ack_floor.stream_seq,
  created: c.created
})

/**
 * Every events stream of the prefix (or of one domain) with its groups, by domain and name.
 * @category reading @since 0.1.0
 */
export const list = Effect.fn("Groups.list")(function*(
  nats: Nats["Service"],
  names: Names,
  options: { readonly domain?: string | undefined } = {}
) {
  const prefix = names.eventStream("")
  const streams = yield* Effect.tryPromise({
    try: () => Array.fromAsync(nats.manager.streams.list()),
    catch: brokerFailure("list streams")
  })
  const selected = streams
    .filter((s) => s.config.name.startsWith(prefix) && s.config.name.length > prefix.length)
    .filter((s) => options.domain === undefined || s.config.name === names.eventStream(options.domain))
    .sort((a, b) => a.config.name.localeCompare(b.config.name))
  return yield* Effect.forEach(selected, (s) =>
    Effect.tryPromise({
      try: () => Array.fromAsync(nats.manager.consumers.list(s.config.name)),
      catch: brokerFailure(`list the groups of ${s.config.name}`)
    }).pipe(Effect.map((consumers): Domain => ({
      domain: s.config.name.slice(prefix.length),
      stream: s.config.name,
      messages: s.state.messages,
      firstSequence: s.state.first_seq,
      lastSequence: s.state.last_seq,
      // a group is a durable consumer; an ephemeral one (a probe, a tool) is no group
      groups: consumers
        .filter((c) => c.config.durable_name !== undefined && c.config.durable_name !== "")
        .map(groupOf)
        .sort((a, b) => a.name.localeCompare(b.name))
    }))), { concurrency: 4 })
})

/**
 * The events stream a group reads and its consumer's state.
 * @category reading @since 0.1.0
 */
export const find = (
  nats: Nats["Service"],
  names: Names,
  group: string,
  domain?: string
): Effect.Effect<{ readonly domain: Domain; readonly info: ConsumerInfo }, GroupNotFound | AmbiguousGroup | BrokerError> =>
  Effect.gen(function*() {
    const domains = yield* list(nats, names, { domain })
    const hits = domains.filter((d) => d.groups.some((g) => g.name === group))
    if (hits.length === 0) {
      return yield* new GroupNotFound({ group, domain, known: domains.flatMap((d) => d.groups.map((g) => g.name)) })
    }
    if (hits.length > 1) return yield* new AmbiguousGroup({ group, domains: hits.map((d) => d.domain) })
    const hit = hits[0]!
    const info = yield* Effect.tryPromise({
      try: () => nats.manager.consumers.info(hit.stream, group),
      catch: brokerFailure(`read group ${group} of ${hit.stream}`)
    })
    return { domain: hit, info }
  })
