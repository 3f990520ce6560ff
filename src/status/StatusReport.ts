/**
 * msgsys as a person asks about it: per actor, how many tasks are queued, running, retrying,
 * delayed and dead; per pool, how much of it is in use; the workers alive now. Read from
 * JetStream (consumers and the dead-letter stream) and the worker registry, for `msgsys status`
 * and the dashboard.
 *
 * How the counts are made, per actor:
 * - queued: not yet delivered by the high, normal and low consumers, or held by a live worker and
 *   not started yet (a paused worker keeps what it had pulled);
 * - running: handlers running in the workers alive now (their announcements);
 * - retrying: delivered and not acked, less what live workers hold: failed runs waiting for their
 *   retry delay (and messages of a crashed worker waiting for `ack_wait`);
 * - delayed: everything on the delayed consumer (waiting for its run-at time);
 * - dead: letters in the dead-letter stream.
 * @since 0.1.0
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { Clock, Effect } from "effect"
import { brokerFailure } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import * as WorkerRegistry from "../registry/WorkerRegistry.ts"
import { Control } from "../control/Control.ts"

/** @category models @since 0.1.0 */
export interface ActorCounts {
  readonly name: string
  readonly queued: number
  readonly running: number
  readonly retrying: number
  readonly delayed: number
  readonly dead: number
  /** Pools the live workers run it in. */
  readonly pools: ReadonlyArray<string>
  /** Live workers running it. */
  readonly workers: number
  /** Paused, by itself or through its pool (the control bucket every worker follows). */
  readonly paused: boolean
}

/** A pool across the live workers. @category models @since 0.1.0 */
export interface PoolCounts {
  readonly name: string
  readonly inFlight: number
  /** The sum of its size in each live worker. */
  readonly size: number
  readonly workers: number
}

/** @category models @since 0.1.0 */
export interface Report {
  readonly at: number
  readonly prefix: string
  readonly actors: ReadonlyArray<ActorCounts>
  readonly pools: ReadonlyArray<PoolCounts>
  readonly workers: ReadonlyArray<WorkerRegistry.Announcement>
  /** Letters of the whole dead-letter stream. */
  readonly deadLetters: number
}

const isMissing = (e: unknown) => e instanceof JetStreamApiError && (e.code === 10059 || e.code === 10014)

/** Letters per actor in the dead-letter stream (body parts stored apart are not letters). */
const deadByActor = (nats: Nats["Service"], names: Subjects.Names) =>
  Effect.tryPromise({
    try: async () => {
      const counts = new Map<string, number>()
      const info = await nats.manager.streams.info(names.deadLetterStream, { subjects_filter: names.deadLetterSubjects })
        .catch((e) => isMissing(e) ? undefined : Promise.reject(e))
      for (const [subject, n] of Object.entries(info?.state.subjects ?? {})) {
        if (names.isDeadLetterBody(subject)) continue
        const actor = subject.split(".")[2]
        if (actor !== undefined) counts.set(actor, (counts.get(actor) ?? 0) + n)
      }
      return counts
    },
    catch: brokerFailure(`read ${names.deadLetterStream}`)
  })

/**
 * The report for one stream prefix: every actor with a task stream, every pool and worker alive.
 * @category reading @since 0.1.0
 */
export const read = Effect.fn("StatusReport.read")(function*(names: Subjects.Names) {
  const nats = yield* Nats
  const control = yield* Control
  const at = yield* Clock.currentTimeMillis
  const streamPrefix = names.taskStream("")
  const streams = yield* Effect.tryPromise({
    try: () => Array.fromAsync(nats.manager.streams.names()),
    catch: brokerFailure("list streams")
  })
  const actorNames = streams.filter((s) => s.startsWith(streamPrefix)).map((s) => s.slice(streamPrefix.length)).sort()
  const [workers, dead, consumers, pauses] = yield* Effect.all([
    WorkerRegistry.list(names),
    deadByActor(nats, names),
    Effect.forEach(actorNames, (actor) =>
      Effect.tryPromise({
        try: () => Array.fromAsync(nats.manager.consumers.list(names.taskStream(actor))),
        catch: brokerFailure(`list the consumers of ${names.taskStream(actor)}`)
      }), { concurrency: 4 }),
    control.paused
  ], { concurrency: "unbounded" })
  const isPaused = (kind: "actor" | "pool", name: string) => pauses.some((t) => t.kind === kind && t.name === name)

  const actors = actorNames.map((name, i): ActorCounts => {
    const byName = new Map(consumers[i]!.map((c) => [c.name, c]))
    const of = (kind: Subjects.Priority | "delayed") => byName.get(names.taskConsumer(name, kind))
    const live = Subjects.priorities.map(of)
    const entries = workers.flatMap((w) => w.actors.filter((a) => a.name === name))
    const held = entries.reduce((n, a) => n + a.held, 0)
    const running = entries.reduce((n, a) => n + a.inFlight, 0)
    const ackPending = live.reduce((n, c) => n + (c?.num_ack_pending ?? 0), 0)
    const delayed = of("delayed")
    return {
      name,
      // waiting in the stream, or held by a live worker and not started (a paused worker keeps its prefetch)
      queued: live.reduce((n, c) => n + (c?.num_pending ?? 0), 0) + Math.max(0, held - running),
      running,
      retrying: Math.max(0, ackPending - held),
      delayed: (delayed?.num_pending ?? 0) + (delayed?.num_ack_pending ?? 0),
      dead: dead.get(name) ?? 0,
      pools: [...new Set(entries.map((a) => a.pool))].sort(),
      workers: entries.length,
      paused: isPaused("actor", name) || entries.some((a) => isPaused("pool", a.pool))
    }
  })

  const pools = new Map<string, { inFlight: number; size: number; workers: number }>()
  for (const w of workers) {
    for (const p of w.pools) {
      const sum = pools.get(p.name) ?? { inFlight: 0, size: 0, workers: 0 }
      pools.set(p.name, { inFlight: sum.inFlight + p.inFlight, size: sum.size + p.size, workers: sum.workers + 1 })
    }
  }
  return {
    at,
    prefix: names.prefix,
    actors,
    pools: [...pools].map(([name, p]) => ({ name, ...p })).sort((a, b) => a.name.localeCompare(b.name)),
    workers,
    deadLetters: [...dead.values()].reduce((a, b) => a + b, 0)
  } satisfies Report
})
