/**
 * The last minutes of this worker's activity, for the dashboard's sparklines: every few seconds,
 * per actor, the handler runs so far, the failed ones (retried or dead) and the handlers running,
 * read from the `msgsys_messages_total` series and the worker's state. The page turns the running
 * totals into throughput and error rate per interval; a page opened late still gets the history.
 * @since 0.1.0
 */
import { Clock, type Context, Duration, Effect, Metric, Schedule, type Scope } from "effect"
import * as MessageMetrics from "../runtime/MessageMetrics.ts"
import type { Worker } from "../runtime/Worker.ts"

/** One sample. @category models @since 0.1.0 */
export interface Sample {
  readonly at: number
  /** By actor: runs so far, failed runs so far, handlers running now. */
  readonly actors: Readonly<Record<string, { readonly runs: number; readonly failed: number; readonly inFlight: number }>>
}

/** @category models @since 0.1.0 */
export interface Activity {
  /** Oldest first. */
  readonly samples: () => ReadonlyArray<Sample>
}

/** How often a sample is taken. @category constants @since 0.1.0 */
export const sampleEvery: Duration.Duration = Duration.seconds(2)

/** Samples kept: five minutes. @category constants @since 0.1.0 */
export const kept = 150

const failedOutcomes = new Set(["retry", "dead"])

/** Runs so far by actor, from the metric registry of `context`. */
const totals = (context: Context.Context<never>) => {
  const out = new Map<string, { runs: number; failed: number }>()
  for (const s of Metric.snapshotUnsafe(context)) {
    if (s.id !== MessageMetrics.messagesTotal.id || s.type !== "Counter") continue
    const actor = s.attributes?.actor
    if (actor === undefined) continue
    const n = Number(s.state.count)
    const t = out.get(actor) ?? { runs: 0, failed: 0 }
    out.set(actor, { runs: t.runs + n, failed: t.failed + (failedOutcomes.has(s.attributes?.outcome ?? "") ? n : 0) })
  }
  return out
}

/**
 * Samples `worker` every `sampleEvery` while the scope lives.
 * @category constructors @since 0.1.0
 */
export const make = (worker: Worker["Service"]): Effect.Effect<Activity, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const samples: Array<Sample> = []
    const take = Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const states = yield* worker.state
      const sums = totals(context)
      const actors: Record<string, { runs: number; failed: number; inFlight: number }> = {}
      for (const a of states) {
        const t = sums.get(a.name) ?? { runs: 0, failed: 0 }
        actors[a.name] = { ...t, inFlight: a.inFlight }
      }
      samples.push({ at, actors })
      if (samples.length > kept) samples.splice(0, samples.length - kept)
    })
    yield* take
    yield* Effect.forkScoped(take.pipe(Effect.repeat(Schedule.spaced(sampleEvery)), Effect.andThen(Effect.never)))
    return { samples: () => samples }
  })
