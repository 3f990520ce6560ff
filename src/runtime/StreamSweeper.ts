/**
 * Clears what a crashed broker left behind. nats-server 2.9.10, SIGKILLed under load and
 * restarted on the same store, can keep messages acked shortly before the kill in a work-queue
 * stream for good: never delivered again, never removed (PITFALLS §10). A worker sweeps each of
 * its actors' task streams at start and every `MSGSYS_SWEEP_INTERVAL`, and deletes such messages.
 *
 * A message is deleted only when all of these hold, so the sweep never loses work:
 * - its consumer has passed it: it is at or below the consumer's ack floor, or the consumer has
 *   nothing pending and has delivered past it (after a restart the floor can stay behind until the
 *   next ack, which an idle consumer never gets). So it is neither pending nor undelivered;
 * - its task's status is final (succeeded, dead or cancelled), which every settle stores before
 *   its ack or term. A consumer also passes a message whose deliveries ran out (the server drops
 *   it from pending without an ack), and the max-deliveries sweeper must still move that one to
 *   dead letters: it is counted, logged and left.
 *
 * What 2.9.10 gets wrong, and the sweep works around (seen here):
 * - any stream purge, filtered or not and even one that removes nothing, clears the pending list of
 *   the consumers its filter matches: their in-flight messages are never redelivered. So messages
 *   are deleted one by one, by sequence, which leaves consumers alone;
 * - after a crash, a look-up by a subject filter can skip messages that are there (stale
 *   per-block subject index). So the sweep walks the stream unfiltered and assigns each message
 *   to the consumer whose filter matches its subject. The walk is bounded per sweep and resumes
 *   where it stopped.
 * @since 0.1.0
 */
import type { ConsumerInfo, JetStreamManager, MsgRequest } from "@nats-io/jetstream"
import { Clock, Duration, Effect, Metric, Option } from "effect"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import { matchesFilter, type Names } from "../broker/Subjects.ts"
import * as Envelope from "../envelope/Envelope.ts"
import type { Results } from "../task/Results.ts"
import { isFinal } from "../task/TaskRecord.ts"

/** @category metrics @since 0.1.0 */
export const removedTotal = Metric.counter("msgsys_stream_sweeper_removed_total", {
  description: "Settled messages a crashed broker left in a task stream, deleted by the sweeper (by stream, consumer)",
  incremental: true
})

/** @category models @since 0.1.0 */
export interface Options {
  readonly jsm: JetStreamManager
  readonly names: Names
  /** A work-queue task stream. */
  readonly stream: string
  readonly results: Results["Service"]
  /** Messages looked at per sweep; the walk resumes there at the next sweep. Default 2,000. */
  readonly budget?: number
}

/** What one sweep did. @category models @since 0.1.0 */
export interface Sweep {
  /** Settled messages deleted, by consumer. */
  readonly removed: Readonly<Record<string, number>>
  /** Messages passed by their consumer whose tasks are not settled: left alone. */
  readonly unsettled: number
  /** Where the next sweep goes on; 0 when this one reached the end (the next starts over). */
  readonly next: number
}

/** The highest sequence a consumer is known to be done with (see the module doc). */
const passedUpTo = (c: ConsumerInfo): number =>
  c.num_ack_pending === 0 ? Math.max(c.delivered.stream_seq, c.ack_floor.stream_seq) : c.ack_floor.stream_seq

/**
 * Deletes message `seq`; false when it is gone already (another worker's sweep). 2.9.10 reports a
 * missing message with a generic delete-failed code, so a failure is told apart by reading again.
 */
const deleteIfPresent = async (jsm: JetStreamManager, stream: string, seq: number): Promise<boolean> => {
  try {
    return await jsm.streams.deleteMessage(stream, seq, false)
  } catch (e) {
    if ((await jsm.streams.getMessage(stream, { seq })) === null) return false
    throw e
  }
}

/**
 * One sweep of the stream, from sequence `from` (0: from the start) for at most `budget` messages.
 * @category sweeping @since 0.1.0
 */
