/**
 * Replaying an event group: the group handles every event again from a stream sequence (or the
 * first event stored at or after a time). JetStream moves a consumer back only by recreating it,
 * and events are deduplicated per group by event id, so a replay
 *
 * 1. pauses the group on every worker (unless it was paused already),
 * 2. stores a new replay epoch (`ReplayEpochs`): events from the start sequence on get a new key
 *    scope and run again, the events before it keep theirs,
 * 3. waits `settle` so every worker has seen both (one watch: the pause first),
 * 4. deletes the group's consumer and creates it again, the same but starting at the start, or at
 *    the group's first unhandled event when that is earlier: an event the group had not settled
 *    (in flight, retrying, not yet delivered) is delivered again under its old scope, so it runs
 *    once and none is lost; one it had settled is found done and skipped,
 * 5. resumes the group.
 * @since 0.1.0
 */
import type { ConsumerConfig, ConsumerInfo } from "@nats-io/jetstream"
import { JetStreamApiError } from "@nats-io/jetstream"
import { Clock, Data, Duration, Effect, Schedule } from "effect"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as Control from "../control/Control.ts"
import * as Groups from "./Groups.ts"
import * as ReplayEpochs from "../control/ReplayEpochs.ts"

/** Where the replay starts. @category models @since 0.1.0 */
export type From =
  /** The first event stored at or after this time. */
  | { readonly since: Date }
  /** This stream sequence (`Published.sequence`, `msgsys events publish` prints it). */
  | { readonly sequence: number }

/** @category models @since 0.1.0 */
export interface Options {
  readonly from: From
  /** The group's domain, when groups of its name read several. */
  readonly domain?: string | undefined
  /** How long workers get to see the pause and the new epoch before the consumer is recreated. Default 1 second. */
  readonly settle?: Duration.Input | undefined
}

/** What a replay did. @category models @since 0.1.0 */
export interface Replayed {
  readonly group: string
  readonly domain: string
  readonly stream: string
  /** The group's new epoch: its events from `from` on are keyed `group/<name>#<epoch>`. */
  readonly epoch: number
  /** The first stream sequence that runs again. */
  readonly from: number
  /**
   * Where the recreated consumer starts: `from`, or the group's first unsettled event when that is
   * earlier (events between it and `from` are delivered again and run only if they never did).
   */
  readonly redeliverFrom: number
  /** The stream's sequences now. */
  readonly firstSequence: number
  readonly lastSequence: number
  /** Events on the group's subjects the recreated consumer has to deliver. */
  readonly pending: number
  /** The group was paused before the replay and stays paused. */
  readonly stayedPaused: boolean
}

/** A start sequence the stream cannot replay from. @category errors @since 0.1.0 */
export class StartOutOfRange extends Data.TaggedError("StartOutOfRange")<{
  readonly stream: string
  readonly sequence: number
  readonly lastSequence: number
}> {
  override get message() {
    return `cannot replay ${this.stream} from sequence ${this.sequence}: give a whole number from 1 to ` +
      `${this.lastSequence + 1} (its last event is #${this.lastSequence})`
  }
}

/** The group's consumer was deleted and could not be created again. @category errors @since 0.1.0 */
export class ConsumerNotRecreated extends Data.TaggedError("ConsumerNotRecreated")<{
  readonly group: string
  readonly stream: string
  readonly reason: string
  readonly config: ConsumerConfig
}> {
  override get message() {
    return `event group ${this.group}'s consumer on ${this.stream} was deleted for the replay and could not be created ` +
      `again (${this.reason}). The group stays paused, so no worker creates it from its startAt and skips events. ` +
      `Create it with \`nats consumer add ${this.stream} --config FILE\`, FILE holding ${JSON.stringify(this.config)}, ` +
      `then \`msgsys resume ${this.group}\``
  }
}

/** The consumer found after creating it is not the one asked for (a worker declared it in between). */
class Raced extends Data.TaggedError("Raced")<{ readonly reason: string }> {}

const nanos = (ms: number) => Math.round(ms * 1e6)

const isNotFound = (e: unknown) => e instanceof JetStreamApiError && e.code === 10014

/**
 * The first stream sequence stored at or after `time`: an ephemeral probe consumer starting there
 * says where it starts (nats-server 2.9 has no direct get by time).
 */
const sequenceAt = (nats: Nats["Service"], stream: string, time: Date) =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: () =>
        nats.manager.consumers.add(stream, {
          ack_policy: "none",
          deliver_policy: "by_start_time",
          opt_start_time: time.toISOString(),
          inactive_threshold: nanos(30_000),
          mem_storage: true
        } as Partial<ConsumerConfig>),
      catch: brokerFailure(`find the first event of ${stream} at or after ${time.toISOString()}`)
    }),
    (probe) => Effect.succeed(probe.delivered.stream_seq + 1),
    (probe) => Effect.ignore(Effect.tryPromise(() => nats.manager.consumers.delete(stream, probe.name)))
  )

/**
 * The first event the group has not settled: none below it is unacknowledged. nats-server 2.9
 * reports an ack floor of 0 until the consumer's first delivery is acked; then it is where the
 * consumer started.
 */
