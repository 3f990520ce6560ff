/**
 * The client side of pipelines: start one with checked types, read its status, wait for it, get
 * its typed output, cancel it. Starting writes the pipeline's record (its plan) and enqueues its
 * first step; workers enqueue each next step (`Continuation`). Status is derived from the steps'
 * task records (`PipelineStatus`).
 * @since 0.1.0
 */
import { Cause, Clock, Context, Data, Duration, Effect, Exit, Layer, Option } from "effect"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import { NoStreamForSubject, type PublishError } from "../broker/Publish.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as Envelope from "../envelope/Envelope.ts"
import * as Payload from "../envelope/Payload.ts"
import { CancelRequests } from "../task/CancelRequests.ts"
import { Results } from "../task/Results.ts"
import type { TaskRecord } from "../task/TaskRecord.ts"
import { enqueueStep, type Transport } from "./internal/enqueueStep.ts"
import * as KvPipelineStore from "./KvPipelineStore.ts"
import * as Pipeline from "./Pipeline.ts"
import { InvalidPipelineId, isPipelineId, type PipelineRecord, stepsOf } from "./PipelineRecord.ts"
import * as PipelineStatus from "./PipelineStatus.ts"
import type { PipelineStore } from "./PipelineStore.ts"

/** What `status` and `wait` return (see `PipelineStatus`). @category models @since 0.1.0 */
export type { PipelineStatus, StepState, StepStatus, Status } from "./PipelineStatus.ts"

/** @category models @since 0.1.0 */
export interface StartOptions {
  /**
   * The pipeline id: starting again with the same id starts nothing new (`duplicate: true`).
   * Default: a new sortable id. 1 to 100 characters of A-Z, a-z, 0-9, `_`, `-`, `=`.
   */
  readonly id?: string
  /** Default "default" (or the parent's). */
  readonly tenant?: string
  /**
   * The message being handled when the pipeline starts (a handler passes its `envelope`): the
   * tenant, causation and trace follow it. The steps' correlation id is the pipeline id.
   */
  readonly parent?: Envelope.Envelope
  /** The priority of every step. Default normal. */
  readonly priority?: Subjects.Priority
}

/** A pipeline that was started. @category models @since 0.1.0 */
export interface Run<P extends Pipeline.Any = Pipeline.Any> {
  readonly id: string
  readonly pipeline: P
  /** An earlier start with this id created it. */
  readonly duplicate: boolean
}

/** No pipeline has this id. @category errors @since 0.1.0 */
export class PipelineNotFound extends Data.TaggedError("PipelineNotFound")<{ readonly pipelineId: string }> {
  override get message() {
    return `no pipeline ${this.pipelineId}: check the id (start returns it), and that the pipeline is younger than ` +
      "MSGSYS_RESULT_TTL (default 7 days)"
  }
}

/** Another pipeline (other steps) was started with this id. @category errors @since 0.1.0 */
export class PipelineIdTaken extends Data.TaggedError("PipelineIdTaken")<{
  readonly pipelineId: string
  readonly steps: ReadonlyArray<string>
}> {
  override get message() {
    return `pipeline id ${this.pipelineId} belongs to another pipeline (steps ${this.steps.join(" -> ")}): ` +
      "choose another id, or leave it out for a new one"
  }
}

/** The pipeline did not finish in time. @category errors @since 0.1.0 */
export class PipelineTimeout extends Data.TaggedError("PipelineTimeout")<{
  readonly pipelineId: string
  readonly timeoutMs: number
  readonly last: PipelineStatus.PipelineStatus | undefined
}> {
  override get message() {
    const at = this.last?.current !== undefined ? ` at step ${this.last.current} of ${this.last.length}` : ""
    return `pipeline ${this.pipelineId} has not finished after ${this.timeoutMs} ms (${this.last?.status ?? "unknown"}${at}): ` +
      "wait longer, or look at its steps with `msgsys pipeline status` (is a worker running each step's actor?)"
  }
}