export const sweep = (options: Options, from = 0): Effect.Effect<Sweep, BrokerError> =>
  Effect.gen(function*() {
    const { jsm, stream } = options
    const budget = options.budget ?? 2000
    const info = yield* Effect.tryPromise({
      try: () => jsm.streams.info(stream),
      catch: brokerFailure(`read stream ${stream}`)
    })
    const consumers = yield* Effect.tryPromise({
      try: async () => {
        const all: Array<ConsumerInfo> = []
        for await (const c of jsm.consumers.list(stream)) all.push(c)
        return all
      },
      catch: brokerFailure(`list the consumers of ${stream}`)
    })
    // filters of a work-queue stream's consumers never overlap: a message has at most one owner
    const owners = consumers.map((c) => ({ name: c.name, filter: c.config.filter_subject || ">", upTo: passedUpTo(c) }))
    const end = Math.max(0, ...owners.map((o) => o.upTo))
    const now = yield* Clock.currentTimeMillis
    const removed: Record<string, number> = {}
    let unsettled = 0
    let seq = Math.max(from, info.state.first_seq)
    let next = 0
    for (let looked = 0; seq <= end; looked++) {
      if (looked >= budget) {
        next = seq
        break
      }
      const stored = yield* Effect.tryPromise({
        // unfiltered (">"): a filtered look-up can skip messages after a crash
        try: () => jsm.streams.getMessage(stream, { seq, next_by_subj: ">" } as unknown as MsgRequest),
        catch: brokerFailure(`read ${stream} from #${seq}`)
      })
      if (stored === null || stored.seq > end) break
      seq = stored.seq + 1
      const owner = owners.find((o) => matchesFilter(stored.subject, o.filter))
      if (owner === undefined || stored.seq > owner.upTo) continue
      const headers: Record<string, string> = {}
      for (const k of stored.header?.keys() ?? []) headers[k] = stored.header.get(k)
      const { subject } = options.names.parseTaskSubject(stored.subject)
      // the id dispatch gives the message
      const { id } = Envelope.fromHeaders(subject, headers, { now, fallbackId: `${stream}-${stored.seq}` })
      const record = yield* options.results.get(id)
      if (Option.isNone(record) || !isFinal(record.value.status)) {
        unsettled++
        continue
      }
      const deleted = yield* Effect.tryPromise({
        try: () => deleteIfPresent(jsm, stream, stored.seq),
        catch: brokerFailure(`delete ${stream} #${stored.seq}`)
      })
      if (deleted) removed[owner.name] = (removed[owner.name] ?? 0) + 1
    }
    for (const [consumer, n] of Object.entries(removed)) {
      yield* Metric.update(Metric.withAttributes(removedTotal, { stream, consumer }), n)
      yield* Effect.logWarning(
        `removed ${n} settled message(s) left in ${stream} that ${consumer} had passed ` +
          "(a nats-server 2.9 defect keeps some acked messages after a crash)"
      )
    }
    if (unsettled > 0) {
      yield* Effect.logWarning(
        `${unsettled} message(s) in ${stream} were passed by their consumer but their tasks are not settled: ` +
          "left for the max-deliveries sweeper; if they stay, look at them with `nats stream view` and `msgsys result`"
      )
    }
    return { removed, unsettled, next }
  })

/**
 * Sweeps at once, then every `interval` (default 1 minute), until interrupted; each sweep goes on
 * where the last one stopped. A failed sweep (the broker away) is logged and tried again.
 * @category loops @since 0.1.0
 */
export const run = (options: Options & { readonly interval?: Duration.Input }): Effect.Effect<never> =>
  Effect.gen(function*() {
    const interval = options.interval ?? Duration.minutes(1)
    let from = 0
    while (true) {
      from = yield* sweep(options, from).pipe(
        Effect.map((s) => s.next),
        Effect.catch((e) =>
          Effect.as(Effect.logWarning(`sweeping ${options.stream} failed: ${e.message}; trying again later`), from)
        )
      )
      yield* Effect.sleep(interval)
    }
  })