const firstUnsettled = (nats: Nats["Service"], stream: string, info: ConsumerInfo): Effect.Effect<number, BrokerError> => {
  if (info.num_ack_pending === 0) return Effect.succeed(info.delivered.stream_seq + 1)
  if (info.ack_floor.consumer_seq > 0) return Effect.succeed(info.ack_floor.stream_seq + 1)
  const c = info.config
  switch (c.deliver_policy) {
    case "all":
      return Effect.succeed(1)
    case "by_start_sequence":
      return Effect.succeed(c.opt_start_seq ?? 1)
    case "by_start_time":
      return c.opt_start_time !== undefined ? sequenceAt(nats, stream, new Date(c.opt_start_time)) : Effect.succeed(1)
    default:
      // "new": it started with the first event stored after it was created
      return sequenceAt(nats, stream, new Date(info.created))
  }
}

/**
 * Makes `group` handle its events again from `options.from`. See the module's description.
 * @category replay @since 0.1.0
 */
export const run = Effect.fn("Replay.run")(function*(group: string, options: Options) {
  const nats = yield* Nats
  const control = yield* Control.Control
  const config = yield* MsgsysConfig
  const names = Subjects.make(config.streamPrefix)
  const { domain } = yield* Groups.find(nats, names, group, options.domain)
  const stream = domain.stream
  const from = "sequence" in options.from ? options.from.sequence : yield* sequenceAt(nats, stream, options.from.since)
  if (!Number.isSafeInteger(from) || from < 1 || from > domain.lastSequence + 1) {
    return yield* new StartOutOfRange({ stream, sequence: from, lastSequence: domain.lastSequence })
  }

  const target: Control.Target = { kind: "actor", name: group }
  const stayedPaused = (yield* control.paused).some((t) => t.kind === "actor" && t.name === group)
  if (!stayedPaused) yield* control.pause(target)
  let consumerGone = false
  let restore: Effect.Effect<void> = Effect.void

  const replay = Effect.gen(function*() {
    const stored = yield* control.epochs(group)
    const epochs = ReplayEpochs.add(stored.epochs, from, new Date(yield* Clock.currentTimeMillis))
    yield* control.setEpochs(group, epochs, stored.revision)
    // until the consumer is gone, a failure takes the replay back (best effort); the epoch number
    // stays used, since a worker may have keyed an event with it already
    restore = Effect.ignore(Effect.flatMap(control.epochs(group), (now) =>
      control.setEpochs(group, { epoch: epochs.epoch, replays: stored.epochs.replays }, now.revision)))
    yield* Effect.sleep(options.settle ?? Duration.seconds(1))

    const info = yield* Effect.tryPromise({
      try: () => nats.manager.consumers.info(stream, group),
      catch: brokerFailure(`read group ${group} of ${stream}`)
    })
    const redeliverFrom = Math.min(from, yield* firstUnsettled(nats, stream, info))
    const { opt_start_time: _, ...kept } = info.config
    const wanted: ConsumerConfig = { ...kept, deliver_policy: "by_start_sequence" as ConsumerConfig["deliver_policy"], opt_start_seq: redeliverFrom }

    // Delete and create in one go. A worker whose pull the deletion ended may declare the group
    // again in between (with its startAt): then the create fails or finds another start, and the
    // pair runs again.
    restore = Effect.void
    consumerGone = true
    const recreated = yield* Effect.tryPromise({
      try: async () => {
        await nats.manager.consumers.delete(stream, group).catch((e: unknown) => {
          if (!isNotFound(e)) throw e
        })
        await nats.manager.consumers.add(stream, wanted)
        return nats.manager.consumers.info(stream, group)
      },
      catch: (e) => new Raced({ reason: e instanceof JetStreamApiError ? e.apiError().description ?? e.message : String(e) })
    }).pipe(
      Effect.filterOrFail(
        (i) => i.config.deliver_policy === "by_start_sequence" && i.config.opt_start_seq === redeliverFrom,
        (i) => new Raced({ reason: `found it starting with ${i.config.deliver_policy} ${i.config.opt_start_seq ?? ""}` })
      ),
      Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 50 }))),
      Effect.mapError((e) => new ConsumerNotRecreated({ group, stream, reason: e.reason, config: wanted }))
    )
    consumerGone = false
    const after = yield* Effect.tryPromise({
      try: () => nats.manager.streams.info(stream),
      catch: brokerFailure(`read ${stream}`)
    })
    return {
      group,
      domain: domain.domain,
      stream,
      epoch: epochs.epoch,
      from,
      redeliverFrom,
      firstSequence: after.state.first_seq,
      lastSequence: after.state.last_seq,
      pending: recreated.num_pending,
      stayedPaused
    } satisfies Replayed
  })

  return yield* replay.pipe(
    Effect.onError(() => Effect.suspend(() => restore)),
    // a group without its consumer stays paused: a worker would create it from its startAt
    Effect.ensuring(Effect.suspend(() => stayedPaused || consumerGone ? Effect.void : Effect.ignore(control.resume(target))))
  )
})