/** The pipeline ended without an output: a step failed for good, or it was cancelled. @category errors @since 0.1.0 */
export class PipelineFailed extends Data.TaggedError("PipelineFailed")<{
  readonly pipelineId: string
  readonly status: PipelineStatus.PipelineStatus
}> {
  override get message() {
    const f = this.status.failure
    if (f === undefined) return `pipeline ${this.pipelineId} ended ${this.status.status}`
    const which = `step ${f.step}${f.child !== undefined ? ` (task ${f.child} of its gather)` : ""}, ${f.subject}, task ${f.taskId}`
    return f.status === "cancelled"
      ? `pipeline ${this.pipelineId} was cancelled at ${which}`
      : `pipeline ${this.pipelineId} failed at ${which}: ${f.error?.message ?? "dead"} — inspect the step with ` +
        "`msgsys dlq`; replaying its dead letter lets the pipeline go on"
  }
}

/** The stored output does not match the last step's output schema. @category errors @since 0.1.0 */
export class OutputMismatch extends Data.TaggedError("OutputMismatch")<{ readonly pipelineId: string; readonly reason: string }> {
  override get message() {
    return `the output of pipeline ${this.pipelineId} does not match its last step's output schema (${this.reason}): ` +
      "the worker and this client run different versions of the task definitions"
  }
}

/** @category models @since 0.1.0 */
export type StartError =
  | Payload.PayloadEncodeError
  | Payload.PayloadTooLarge
  | PublishError
  | BrokerError
  | Envelope.InvalidTenant
  | InvalidPipelineId
  | PipelineIdTaken

/** @category services @since 0.1.0 */
export class Pipelines extends Context.Service<Pipelines, {
  /** Starts a pipeline: stores its plan, enqueues its first step. */
  readonly start: <P extends Pipeline.Any>(
    pipeline: P,
    input: Pipeline.Input<P>,
    options?: StartOptions
  ) => Effect.Effect<Run<P>, StartError>
  readonly status: (
    pipelineId: string
  ) => Effect.Effect<PipelineStatus.PipelineStatus, PipelineNotFound | InvalidPipelineId | BrokerError>
  /** Waits until the pipeline succeeded, failed or was cancelled, and returns its status. */
  readonly wait: (
    pipelineId: string,
    timeout: Duration.Input
  ) => Effect.Effect<PipelineStatus.PipelineStatus, PipelineTimeout | PipelineNotFound | InvalidPipelineId | BrokerError>
  /** Waits for the typed output of the last step (a gather's: the tuple of its tasks' outputs). */
  readonly result: <P extends Pipeline.Any>(
    run: Run<P>,
    timeout: Duration.Input
  ) => Effect.Effect<
    Pipeline.Output<P>,
    PipelineFailed | OutputMismatch | PipelineTimeout | PipelineNotFound | InvalidPipelineId | BrokerError
  >
  /** Cancels every step not finished: a queued one is skipped when it arrives, a running one interrupted. */
  readonly cancel: (pipelineId: string) => Effect.Effect<void, PipelineNotFound | InvalidPipelineId | BrokerError>
}>()("msgsys/Pipelines") {}

const samePlan = (a: PipelineRecord["plan"], b: PipelineRecord["plan"]) => JSON.stringify(a) === JSON.stringify(b)

/**
 * The service on the given transport, results and store: NATS (`make`) or memory.
 * @category constructors @since 0.1.0
 */
