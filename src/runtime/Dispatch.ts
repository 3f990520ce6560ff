/**
 * What happens to one delivered task message, from receipt to ack. The order of the steps is
 * the guarantees:
 *
 * 1. keep the message alive (`working()` every third of ack_wait) from receipt to the end (5);
 * 2. route by subject and decode; an unknown subject or bad payload is poison: dead letters (3, 8);
 * 3. a cancelled task is skipped; a task whose idempotency key is done is not run again (2);
 * 4. run the handler with its timeout, interruptible by cancel; a throw or defect fails only
 *    this message; the status shows "running" only once the handler has run for 100 ms (or
 *    reported progress): a quick task goes from "queued" straight to its final status, saving a
 *    broker write per task;
 * 5. success: store the outcome, commit the audit row, and only then ack (1);
 *    failure: nak with the retry policy's delay for this attempt, or dead-letter when the policy
 *    is exhausted or the error is permanent, then `term()` the original (3, 4).
 *
 * After the handler returns, the steps run uninterruptibly: a shutdown never leaves a message
 * half-settled.
 * @since 0.1.0
 */
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, Option, Schedule, Schema } from "effect"
import * as Actor from "../actor/Actor.ts"
import type { AuditLog, AuditRecord, AuditStep } from "../audit/AuditLog.ts"
import type { Delivery } from "../broker/Pull.ts"
import type { Names } from "../broker/Subjects.ts"
import type * as DeadLetter from "../dlq/DeadLetter.ts"
import * as DeadLetters from "../dlq/DeadLetters.ts"
import * as Envelope from "../envelope/Envelope.ts"
import * as Payload from "../envelope/Payload.ts"
import type { Idempotency } from "../idempotency/Idempotency.ts"
import * as Retry from "../retry/Retry.ts"
import * as TaskHeaders from "../task/TaskHeaders.ts"
import type { Results } from "../task/Results.ts"
import type * as Task from "../task/Task.ts"
import * as TaskError from "../task/TaskError.ts"
import type { FailedAttempt, StoredError, TaskRecord } from "../task/TaskRecord.ts"
import type { JetStreamClient } from "@nats-io/jetstream"
import * as Failpoint from "./Failpoint.ts"
import type { Partitions } from "./Partitions.ts"

/** Everything one actor's dispatcher needs, resolved once when the worker starts. @category models @since 0.1.0 */
export interface Context {
  readonly workerId: string
  readonly actor: Actor.Any
  readonly handlers: Actor.AnyHandlers
  readonly names: Names
  readonly js: JetStreamClient
  readonly results: Results["Service"]
  readonly audit: AuditLog["Service"]
  readonly idempotency: Idempotency["Service"]
  readonly ackWait: Duration.Duration
  readonly partitions: Partitions
  /** Task ids a client asked to cancel. */
  readonly cancelled: ReadonlySet<string>
  /** Running tasks, so a cancel request can interrupt them. */
  readonly running: Map<string, (reason: TaskError.TaskCancelled) => void>
  readonly poolName: string
}

/** How long a handler runs before its status shows "running" (a broker write saved for quick tasks). */
const runningAfter = Duration.millis(100)

const storedError = (e: unknown, task: Task.Any | undefined): StoredError => {
  const tag = typeof e === "object" && e !== null && typeof (e as { _tag?: unknown })._tag === "string"
    ? (e as { _tag: string })._tag
    : e instanceof Error ? e.name : "Error"
  const base: StoredError = { tag, message: TaskError.describe(e) }
  if (task?.error) {
    // the JSON form, as outputs: it must survive JSON.stringify into the results bucket
    const encoded = Payload.toJson(task.error as Schema.Codec<unknown, unknown>, e)
    if (Exit.isSuccess(encoded)) return { ...base, encoded: encoded.value as Schema.Json }
  }
  return base
}

