/**
 * A pipeline's progress, on the worker: once a step's task succeeded and its outcome and status
 * are stored, and before its message is acked, the next step is enqueued with this step's output
 * as its input (a gather step's tasks first record their outputs, and the one that completes the
 * set enqueues the next step with all of them). The worker runs this as the dispatcher's
 * `afterSucceeded` hook, so:
 *
 * - a crash before the next step is enqueued leaves the finished step unacked: it is redelivered,
 *   its idempotency key is done (it does not run again), and the hook runs again;
 * - a crash after it leaves the same, and the next step's message is published again with the same
 *   id: the stream drops it within its duplicate window, the next task's idempotency key after it;
 * - tasks that are not pipeline steps cost one header lookup.
 * @since 0.1.0
 */
import { Clock, Effect, Option, type Schema } from "effect"
import type { Envelope } from "../envelope/Envelope.ts"
import * as Failpoint from "../failpoint/Failpoint.ts"
import type { Results } from "../task/Results.ts"
import type { StoredError } from "../task/TaskRecord.ts"
import { enqueueStep, type Transport } from "./internal/enqueueStep.ts"
import * as PipelineHeader from "./PipelineHeader.ts"
import { isGather, stepsOf, subjectsOf } from "./PipelineRecord.ts"
import type { PipelineStore } from "./PipelineStore.ts"

/**
 * The hook, in the terms the dispatcher calls it (its `afterSucceeded`): declared here so the
 * pipeline folder does not reach up into runtime/.
 * @category models @since 0.1.0
 */
export interface Continuation {
  readonly applies: (envelope: Envelope) => boolean
  /** `output` is the stored (JSON) output of the succeeded task. */
  readonly run: (
    job: { readonly envelope: Envelope; readonly taskId: string; readonly subject: string },
    output: unknown
  ) => Effect.Effect<void, unknown>
}

/** @category models @since 0.1.0 */
export interface Options extends Transport {
  readonly results: Results["Service"]
  readonly store: PipelineStore["Service"]
}

const encoder = new TextEncoder()

/** Whether a message is a pipeline step: the one check every succeeded task pays. @category predicates @since 0.1.0 */
export const isStep = (envelope: Envelope): boolean => envelope.extra[PipelineHeader.name] !== undefined

/**
 * The hook that enqueues a pipeline's next step.
 * @category constructors @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<Continuation> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const { results, store } = options

    /** A step that can never be enqueued is dead: its tasks get a dead status, which fails the pipeline. */
    const failStep = (header: PipelineHeader.PipelineHeader, step: number, tenant: string, error: StoredError) =>
      Effect.gen(function*() {
        const now = clock.currentTimeMillisUnsafe()
        const tasks = stepsOf(header.id, header.plan).filter((s) => s.step === step)
        yield* Effect.forEach(tasks, (t) =>
          results.put({ id: t.taskId, subject: t.subject, tenant, status: "dead", attempt: 0, updatedAt: now, endedAt: now, error }), {
          concurrency: "unbounded",
          discard: true
        })
        yield* Effect.logError(`pipeline ${header.id}: step ${step} cannot be enqueued, the pipeline fails there: ${error.message}`)
      })

    const run: Continuation["run"] = (job, output) =>
      Effect.gen(function*() {
        yield* Failpoint.hit("before-continue")
        const raw = job.envelope.extra[PipelineHeader.name]!
        const decoded = PipelineHeader.decode(raw)
        if (Option.isNone(decoded)) {
          const shown = raw.length > 200 ? `${raw.slice(0, 200)}...` : raw
          return yield* Effect.logError(
            `task ${job.taskId} (${job.subject}) carries a ${PipelineHeader.name} header that does not read (${shown}): ` +
              "no next step is enqueued (only msgsys should set this header)"
          )
        }
        const header = decoded.value
        const { id, step, plan } = header
        // the last step: the pipeline's output is its tasks' stored outputs
        if (step === plan.length) return
        const current = plan[step - 1]!
        let input = (output ?? null) as Schema.Json
        if (isGather(current)) {
          const joined = yield* store.join(id, step, header.child!, current.length, input).pipe(
            Effect.catchTag("GatherTooLarge", (e) =>
              Effect.as(failStep(header, step + 1, job.envelope.tenant, { tag: e._tag, message: e.message }), Option.none()))
          )
          if (Option.isNone(joined)) return
          input = joined.value as Schema.Json
        }
        const body = encoder.encode(JSON.stringify(input))
        const next = plan[step]!
        yield* enqueueStep(options, {
          pipelineId: id,
          plan,
          step: step + 1,
          priority: header.priority ?? "normal",
          parent: job.envelope,
          bodies: subjectsOf(next).map(() => body),
          now: clock.currentTimeMillisUnsafe()
        }).pipe(
          Effect.catchTag("PayloadTooLarge", (e) => failStep(header, step + 1, job.envelope.tenant, { tag: e._tag, message: e.message }))
        )
      })

    return { applies: isStep, run }
  })