export const makeWith = (
  transport: Transport & {
    readonly results: Results["Service"]
    readonly cancels: CancelRequests["Service"]
    readonly store: PipelineStore["Service"]
    /**
     * Whether a stream stores `subject`: every step's is checked before a pipeline starts, so a
     * step no worker has declared fails the start, not the pipeline halfway. Default: not checked.
     */
    readonly hasStream?: (subject: string) => Effect.Effect<boolean, BrokerError>
  }
) =>
  Effect.gen(function*() {
    const { results, cancels, store, maxPayload } = transport
    const clock = yield* Clock.Clock
    // subjects known to have a stream: a stream is not deleted under running pipelines
    const stored = new Set<string>()
    const checkStreams = (plan: PipelineRecord["plan"]) =>
      Effect.forEach(new Set(plan.flatMap((s) => typeof s === "string" ? [s] : s)), (subject) =>
        stored.has(subject) || transport.hasStream === undefined ? Effect.void : transport.hasStream(subject).pipe(
          Effect.flatMap((yes) => {
            if (!yes) return Effect.fail(new NoStreamForSubject({ subject }))
            stored.add(subject)
            return Effect.void
          })
        ), { concurrency: 8, discard: true })

    const validId = (id: string) => isPipelineId(id) ? Effect.succeed(id) : Effect.fail(new InvalidPipelineId({ pipelineId: id }))

    const start = <P extends Pipeline.Any>(pipeline: P, input: Pipeline.Input<P>, options: StartOptions = {}) =>
      Effect.gen(function*() {
        const now = clock.currentTimeMillisUnsafe()
        const tenant = options.tenant ?? options.parent?.tenant ?? Envelope.defaultTenant
        if (!Envelope.isValidTenant(tenant)) return yield* new Envelope.InvalidTenant({ tenant })
        const id = yield* validId(options.id ?? Envelope.newId(now))
        const plan = Pipeline.planOf(pipeline)
        yield* checkStreams(plan)
        // each task of the first step gets the input as its own schema encodes it
        const bodies = yield* Effect.forEach(
          Pipeline.tasksOf(pipeline.stages[0]!),
          (t) => Payload.encode(t.input, t.subject, input, maxPayload())
        )
        const priority = options.priority ?? "normal"
        let record: PipelineRecord = { id, tenant, plan, createdAt: now, ...(priority !== "normal" ? { priority } : {}) }
        const created = yield* store.create(record)
        if (!created) {
          const existing = yield* store.get(id)
          if (Option.isSome(existing)) {
            if (!samePlan(existing.value.plan, plan)) {
              return yield* new PipelineIdTaken({ pipelineId: id, steps: existing.value.plan.map((s) => typeof s === "string" ? s : `[${s.join(", ")}]`) })
            }
            record = existing.value
          }
          // started before: its first step is enqueued again unless a worker has taken it (and
          // a second copy is deduplicated, by the stream or by the task's idempotency key)
          const first = stepsOf(id, plan).filter((s) => s.step === 1)
          const taken = yield* Effect.forEach(first, (s) => results.get(s.taskId), { concurrency: "unbounded" })
          if (taken.every(Option.isSome)) return { id, pipeline, duplicate: true } satisfies Run<P>
        }
        yield* enqueueStep(transport, {
          pipelineId: id,
          plan,
          step: 1,
          priority: record.priority ?? "normal",
          tenant: record.tenant,
          parent: options.parent,
          bodies,
          now
        })
        return { id, pipeline, duplicate: !created } satisfies Run<P>
      })

    const recordOf = (pipelineId: string) =>
      Effect.andThen(validId(pipelineId), store.get(pipelineId)).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new PipelineNotFound({ pipelineId })),
          onSome: Effect.succeed
        }))
      )

    /**
     * The steps' task records, read step by step up to the first step not all succeeded (later
     * ones have not started); `known` holds records read before that are final already.
     */
    const readSteps = (record: PipelineRecord, known: Map<string, TaskRecord>) =>
      Effect.gen(function*() {
        const refs = stepsOf(record.id, record.plan)
        for (let step = 1; step <= record.plan.length; step++) {
          const mine = refs.filter((r) => r.step === step)
          const got = yield* Effect.forEach(
            mine.filter((r) => !known.has(r.taskId)),
            (r) => results.get(r.taskId),
            { concurrency: "unbounded" }
          )
          for (const r of got) if (Option.isSome(r)) known.set(r.value.id, r.value)
          if (!mine.every((r) => known.get(r.taskId)?.status === "succeeded")) break
        }
        return PipelineStatus.derive(record, known)
      })

    const status = (pipelineId: string) => Effect.flatMap(recordOf(pipelineId), (record) => readSteps(record, new Map()))

    const wait = (pipelineId: string, timeout: Duration.Input) =>
      Effect.gen(function*() {
        const timeoutMs = Duration.toMillis(Duration.fromInputUnsafe(timeout))
        const deadline = clock.currentTimeMillisUnsafe() + timeoutMs
        const record = yield* recordOf(pipelineId)
        const known = new Map<string, TaskRecord>()
        let s = yield* readSteps(record, known)
        while (!PipelineStatus.isFinal(s.status)) {
          const left = deadline - clock.currentTimeMillisUnsafe()
          const timedOut = new PipelineTimeout({ pipelineId, timeoutMs, last: s })
          if (left <= 0) return yield* timedOut
          // the first task of the current step to end (a gather fails at its first failure); a
          // wait reads the task's record itself, so the next step needs no read of its own
          const open = s.steps.filter((t) => t.step === s.current && !PipelineStatus.hasEnded(t.status))
          const ended = yield* Effect.raceAll(open.map((t) => results.awaitFinal(t.taskId, left))).pipe(
            Effect.catchTag("ResultTimeout", () => Effect.fail(timedOut))
          )
          // final records stay final (a replay rewrites one only after a failure, which ends the wait)
          known.set(ended.id, ended)
          s = PipelineStatus.derive(record, known)
        }
        return s
      })

    const result = <P extends Pipeline.Any>(run: Run<P>, timeout: Duration.Input) =>
      Effect.gen(function*() {
        const s = yield* wait(run.id, timeout)
        if (s.status !== "succeeded") return yield* new PipelineFailed({ pipelineId: run.id, status: s })
        const last = run.pipeline.stages[run.pipeline.stages.length - 1]!
        const outputs = last._tag === "Step" ? [s.output] : Array.isArray(s.output) ? s.output : []
        const decoded: Array<unknown> = []
        for (const [i, task] of Pipeline.tasksOf(last).entries()) {
          const exit = Payload.fromJson(task.output, outputs[i])
          if (Exit.isFailure(exit)) {
            return yield* new OutputMismatch({ pipelineId: run.id, reason: String((Cause.squash(exit.cause) as Error).message) })
          }
          decoded.push(exit.value)
        }
        return (last._tag === "Step" ? decoded[0] : decoded) as Pipeline.Output<P>
      })

    const cancel = (pipelineId: string) =>
      Effect.flatMap(recordOf(pipelineId), (record) =>
        Effect.forEach(stepsOf(pipelineId, record.plan), (s) => cancels.request(s.taskId), {
          concurrency: 16,
          discard: true
        }))

    return Pipelines.of({ start, status, wait, result, cancel })
  })

/** The service on the configured NATS server. @category constructors @since 0.1.0 */
export const make = Effect.gen(function*() {
  const config = yield* MsgsysConfig
  const nats = yield* Nats
  const names = Subjects.make(config.streamPrefix)
  return yield* makeWith({
    publisher: nats.publisher,
    names,
    maxPayload: () => nats.server.maxPayload,
    results: yield* Results,
    cancels: yield* CancelRequests,
    store: yield* KvPipelineStore.make(names, config.resultTtl),
    hasStream: (subject) =>
      Effect.tryPromise({
        try: async () => {
          // the names of the streams that store the subject: none, or one
          for await (const _ of nats.manager.streams.names(subject)) return true
          return false
        },
        catch: brokerFailure(`look up the stream of ${subject}`)
      })
  })
})

/** @category layers @since 0.1.0 */
export const layer: Layer.Layer<Pipelines, never, Nats | MsgsysConfig | Results | CancelRequests> = Layer.effect(Pipelines, make)