/** Handles one delivery to its end. Never fails: every outcome is settled on the message. @category dispatch @since 0.1.0 */
export const dispatch = (ctx: Context, d: Delivery): Effect.Effect<void> =>
  Effect.gen(function*() {
    const receivedAt = yield* Clock.currentTimeMillis
    const { subject } = ctx.names.parseTaskSubject(d.subject)
    const envelope = Envelope.fromHeaders(subject, d.headers, {
      now: receivedAt,
      fallbackId: `${d.stream}-${d.streamSequence}`,
      deliveryCount: d.deliveryCount
    })
    const taskId = envelope.id
    const attempt = d.deliveryCount
    const task = ctx.actor.tasks.get(subject)
    const policy = task ? Actor.policyFor(ctx.actor, task) : { retry: ctx.actor.retry, timeout: ctx.actor.timeout }
    const maxAttempts = Retry.maxAttempts(policy.retry)

    const auditRow = (step: AuditStep, extra: Partial<AuditRecord> = {}): AuditRecord => ({
      messageId: taskId,
      subject,
      actor: ctx.actor.name,
      pool: ctx.poolName,
      tenant: envelope.tenant,
      correlationId: envelope.correlationId,
      attempt,
      step,
      at: receivedAt,
      ...extra
    })
    const record = (base: Partial<TaskRecord> & Pick<TaskRecord, "status">): Effect.Effect<TaskRecord> =>
      Effect.map(Clock.currentTimeMillis, (now) => ({
        id: taskId,
        subject,
        tenant: envelope.tenant,
        attempt,
        updatedAt: now,
        ...base
      }))
    // Intermediate status writes (running, failed) are best effort: the audit row and the ack are
    // what the guarantees rest on.
    const putStatus = (r: TaskRecord) =>
      ctx.results.put(r).pipe(
        Effect.catch((e) => Effect.logWarning(`could not store the status of task ${taskId}: ${e.message}`))
      )
    // Except a final status (succeeded, dead, cancelled): clients wait for it, so it is stored
    // before the ack or term. If the broker is away (a restart), settling fails and the message
    // comes back; the redelivery settles it again (the dead letter is deduplicated, a done key
    // returns its stored outcome).
    const putFinal = (r: TaskRecord) =>
      ctx.results.put(r).pipe(Effect.retry({ schedule: Schedule.spaced("500 millis"), times: 2 }))

    // 1. keep the message alive while it waits for its partition and while it runs
    const heartbeatEvery = Duration.max(
      Option.getOrElse(Duration.divide(ctx.ackWait, 3), () => ctx.ackWait),
      Duration.millis(200)
    )
    const heartbeat = yield* d.working.pipe(
      Effect.repeat(Schedule.spaced(heartbeatEvery)),
      Effect.delay(heartbeatEvery),
      Effect.forkChild({ startImmediately: true })
    )

    const deadLetter = (reason: DeadLetter.Reason, error: unknown) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const err = storedError(error, task)
        const previous = yield* ctx.results.get(taskId).pipe(Effect.orElseSucceed(() => Option.none()))
        const history: Array<FailedAttempt> = [
          ...(Option.isSome(previous) ? previous.value.history ?? [] : []),
          { attempt, at: now, error: err }
        ]
        // publish first, deduplicated per stored message, then drop the original: never zero letters, never two
        const moved = yield* DeadLetters.move(ctx.js, ctx.names, {
          stream: d.stream,
          sequence: d.streamSequence,
          storedSubject: d.subject,
          headers: d.headers,
          body: d.data,
          storedAt: d.storedAt
        }, { taskId, subject, actor: ctx.actor.name, tenant: envelope.tenant, reason, error: err, attempts: attempt, history,
          deadLetteredAt: now }).pipe(
          // a full dead-letter stream: the message stays here and comes back (move logged and counted it)
          Effect.catchTag("DeadLetterStreamFull", () => Effect.as(d.nak(Duration.toMillis(DeadLetters.retryWhenFull)), false))
        )
        if (moved === false) return
        yield* putFinal(yield* record({ status: "dead", error: err, history, endedAt: now }))
        yield* ctx.audit.record(auditRow("dead_lettered", { at: now, error: err.message }))
        yield* d.term
        yield* Effect.logWarning(`task ${taskId} (${subject}) moved to dead letters: ${reason}: ${err.message}`)
      })

    const settle = <A>(effect: Effect.Effect<A, unknown>) =>
      effect.pipe(
        Effect.catchCause((cause) =>
          // the broker or the audit failed while settling: leave the message for redelivery
          Effect.logError(`could not settle task ${taskId}; it will be redelivered`, Cause.pretty(cause)).pipe(
            Effect.andThen(d.nak(1000))
          )
        )
      )

    // 2. route and decode
    if (!task) {
      const known = [...ctx.actor.tasks.keys()]
      return yield* settle(
        deadLetter("poison", new TaskError.UnknownSubject({ subject, actor: ctx.actor.name, known }))
      ).pipe(Effect.ensuring(Fiber.interrupt(heartbeat)))
    }
    const decoded = yield* Effect.result(Payload.decode(task.input, subject, d.data))
    if (decoded._tag === "Failure") {
      return yield* settle(deadLetter("poison", decoded.failure)).pipe(Effect.ensuring(Fiber.interrupt(heartbeat)))
    }
    const input = decoded.success

    // 3. cancelled, or already done
    const cancelled = (now: number) =>
      Effect.gen(function*() {
        yield* putFinal(yield* record({ status: "cancelled", endedAt: now }))
        yield* ctx.audit.record(auditRow("cancelled", { at: now }))
        yield* d.term
      })
    if (ctx.cancelled.has(taskId)) {
      return yield* settle(cancelled(receivedAt)).pipe(Effect.ensuring(Fiber.interrupt(heartbeat)))
    }

    const run = Effect.gen(function*() {
      const explicit = envelope.extra[TaskHeaders.IdempotencyKey] ?? task.idempotencyKey?.(input)
      const key = explicit !== undefined ? `${subject}:${explicit}` : taskId
      const owner = `${ctx.workerId}/${taskId}/${attempt}`
      const lease = Duration.sum(Duration.times(heartbeatEvery, 3), Duration.seconds(1))
      const claim = yield* ctx.idempotency.claim(key, owner, lease)

      if (claim._tag === "Held") {
        // another live run holds the key: come back when its lease would have run out
        const now = yield* Clock.currentTimeMillis
        yield* d.nak(Math.max(250, claim.heldUntil - now))
        return
      }
      if (claim._tag === "Done") {
        const now = yield* Clock.currentTimeMillis
        // The same message redelivered after its outcome was stored but before it was acked
        // (a crash between the two) still gets its one "succeeded" audit row.
        const stored = claim.outcome.output as { readonly taskId?: string; readonly output?: unknown } | null
        const ownRun = stored?.taskId === taskId
        const alreadyAudited = ownRun ? yield* ctx.audit.hasStep(taskId, "succeeded") : true
        // Stored but not audited: the run that stored it may still be settling (this copy came
        // back early, e.g. after a broker restart), so give it a lease to commit its own row.
        const settlesBy = claim.outcome.completedAt + Duration.toMillis(lease)
        if (ownRun && !alreadyAudited && now < settlesBy) {
          yield* d.nak(Math.max(250, settlesBy - now))
          return
        }
        yield* putFinal(yield* record({
          status: "succeeded",
          output: stored?.output as never,
          endedAt: now,
          ...(ownRun ? {} : { duplicateOf: key })
        }))
        yield* ctx.audit.record(auditRow(alreadyAudited ? "skipped_duplicate" : "succeeded", { at: now }))
        yield* d.ack
        return
      }

      // 4. run the handler; if the worker stops before it settles, free the key for the next delivery
      yield* Effect.addFinalizer((exit) =>
        Exit.hasInterrupts(exit) ? Effect.ignore(ctx.idempotency.release(key, owner)) : Effect.void
      )
      // earlier attempts' failures, carried into this run's records so the history is never overwritten
      const priorHistory: ReadonlyArray<FailedAttempt> = attempt > 1
        ? yield* ctx.results.get(taskId).pipe(
          Effect.map((r) => Option.isSome(r) ? r.value.history ?? [] : []),
          Effect.orElseSucceed(() => [])
        )
        : []
      const withHistory = priorHistory.length > 0 ? { history: priorHistory } : {}
      const startedAt = yield* Clock.currentTimeMillis
      // "running" is written only for a handler still running after `runningAfter`: most tasks end
      // sooner, and their final status follows at once. Uninterruptible once begun, and joined
      // before the final status, so it never overwrites it; a progress report already shows it.
      let progressed = false
      const runningWritten = yield* Effect.forkChild(
        Effect.sleep(runningAfter).pipe(
          Effect.andThen(Effect.uninterruptible(Effect.suspend(() =>
            progressed ? Effect.void : Effect.flatMap(record({ status: "running", startedAt, ...withHistory }), putStatus)
          )))
        ),
        { startImmediately: true }
      )
      // queued at once (the commit is not awaited), so it precedes this run's settling rows
      yield* Effect.forkDetach(Effect.ignore(ctx.audit.record(auditRow("started", { at: startedAt }))), {
        startImmediately: true
      })
      const renewLease = ctx.idempotency.renew(key, owner, lease).pipe(
        Effect.ignore,
        Effect.repeat(Schedule.spaced(heartbeatEvery)),
        Effect.delay(heartbeatEvery),
        Effect.forkChild
      )
      const leaseFiber = yield* renewLease

      const abort = new AbortController()
      const cancelSignal = yield* Deferred.make<never, TaskError.TaskCancelled>()
      ctx.running.set(taskId, (reason) => Deferred.doneUnsafe(cancelSignal, Effect.fail(reason)))
      // a cancel that came while this message waited for its partition or its claim
      if (ctx.cancelled.has(taskId)) Deferred.doneUnsafe(cancelSignal, Effect.fail(new TaskError.TaskCancelled({ taskId })))
      const handler = ctx.handlers[subject]!
      const request: Actor.Request<Task.Any> = {
        input,
        envelope: { ...envelope, attempt },
        taskId,
        attempt,
        maxAttempts,
        signal: abort.signal,
        progress: (value) =>
          Effect.suspend(() => {
            progressed = true
            return Effect.flatMap(record({ status: "running", startedAt, progress: value as never, ...withHistory }), putStatus)
          })
      }
      const timeoutMs = Duration.toMillis(policy.timeout)
      const exit = yield* Effect.suspend(() => handler(request)).pipe(
        Effect.timeoutOrElse({
          duration: policy.timeout,
          orElse: () => Effect.fail(new TaskError.TaskTimeout({ subject, timeoutMs }))
        }),
        Effect.raceFirst(Deferred.await(cancelSignal)),
        Effect.onExit(() => Effect.sync(() => abort.abort())),
        Effect.annotateLogs({ taskId, subject, attempt }),
        Effect.withSpan(`task ${subject}`, { attributes: { taskId, attempt, tenant: envelope.tenant } }),
        Effect.exit
      )
      ctx.running.delete(taskId)
      yield* Fiber.interrupt(leaseFiber)
      yield* Fiber.interrupt(runningWritten)

      // 5. settle, uninterruptibly
      yield* Effect.uninterruptible(Effect.gen(function*() {
        const endedAt = yield* Clock.currentTimeMillis
        const durationMs = endedAt - startedAt
        if (Exit.isSuccess(exit)) {
          // the JSON form (a Date becomes an ISO string): stored in SQLite and KV, read back by clients
          const encodedOutput = Payload.toJson(task.output, exit.value)
          const output = Exit.isSuccess(encodedOutput) ? Option.some(encodedOutput.value) : Option.none()
          if (Option.isNone(output)) {
            const error = TaskError.permanent(
              new Error(`the handler of ${subject} returned a value that does not match its output schema`)
            )
            yield* ctx.idempotency.release(key, owner)
            return yield* deadLetter("permanent", error)
          }
          yield* ctx.idempotency.complete(key, owner, { taskId, output: output.value })
          yield* Failpoint.hit("after-outcome-stored")
          // the audit row first, right after the outcome: a redelivery that finds the key done
          // waits for this row, and the status write below may wait out a broker restart
          yield* ctx.audit.record(auditRow("succeeded", { at: endedAt, durationMs }))
          yield* putFinal(
            yield* record({ status: "succeeded", output: output.value as never, startedAt, endedAt, ...withHistory })
          )
          yield* Failpoint.hit("before-ack")
          yield* d.ack
          return
        }
        yield* ctx.idempotency.release(key, owner)
        const failure = Cause.findErrorOption(exit.cause)
        // A cancel arrives as a TaskCancelled failure (from the race); an interruption that reaches
        // here came from the handler itself, and is retried like a defect. (A worker shutting
        // down never gets here: it interrupts this whole fiber, and the message is nak'ed.)
        const error: unknown = Option.isSome(failure)
          ? failure.value
          : new TaskError.HandlerDefect({
            subject,
            defect: Cause.hasInterruptsOnly(exit.cause) ? "the handler interrupted itself" : TaskError.describe(Cause.squash(exit.cause))
          })
        if (error instanceof TaskError.TaskCancelled) return yield* cancelled(endedAt)
        const err = storedError(error, task)
        const kind = TaskError.classify(error, task.permanent)
        if (kind !== "retryable") {
          yield* ctx.audit.record(auditRow("failed", { at: endedAt, durationMs, error: err.message }))
          return yield* deadLetter(kind, error)
        }
        const delay = Retry.nextDelay(policy.retry, attempt)
        if (Option.isNone(delay)) {
          yield* ctx.audit.record(auditRow("failed", { at: endedAt, durationMs, error: err.message }))
          return yield* deadLetter("exhausted", error)
        }
        const previous = yield* ctx.results.get(taskId).pipe(Effect.orElseSucceed(() => Option.none()))
        const history = [
          ...(Option.isSome(previous) ? previous.value.history ?? [] : []),
          { attempt, at: endedAt, error: err, retryDelayMs: delay.value }
        ]
        yield* putStatus(
          yield* record({ status: "failed", error: err, history, startedAt, endedAt, retryAt: endedAt + delay.value })
        )
        yield* ctx.audit.recordAll([
          auditRow("failed", { at: endedAt, durationMs, error: err.message }),
          auditRow("retry_scheduled", { at: endedAt, delayMs: delay.value, error: err.message })
        ])
        yield* d.nak(delay.value)
      }))
    })

    const partition = ctx.actor.partitionBy ? ctx.actor.partitionBy(input, envelope) : undefined
    const ordered = Effect.scoped(partition === undefined ? run : ctx.partitions.withKey(partition, run))
    yield* settle(ordered).pipe(
      // interrupted before settling (shutdown past its grace): hand the message back at once
      Effect.onInterrupt(() => d.nak(0)),
      Effect.ensuring(Fiber.interrupt(heartbeat))
    )
  })
