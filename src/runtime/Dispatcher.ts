/**
 * One actor's engine: what happens to its messages from the pull to the ack. The order of the
 * steps is the guarantees:
 *
 * 1. pull exactly what it can run (free slots plus a small prefetch; guarantee 6): a consumer with
 *    work is asked with `no_wait` batches, an empty one with a one-message long poll, high
 *    priority first; every message held is kept alive with in-progress acks (guarantee 5);
 * 2. read it (`Intake`): poison goes to dead letters with its reason (guarantees 3, 8);
 * 3. claim its idempotency key, for a batch of messages in one ledger call (one SQLite
 *    transaction that also records "started"): a key already done returns its stored outcome
 *    without running (guarantee 2), a key decided dead is moved to dead letters again, a key
 *    another run holds waits for its lease, heartbeated;
 * 4. run the handler in a fiber of its own; a cancel, its timeout, a lost lease or a shutdown
 *    interrupt it; a throw or defect fails only this message;
 * 5. settle, again in batches: the outcome, its audit row and the handler's own writes commit
 *    together (`Verdict` decides which), then the final status is stored, and only then the
 *    message is acked (guarantee 1); a failure naks with the retry policy's delay, or
 *    dead-letters (guarantee 4) — marked dead first, so it never runs again.
 *
 * The per-message path is synchronous code around one fiber (the handler's); time comes from
 * the `Clock`, so a TestClock drives leases, heartbeats and timeouts in unit tests.
 * @since 0.1.0
 */
import { Cause, Clock, Context, Deferred, Duration, Effect, Exit, Option, References, Schedule, type Scope, Tracer } from "effect"
import * as Actor from "../actor/Actor.ts"
import type { AuditRecord, AuditStep } from "../audit/AuditLog.ts"
import type { Delivery } from "../broker/Delivery.ts"
import type * as Pull from "../broker/Pull.ts"
import type { Names, Priority } from "../broker/Subjects.ts"
import type * as DeadLetter from "../dlq/DeadLetter.ts"
import type { Envelope } from "../envelope/Envelope.ts"
import * as Failpoint from "../failpoint/Failpoint.ts"
import type { Claim, Ledger, RunRef, Settled, Settlement, Sql } from "../ledger/Ledger.ts"
import type * as Slots from "../pool/Slots.ts"
import * as Retry from "../retry/Retry.ts"
import type { Results } from "../task/Results.ts"
import type * as Task from "../task/Task.ts"
import * as TaskError from "../task/TaskError.ts"
import type { FailedAttempt, StoredError, TaskRecord } from "../task/TaskRecord.ts"
import { CurrentMessage } from "../trace/CurrentMessage.ts"
import * as MessageLog from "../trace/MessageLog.ts"
import * as Tracing from "../trace/Tracing.ts"
import * as Intake from "./Intake.ts"
import * as MessageMetrics from "./MessageMetrics.ts"
import * as Status from "./Status.ts"
import * as Verdict from "./Verdict.ts"

/** What moving a message to dead letters needs. @category models @since 0.1.0 */
export interface DeadLetterRequest {
  readonly delivery: Delivery
  readonly subject: string
  readonly envelope: Envelope
  readonly actor: string
  readonly reason: DeadLetter.Reason
  readonly error: StoredError
  readonly attempts: number
  readonly history: ReadonlyArray<FailedAttempt>
}

/**
 * Work that belongs to a run's success but comes after its outcome is stored and before its ack:
 * a pipeline enqueues its next step here. `applies` is a header check, the only cost to messages
 * it does not apply to. `run` also runs when a redelivery finds the outcome stored already (a
 * crash came between the two), so it must be idempotent; a failure leaves the message for
 * redelivery, which runs it again.
 * @category models @since 0.1.0
 */
export interface AfterSucceeded {
  readonly applies: (envelope: Envelope) => boolean
  /** `output` is the stored (JSON) output. */
  readonly run: (job: Intake.Job, output: unknown) => Effect.Effect<void, unknown>
}

/** @category models @since 0.1.0 */
export interface Options {
  readonly workerId: string
  /** An actor, or an event group (a subscriber). */
  readonly actor: Actor.Runnable
  readonly handlers: Actor.AnyHandlers
  readonly names: Names
  readonly poolName: string
  readonly poolSlots: Slots.Slots
  readonly ledger: Ledger["Service"]
  readonly results: Results["Service"]
  /** Publishes the letter and waits for the stream's ack (the original is termed after). */
  readonly moveToDeadLetters: (request: DeadLetterRequest) => Effect.Effect<void, unknown>
  /** The consumers' real ack_wait. */
  readonly ackWaitMs: number
  /**
   * Messages asked for beyond the free slots, so the next batch is on its way while one runs.
   * Default a quarter of the concurrency, at most 64 (none below 4). An empty consumer has a
   * long poll open for as many (at least one), so new messages arrive in one hop as they come.
   */
  readonly prefetch?: number | undefined
  /** Most messages asked for in one pull. Default 256. */
  readonly maxBatch?: number | undefined
  /** Messages waiting for their partition (or a held key) before pulling stops. Default max(concurrency, 64). */
  readonly parkLimit?: number | undefined
  /** How long a handler runs before its status shows "running". Default 100 ms. */
  readonly runningAfterMs?: number | undefined
  /**
   * How long a run whose key was only checked (a ledger with `check`, a key that is the message
   * id) goes on before it claims the key after all. Default a quarter of ack_wait, at most 1 s:
   * JetStream hands an unacked message to another worker only after ack_wait.
   */
  readonly claimAfterMs?: number | undefined
  /**
   * The consumers it reads, in the order they are served. Default high, normal, low (an actor's
   * task consumers); an event group has one (its durable consumer, passed as "normal").
   */
  readonly priorities?: ReadonlyArray<Priority> | undefined
  /**
   * Prefix of its idempotency keys by the delivery's stream sequence: an event group's keys are
   * its own (one event, many groups), and a replay gives the events from its start a new scope.
   */
  readonly keyScope?: ((streamSequence: number) => string) | undefined
  /** Whether it writes task status records (tasks) or none (events). Default true. */
  readonly statuses?: boolean | undefined
  /** Runs before the ack of a succeeded message it applies to (pipelines). */
  readonly afterSucceeded?: AfterSucceeded | undefined
}

/** Counters, for `Worker.state` and tests. @category models @since 0.1.0 */
export interface State {
  /** Handlers running now. */
  readonly running: number
  /** Messages held: waiting to start, for their partition, being claimed, running, settling. */
  readonly held: number
  readonly paused: boolean
}

/** @category models @since 0.1.0 */
export interface Dispatcher {
  readonly actor: Actor.Runnable
  /** Runs the actor's consume side until the scope closes; fails when a feed fails (the supervisor restarts it). */
  readonly connect: (
    makeFeed: (priority: Priority, listener: Pull.Listener) => Effect.Effect<Pull.Feed, never, Scope.Scope>
  ) => Effect.Effect<never, Pull.PullFailed, Scope.Scope>
  /** Heartbeats, timeouts, lease renewals, "running" statuses: call every ~100 ms. */
  readonly tick: () => void
  /** The connection came back: the pulls in flight were lost with the old one. */
  readonly reconnected: () => void
  /** A client cancelled the task: interrupt it if it runs here. */
  readonly cancel: (taskId: string) => void
  readonly setPaused: (paused: boolean) => void
  readonly state: () => State
  /** Stops pulling and hands back every message not started yet. */
  readonly stop: () => void
  /** Interrupts the runs still going (past the grace period): they are handed back. */
  readonly abandon: () => void
  /** Resolves when nothing is held any more. */
  readonly idle: Effect.Effect<void>
}

/** One message held by the dispatcher, from the pull to its ack, nak or term. */
interface Held {
  readonly delivery: Delivery
  beatAt: number
  job: Intake.Job | undefined
  /** Holds an actor slot and a pool slot. */
  slot: boolean
  /** Holds its partition key (running, claiming, or waiting for a held idempotency key). */
  ownsPartition: boolean
  /** Waiting for a held idempotency key until this time. */
  retryAt: number | undefined
  /** False when its key was checked, not claimed: the run claims it only if it goes on. */
  claimed: boolean
  run: Run | undefined
}

interface Run {
  readonly held: Held
  readonly job: Intake.Job
  /** `claimed: false` until a run whose key was only checked claims it (see `claimAfterMs`). */
  ref: RunRef
  /** The rows an unclaimed run's claim would have written ("started"): they go with its first write. */
  deferred: ReadonlyArray<AuditRecord>
  /** Its late claim is being written: its settlement waits for the answer. */
  claiming: boolean
  afterClaim: (() => void) | undefined
  readonly startedAt: number
  readonly deadline: number
  readonly timeoutMs: number
  readonly policy: Retry.Policy
  renewAt: number
  statusWritten: boolean
  stopped: Verdict.StopReason | undefined
  interrupt: (() => void) | undefined
  abort: AbortController | undefined
  readonly writes: Array<(sql: Sql) => void>
  /** Earlier attempts' failures, read when the run starts (attempt > 1). */
  prior: Promise<ReadonlyArray<FailedAttempt> | undefined> | undefined
  /** The runs of one batch handler call (this one included): they stop, fail and succeed together. */
  group: ReadonlyArray<Run> | undefined
  /** The span of the handler run, when tracing is on. */
  span: Tracer.Span | undefined
}

interface Pending {
  readonly settlement: Settlement
  readonly then: (settled: Settled) => void
  /** Gives up: the message is handed back for redelivery. */
  readonly failed: () => void
  /** Times the ledger failed to store it. */
  failures: number
}

// A settlement the ledger could not store (a full disk, a locked or unwritable file) is tried again
// with its message held and heartbeated, 1 s, 2 s, ... 30 s apart, for about three minutes before
// the message is handed back: its handler has run, and a redelivery would run it again.
const settleRetryMs = (failures: number) => Math.min(1000 * 2 ** (failures - 1), 30_000)
const settleAttempts = 10

interface FeedState {
  readonly priority: Priority
  readonly feed: Pull.Feed
  /** unknown: not asked yet or lost; active: had messages at last look; empty: long-polling. */
  state: "unknown" | "active" | "empty"
  lastPending: number
}

/** What a run's request calls back into: the dispatcher's side, shared by all its runs. */
interface RunSide {
  readonly isRunning: (run: Run) => boolean
  readonly progress: (run: Run, value: unknown) => Effect.Effect<void>
  readonly atCommit: (run: Run, write: (sql: Sql) => void) => Effect.Effect<void>
}

/**
 * The request a handler gets. Its data are fields; `signal`, `progress` and `atCommit` are made
 * when first read, so a handler that does not use them costs no closure or AbortController per
 * message (a worker may hold tens of thousands in flight).
 */
class RunRequest implements Actor.Request<Task.Any> {
  readonly input: unknown
  readonly envelope: Envelope
  readonly taskId: string
  readonly attempt: number
  readonly idempotencyKey: string
  constructor(private readonly run: Run, private readonly side: RunSide, readonly maxAttempts: number | undefined) {
    const job = run.job
    this.input = job.input
    this.envelope = job.envelope
    this.taskId = job.taskId
    this.attempt = job.attempt
    this.idempotencyKey = job.key
  }
  get signal(): AbortSignal {
    const run = this.run
    run.abort ??= new AbortController()
    if (!this.side.isRunning(run)) run.abort.abort()
    return run.abort.signal
  }
  get progress() {
    return (value: unknown) => this.side.progress(this.run, value)
  }
  get atCommit() {
    return (write: (sql: Sql) => void) => this.side.atCommit(this.run, write)
  }
}

const PRIORITIES: ReadonlyArray<Priority> = ["high", "normal", "low"]
/** Reading a task's history again: 200 ms doubling to 10 s, about a minute in all. */
const historyRetry = Schedule.exponential("200 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(10)))),
  Schedule.upTo({ times: 10 })
)
/** How often claimed events waiting for a batch handler's batch look again. */
const batchLingerMs = 25
/** The longest claimed events wait for their batch to fill while more are on their way. */
const batchWaitMaxMs = 1000
/** How long a message waits before trying a full dead-letter stream again. */
const deadLetterStreamFullRetryMs = 30_000
const rank = (p: Priority | "delayed") => (p === "high" ? 0 : p === "low" ? 2 : 1)

/**
 * Builds the dispatcher of one actor. Its fibers and subscriptions live in the scope.
 * @category constructors @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<Dispatcher, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { actor, ledger, results, poolSlots, names, keyScope } = options
    const context = yield* Effect.context<never>()
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const concurrency = actor.concurrency
    const prefetch = options.prefetch ?? Math.min(64, Math.floor(concurrency / 4))
    const maxBatch = Math.max(options.maxBatch ?? 256, actor.batch ?? 0)
    const parkLimit = options.parkLimit ?? Math.max(concurrency, 64)
    const runningAfterMs = options.runningAfterMs ?? 100
    const priorities = options.priorities ?? PRIORITIES
    const statuses = options.statuses !== false
    const isGroup = actor._tag === "Subscriber"
    const beatEvery = Math.max(options.ackWaitMs / 3, 200)
    const leaseMs = 3 * beatEvery + 1000
    const claimAfterMs = options.claimAfterMs ?? Math.min(1000, options.ackWaitMs / 4)
    /**
     * Whether a message's key is only checked before its run: a first delivery whose key is its
     * own id. A redelivery is claimed first: it may be a copy another worker still runs (a broker
     * restarted or failed over can redeliver what was in flight before ack_wait passed).
     */
    const onlyCheck = (job: Intake.Job) => !job.keyed && job.attempt === 1
    /** After a reconnect every key is claimed first for a while (see `reconnected`). */
    let claimFirstUntil = 0
    const checkFirst = ledger.check !== undefined
    const runEffect = Effect.runForkWith(context)
    const recordRun = MessageMetrics.recorder(context, actor.name)
    const log = (effect: Effect.Effect<void>) => {
      runEffect(effect)
    }
    const messageKind = isGroup ? "event" : "task"
    const aboutJob = (job: { readonly subject: string; readonly envelope: Envelope; readonly attempt: number }): MessageLog.About =>
      ({ actor: actor.name, subject: job.subject, envelope: job.envelope, attempt: job.attempt })
    /** A line about one message: it carries the message's annotations (id, subject, tenant, trace...). */
    const logAbout = (about: MessageLog.About | undefined, effect: Effect.Effect<void>) =>
      log(about === undefined ? Effect.annotateLogs(effect, { actor: actor.name }) : MessageLog.annotate(about)(effect))
    // tracing off (Effect's native tracer): undefined, and no span is made for any message
    const spans = Tracing.messageSpans(context, clock)
    // the handler fiber starts from a context of its own: the message's log annotations (over the
    // program's), the message itself (for the client), the handle span (tracing on)
    const programAnnotations = Context.get(context, References.CurrentLogAnnotations)
    const mergeAnnotations = Object.keys(programAnnotations).length > 0
    // the services the handlers were built with join the handler fibers' context here, once
    const unprovided = Actor.unprovidedOf(options.handlers)
    const handlers = unprovided?.handlers ?? options.handlers
    const runContext = unprovided === undefined ? context : Context.merge(context, unprovided.context)
    const handlerContext = (annotations: Record<string, unknown>, message: Envelope | undefined, span: Tracer.Span | undefined) => {
      let c = Context.add(runContext, References.CurrentLogAnnotations, mergeAnnotations ? { ...programAnnotations, ...annotations } : annotations)
      if (message !== undefined) c = Context.add(c, CurrentMessage, message)
      if (span !== undefined) c = Context.add(c, Tracer.ParentSpan, span)
      return c
    }

    // ------------------------------------------------------------------------------------------
    // state

    const held = new Set<Held>()
    const ready: [Array<Held>, Array<Held>, Array<Held>] = [[], [], []]
    let readyCount = 0
    const parked = new Map<string, Array<Held>>()
    let parkedCount = 0
    const activePartitions = new Set<string>()
    const waiting = new Set<Held>()
    const running = new Map<string, Run>()
    /** The keys of the messages being claimed, run or settled here: a second message of one waits. */
    const activeKeys = new Map<string, Held>()
    const cancelled = new Set<string>()
    let slotsUsed = 0
    let feeds: Array<FeedState> = []
    let paused = false
    let stopped = false
    let claimQueue: Array<Held> = []
    let settleQueue: Array<Pending> = []
    /** Settlements waiting to be tried again, and when. */
    let settleRetries: Array<Pending> = []
    let settleRetryAt = 0
    let flushScheduled = false
    let waitingForPool = false
    let idleWaiters: Array<() => void> = []

    // ------------------------------------------------------------------------------------------
    // holding and letting go

    const hold = (delivery: Delivery): Held => {
      const h: Held = {
        delivery,
        beatAt: now(),
        job: undefined,
        slot: false,
        ownsPartition: false,
        retryAt: undefined,
        claimed: true,
        run: undefined
      }
      held.add(h)
      return h
    }

    const takeSlot = (h: Held): boolean => {
      if (h.slot) return true
      if (slotsUsed >= concurrency) return false
      if (poolSlots.tryTake(1) === 0) {
        if (!waitingForPool) {
          waitingForPool = true
          poolSlots.onceFree(() => {
            waitingForPool = false
            pump()
          })
        }
        return false
      }
      slotsUsed += 1
      h.slot = true
      return true
    }

    const giveSlot = (h: Held) => {
      if (!h.slot) return
      h.slot = false
      slotsUsed -= 1
      poolSlots.releaseUnsafe(1)
    }

    const releasePartition = (h: Held) => {
      if (!h.ownsPartition || h.job?.partition === undefined) return
      h.ownsPartition = false
      const key = h.job.partition
      const queue = parked.get(key)
      const next = queue?.shift()
      if (queue !== undefined && queue.length === 0) parked.delete(key)
      if (next === undefined) {
        activePartitions.delete(key)
        return
      }
      // the next message of this key goes first in line: it has waited longest
      parkedCount -= 1
      next.ownsPartition = true
      ready[rank(next.job!.priority)]!.unshift(next)
      readyCount += 1
    }

    /** The message is done here: acknowledge as told, free what it held, and look for more. */
    const finish = (h: Held, how: "ack" | "term" | "nak" | "drop", delayMs?: number) => {
      if (!held.delete(h)) return
      if (h.job !== undefined && activeKeys.get(h.job.key) === h) activeKeys.delete(h.job.key)
      if (how === "ack") h.delivery.ack()
      else if (how === "term") h.delivery.term()
      else if (how === "nak") h.delivery.nak(delayMs ?? 0)
      // "drop": another worker has it now (its lease), or the message is left for redelivery
      h.run?.abort?.abort()
      giveSlot(h)
      releasePartition(h)
      if (held.size === 0 && idleWaiters.length > 0) {
        const ws = idleWaiters
        idleWaiters = []
        for (const w of ws) w()
      }
      pump()
    }

    // ------------------------------------------------------------------------------------------
    // audit rows and statuses

    const row = (job: Intake.Job | undefined, fallback: { readonly subject: string; readonly envelope: Envelope; readonly attempt: number }, step: AuditStep, extra: Partial<AuditRecord> = {}): AuditRecord => {
      const subject = job?.subject ?? fallback.subject
      const envelope = job?.envelope ?? fallback.envelope
      return {
        messageId: envelope.id,
        subject,
        actor: actor.name,
        pool: options.poolName,
        tenant: envelope.tenant,
        correlationId: envelope.correlationId,
        attempt: job?.attempt ?? fallback.attempt,
        step,
        at: now(),
        ...extra
      }
    }
    const jobRow = (job: Intake.Job, step: AuditStep, extra: Partial<AuditRecord> = {}) => row(job, job, step, extra)

    /** Stores a status record; a final one is retried, then `done(false)`. */
    const putStatus = (record: TaskRecord, about: MessageLog.About, done: (ok: boolean) => void, attempts = 3) => {
      if (!statuses) return done(true)
      results.submit(record, (error) => {
        if (error === undefined) return done(true)
        if (attempts > 1) return void setTimeout(() => putStatus(record, about, done, attempts - 1), 500)
        logAbout(about, Effect.logWarning(`could not store the ${record.status} status of task ${record.id}: ${error.message}`))
        done(false)
      })
    }

    /**
     * Earlier attempts' failures from the stored status; undefined when it cannot be read. Tried
     * for up to about a minute (the message stays held and heartbeated meanwhile): a history
     * written after a failed read would have lost an attempt.
     */
    const readHistory = (taskId: string): Promise<ReadonlyArray<FailedAttempt> | undefined> =>
      !statuses ? Promise.resolve([]) : Effect.runPromiseWith(context)(
        results.get(taskId).pipe(
          Effect.retry({ schedule: historyRetry }),
          Effect.map((r) => (r._tag === "Some" ? r.value.history ?? [] : [])),
          Effect.orElseSucceed(() => undefined)
        )
      )

    // ------------------------------------------------------------------------------------------
    // dead letters

    /**
     * Moves a message to dead letters: letter, final status, audit row, then term. A failure
     * leaves the message for redelivery; its key is already marked dead (when it had one), so the
     * redelivery finishes the move instead of running it again (issue: decided dead is final).
     */
    const deadLetter = (
      h: Held,
      what: { readonly subject: string; readonly envelope: Envelope; readonly attempt: number },
      reason: DeadLetter.Reason,
      error: StoredError
    ) => {
      const job = h.job
      const about = aboutJob(what)
      const span = spans?.step("dead-letter", about, h.run?.span, { "msgsys.dead_letter.reason": reason, "error.message": error.message })
      const effect = Effect.gen(function*() {
        const prior = yield* Effect.promise(() => readHistory(what.envelope.id))
        // never overwrite the history with less: without it, try again later
        if (prior === undefined) return yield* Effect.fail(new Error("could not read the task's attempt history"))
        // the step's time is the move's: the DLQ worker may take the letter (and record its own
        // step) before this step commits, and the trail is read in time order
        const movedAt = now()
        const history: Array<FailedAttempt> = [...prior, { attempt: what.attempt, at: movedAt, error }]
        yield* options.moveToDeadLetters({
          delivery: h.delivery,
          subject: what.subject,
          envelope: what.envelope,
          actor: actor.name,
          reason,
          error,
          attempts: what.attempt,
          history
        })
        const stored = yield* Effect.callback<boolean>((resume) => {
          putStatus(Status.dead({ taskId: what.envelope.id, subject: what.subject, envelope: what.envelope, attempt: what.attempt }, now(), error, history), about, (ok) => resume(Effect.succeed(ok)))
        })
        if (!stored) return yield* Effect.fail(new Error("could not store the dead status"))
        yield* ledger.settle([{ _tag: "Record", audit: [row(job, what, "dead_lettered", { error: error.message, at: movedAt })] }])
        yield* Effect.logWarning(`${messageKind} ${what.envelope.id} (${what.subject}) moved to dead letters: ${reason}: ${error.message}`)
      })
      runEffect(MessageLog.annotate(about)(effect)).addObserver((exit) => {
        if (span !== undefined) spans!.end(span, exit)
        if (Exit.isSuccess(exit)) return finish(h, "term")
        // a full dead-letter stream: the message waits in its stream; the move logged and counted it
        if (Cause.findErrorOption(exit.cause).pipe(Option.exists((e) => (e as { _tag?: string })?._tag === "DeadLetterStreamFull"))) {
          return finish(h, "nak", deadLetterStreamFullRetryMs)
        }
        logAbout(about, Effect.logError(
          `could not move ${messageKind} ${what.envelope.id} (${what.subject}) to dead letters; it stays in its stream and is tried again`,
          exit.cause
        ))
        finish(h, "nak", 5000)
      })
    }

    // ------------------------------------------------------------------------------------------
    // settling

    const scheduleFlush = () => {
      if (flushScheduled) return
      flushScheduled = true
      queueMicrotask(flush)
    }

    const settle = (settlement: Settlement, then: (settled: Settled) => void, failed: () => void) => {
      settleQueue.push({ settlement, then, failed, failures: 0 })
      scheduleFlush()
    }

    /** The ledger could not be written: the message comes back, to be settled again. */
    const retryLater = (h: Held, what: string) => () => {
      logAbout(
        h.job === undefined ? undefined : aboutJob(h.job),
        Effect.logError(`could not ${what} for ${messageKind} ${h.job?.taskId ?? `#${h.delivery.streamSequence}`}; it will be redelivered`)
      )
      finish(h, "nak", 1000)
    }

    /**
     * The outcome (and status) of a succeeded message is stored: the `afterSucceeded` hook when
     * the message asks for one, then the ack; a failed hook leaves it for redelivery.
     */
    const ackSucceeded = (h: Held, output: unknown, duplicate = false) => {
      const ack = () => {
        if (!duplicate) Failpoint.hitUnsafe("before-ack")
        finish(h, "ack")
      }
      const hook = options.afterSucceeded
      const job = h.job!
      if (hook === undefined || !hook.applies(job.envelope)) return ack()
      runEffect(hook.run(job, output)).addObserver((exit) => {
        if (Exit.isSuccess(exit)) return ack()
        const delayMs = Math.min(1000 * 2 ** Math.max(0, job.attempt - 1), 30_000)
        log(Effect.logWarning(`task ${job.taskId}: its work after success failed; it is redelivered in ${delayMs} ms`, exit.cause))
        finish(h, "nak", delayMs)
      })
    }

    /** After a run's outcome is stored: its final status (tasks that keep one), then the ack. */
    const afterStored = (run: Run, output: unknown) => {
      const { job, held: h } = run
      Failpoint.hitUnsafe("after-commit")
      if (!job.storeResult || !statuses) return ackSucceeded(h, output)
      const put = (history: ReadonlyArray<FailedAttempt> | undefined) =>
        putStatus(Status.succeeded(job, now(), output, { startedAt: run.startedAt, history }), aboutJob(job), (ok) => {
          if (!ok) return finish(h, "nak", 1000) // the redelivery finds the key done and stores it again
          ackSucceeded(h, output)
        })
      if (run.prior === undefined) return put(undefined)
      // the earlier attempts' history goes with the result: a read that failed is tried again
      // before the record is written without it (never overwrite the history with less)
      run.prior.then((prior) =>
        prior !== undefined ? put(prior) : readHistory(job.taskId).then((again) => {
          if (again === undefined) {
            logAbout(aboutJob(job), Effect.logWarning(`task ${job.taskId}: its attempt history could not be read; its result is stored without it`))
          }
          put(again)
        })
      )
    }

    /** A settlement's rows, after the rows an unclaimed run's claim would have written. */
    const withDeferred = (run: Run, rows: Array<AuditRecord>): Array<AuditRecord> =>
      run.deferred.length === 0 ? rows : [...run.deferred, ...rows]

    const onSucceeded = (run: Run, output: unknown) => {
      const endedAt = now()
      const runs = run.group ?? [run]
      // a batch is settled together: every event's key, its rows and the handler's writes, or none
      const settlement: Settlement = run.group === undefined
        ? {
          _tag: "Complete",
          run: run.ref,
          outcome: { taskId: run.job.taskId, output },
          audit: withDeferred(run, [jobRow(run.job, "succeeded", { durationMs: endedAt - run.startedAt })]),
          writes: run.writes
        }
        : {
          _tag: "CompleteAll",
          runs: runs.map((r) => r.ref),
          outcomes: runs.map((r) => ({ taskId: r.job.taskId, output })),
          audit: runs.flatMap((r) => withDeferred(r, [jobRow(r.job, "succeeded", { durationMs: endedAt - r.startedAt })])),
          writes: run.writes
        }
      settle(
        settlement,
        (settled) => {
          if (settled._tag === "LeaseLost") {
            const line = Effect.logWarning(`${runs.map((r) => r.job.taskId).join(", ")}: another worker took the key over; the outcome was not stored here`)
            log(runs.length === 1
              ? MessageLog.annotate(aboutJob(run.job))(line)
              : Effect.annotateLogs(line, MessageLog.batchAnnotations(actor.name, run.job.subject, runs.map((r) => r.job.taskId))))
            for (const r of runs) finish(r.held, "drop")
            return
          }
          if (settled._tag === "WritesFailed") {
            const error = new TaskError.HandlerDefect({
              subject: run.job.subject,
              defect: `its atCommit write failed: ${TaskError.describe(settled.cause)}`
            })
            for (const r of runs) onFailed(r, Verdict.afterFailure(error, r.job.task, r.policy, r.job.attempt))
            return
          }
          for (const r of runs) afterStored(r, output)
        },
        () => {
          for (const r of runs) retryLater(r.held, "store the outcome")()
        }
      )
    }

    const onFailed = (run: Run, verdict: Verdict.Verdict) => {
      const { job, held: h } = run
      const endedAt = now()
      const durationMs = endedAt - run.startedAt
      switch (verdict._tag) {
        case "Succeeded":
          return onSucceeded(run, verdict.output)
        case "LeaseLost":
          logAbout(aboutJob(job), Effect.logWarning(`${messageKind} ${job.taskId}: its lease was lost to another worker; the handler was stopped`))
          return finish(h, "drop")
        case "Stopped":
          return settle({ _tag: "Release", run: run.ref, audit: withDeferred(run, []) }, () => finish(h, "nak", 0), () => finish(h, "nak", 0))
        case "Cancelled":
          return settle(
            { _tag: "Release", run: run.ref, audit: withDeferred(run, [jobRow(job, "cancelled")]) },
            () => putStatus(Status.cancelled(job, now()), aboutJob(job), () => finish(h, "term")),
            retryLater(h, "record the cancel")
          )
        case "Retry": {
          const about = aboutJob(job)
          // Info: a retry is the policy at work; what runs out of attempts is a warning (dead letters)
          logAbout(about, Effect.logInfo(
            `${messageKind} ${job.taskId} (${job.subject}) failed on attempt ${job.attempt}: ${verdict.error.message}; ` +
              `retrying in ${verdict.delayMs} ms`
          ))
          const span = spans?.step("retry", about, run.span, { "msgsys.retry.delay_ms": verdict.delayMs, "error.message": verdict.error.message })
          const retried = (exit: Exit.Exit<unknown, unknown>) => {
            if (span !== undefined) spans!.end(span, exit)
          }
          return settle(
            {
              _tag: "Release",
              run: run.ref,
              audit: withDeferred(run, [
                jobRow(job, "failed", { durationMs, error: verdict.error.message }),
                jobRow(job, "retry_scheduled", { delayMs: verdict.delayMs, error: verdict.error.message })
              ])
            },
            () => {
              // the status first, then the nak: a quick retry must not be overwritten by this "failed",
              // and the next attempt must find this one in the history
              readHistory(job.taskId).then((prior) => {
                const nak = () => {
                  retried(Exit.void)
                  finish(h, "nak", verdict.delayMs)
                }
                if (prior === undefined) {
                  logAbout(about, Effect.logWarning(`task ${job.taskId}: its attempt history could not be read; attempt ${job.attempt} is not in it`))
                  return nak()
                }
                const history = [...prior, { attempt: job.attempt, at: endedAt, error: verdict.error, retryDelayMs: verdict.delayMs }]
                if (!statuses) return nak()
                results.submit(Status.failed(job, now(), verdict.error, history, run.startedAt, endedAt + verdict.delayMs), nak)
              })
            },
            () => {
              retried(Exit.fail("the failure could not be recorded"))
              retryLater(h, "record the failure")()
            }
          )
        }
        case "Dead":
          return settle(
            {
              _tag: "MarkDead",
              run: run.ref,
              verdict: { reason: verdict.reason, error: verdict.error },
              audit: withDeferred(run, [jobRow(job, "failed", { durationMs, error: verdict.error.message })])
            },
            () => deadLetter(h, job, verdict.reason, verdict.error),
            retryLater(h, "record the failure")
          )
      }
    }

    const flush = () => {
      flushScheduled = false
      if (claimQueue.length > 0) {
        const batch = claimQueue
        claimQueue = []
        claim(batch)
      }
      if (settleQueue.length > 0) {
        const batch = settleQueue
        settleQueue = []
        runEffect(ledger.settle(batch.map((p) => p.settlement))).addObserver((exit) => {
          if (Exit.isFailure(exit)) {
            const again: Array<Pending> = []
            const givenUp: Array<Pending> = []
            for (const p of batch) (!stopped && ++p.failures < settleAttempts ? again : givenUp).push(p)
            const retryMs = settleRetryMs(Math.max(0, ...again.map((p) => p.failures)))
            log(Effect.annotateLogs(
              Effect.logError(
                again.length === 0
                  ? "could not settle a batch of messages; they will be redelivered"
                  : `could not settle a batch of messages; trying again in ${retryMs} ms (they stay held: their handlers ran)`,
                exit.cause
              ),
              { actor: actor.name, batch: batch.length }
            ))
            // what is given up on says so again, with its own annotations
            for (const p of givenUp) p.failed()
            if (again.length > 0) {
              settleRetries.push(...again)
              settleRetryAt = now() + retryMs
            }
            return
          }
          for (let i = 0; i < batch.length; i++) batch[i]!.then(exit.value[i]!)
        })
      }
    }

    // ------------------------------------------------------------------------------------------
    // claiming and running

    /**
     * The rows a claim writes: "started", and on a first attempt "enqueued" (written by the
     * worker, from the message's creation time, whichever client sent it; attempt 0: before any run).
     */
    const claimRows = (job: Intake.Job): Array<AuditRecord> => {
      const audit: Array<AuditRecord> = []
      if (job.attempt === 1) audit.push(jobRow(job, "enqueued", { payload: job.input, at: job.envelope.createdAt, attempt: 0 }))
      audit.push(jobRow(job, "started", job.attempt === 1 ? {} : { payload: job.input }))
      return audit
    }

    /**
     * Claims the keys of a batch before their runs start. A key that is the message id is only
     * checked (a read): such a run claims it only if it goes on past `claimAfterMs`, so a short
     * run writes once, when it settles. A given key (shared by different messages) is claimed.
     */
    const claim = (all: ReadonlyArray<Held>) => {
      // a second message of a key this worker is already on (a redelivery, a copy) waits for the
      // first to end: the ledger cannot tell them apart while the first has only checked its key
      const batch: Array<Held> = []
      for (const h of all) {
        const key = h.job!.key
        const other = activeKeys.get(key)
        if (other !== undefined && other !== h && held.has(other)) {
          giveSlot(h)
          h.retryAt = now() + beatEvery
          waiting.add(h)
          continue
        }
        activeKeys.set(key, h)
        batch.push(h)
      }
      if (batch.length === 0) return
      const checkOnly = checkFirst && now() >= claimFirstUntil
      const checked = checkOnly ? batch.filter((h) => onlyCheck(h.job!)) : []
      const claimed = checked.length === batch.length ? [] : checked.length === 0 ? batch : batch.filter((h) => !onlyCheck(h.job!))
      if (claimed.length > 0) {
        const requests = claimed.map((h) => ({ run: refOf(h.job!), leaseMs, audit: claimRows(h.job!) }))
        claimsInFlight += 1
        runEffect(ledger.claim(requests)).addObserver((exit) => {
          claimsInFlight -= 1
          answered(claimed, exit, true)
        })
      }
      if (checked.length > 0) {
        claimsInFlight += 1
        runEffect(ledger.check!(checked.map((h) => refOf(h.job!)))).addObserver((exit) => {
          claimsInFlight -= 1
          answered(checked, exit, false)
        })
      }
    }

    /** What the ledger answered for a batch: run, reply with the stored outcome, dead-letter or wait. */
    const answered = (batch: ReadonlyArray<Held>, exit: Exit.Exit<ReadonlyArray<Claim>, unknown>, wrote: boolean) => {
      if (Exit.isFailure(exit)) {
        log(Effect.annotateLogs(
          Effect.logError("could not claim a batch of messages; they will be redelivered", exit.cause),
          MessageLog.batchAnnotations(actor.name, undefined, batch.map((h) => h.job!.taskId))
        ))
        for (const h of batch) finish(h, "nak", 1000)
        return
      }
      const claimed: Array<Held> = []
      for (let i = 0; i < batch.length; i++) {
        const h = batch[i]!
        if (!held.has(h)) continue
        const answer = exit.value[i]!
        switch (answer._tag) {
          case "Claimed":
            h.claimed = wrote
            claimed.push(h)
            break
          case "Done":
            alreadyDone(h, answer.outcome.output as { readonly taskId?: string; readonly output?: unknown } | null, answer.outcome.completedAt)
            break
          case "Dead": {
            const verdict = answer.verdict as { readonly reason?: DeadLetter.Reason; readonly error?: StoredError } | null
            deadLetter(h, h.job!, verdict?.reason ?? "exhausted", verdict?.error ?? { tag: "Dead", message: "decided dead earlier" })
            break
          }
          case "Held":
            // another live run holds the key: keep the message (heartbeated) and ask again when
            // its lease ends, or sooner in case it finishes first
            giveSlot(h)
            h.retryAt = Math.min(answer.heldUntil, now() + beatEvery)
            waiting.add(h)
            break
        }
      }
      if (actor.batch === undefined) for (const h of claimed) start([h])
      else {
        for (const h of claimed) batchBuffer.push(h)
        startBatches()
      }
      pump()
    }

    // A batch handler gets full batches: claimed events wait here until `batch` of one subject are
    // there, or nothing more is on its way (no pull in flight, nothing being claimed), or a short
    // linger passed.
    let batchBuffer: Array<Held> = []
    let claimsInFlight = 0
    let lingerTimer: ReturnType<typeof setTimeout> | undefined
    let bufferedSince = 0
    const startBatches = () => {
      if (paused || batchBuffer.length === 0 || actor.batch === undefined) return
      const size = actor.batch
      const nothingComing = claimQueue.length === 0 && claimsInFlight === 0 &&
        feeds.every((f) => f.state === "empty" || f.feed.outstanding() === 0)
      const t = Date.now()
      if (bufferedSince === 0) bufferedSince = t
      // what is known to be on its way is waited for, up to a limit; a linger alone cuts a batch
      // short only when nothing is
      const waitedEnough = t - bufferedSince >= batchWaitMaxMs
      const groups = batchesOf(batchBuffer, size)
      const ready = waitedEnough || nothingComing ? groups : groups.filter((g) => g.length >= size)
      if (ready.length === 0) {
        lingerTimer ??= setTimeout(() => {
          lingerTimer = undefined
          startBatches()
        }, batchLingerMs)
        return
      }
      const started = new Set(ready.flat())
      batchBuffer = batchBuffer.filter((h) => !started.has(h))
      for (const g of ready) start(g.filter((h) => held.has(h)))
      if (batchBuffer.length === 0) {
        bufferedSince = 0
        if (lingerTimer !== undefined) {
          clearTimeout(lingerTimer)
          lingerTimer = undefined
        }
      } else if (lingerTimer === undefined) {
        lingerTimer = setTimeout(() => {
          lingerTimer = undefined
          startBatches()
        }, batchLingerMs)
      }
    }

    /** Claimed messages in batches of one subject, at most `size` each, in arrival order. */
    const batchesOf = (hs: ReadonlyArray<Held>, size: number): ReadonlyArray<ReadonlyArray<Held>> => {
      const bySubject = new Map<string, Array<Array<Held>>>()
      for (const h of hs) {
        const chunks = bySubject.get(h.job!.subject) ?? []
        const last = chunks.at(-1)
        if (last !== undefined && last.length < size) last.push(h)
        else chunks.push([h])
        bySubject.set(h.job!.subject, chunks)
      }
      return [...bySubject.values()].flat()
    }

    const refOf = (job: Intake.Job): RunRef => ({
      key: job.key,
      owner: `${options.workerId}/${job.taskId}/${job.attempt}`,
      sequence: job.delivery.streamSequence
    })

    /** The key is done: reply with the stored outcome, without running again (guarantee 2). */
    const alreadyDone = (h: Held, stored: { readonly taskId?: string; readonly output?: unknown } | null, completedAt: number) => {
      const job = h.job!
      const ownRun = stored?.taskId === job.taskId
      const reply = (audited: boolean) =>
        settle(
          { _tag: "Record", audit: [jobRow(job, audited ? "skipped_duplicate" : "succeeded")] },
          () => {
            const output = stored?.output ?? null
            if (!job.storeResult) return ackSucceeded(h, output, true)
            const record = Status.succeeded(job, now(), output, ownRun ? {} : { duplicateOf: job.key })
            putStatus(record, aboutJob(job), (ok) => ok ? ackSucceeded(h, output, true) : finish(h, "nak", 1000))
          },
          retryLater(h, "record a duplicate")
        )
      // outcome and audit commit together: the outcome is audited already
      if (ledger.atomic || !ownRun) return reply(true)
      // two stores: the run that stored this outcome may not have written its audit row yet (a
      // crash between the two, or this copy came back early): give it its lease to do so
      runEffect(ledger.hasStep(job.taskId, "succeeded")).addObserver((exit) => {
        if (Exit.isFailure(exit)) return finish(h, "nak", 1000)
        if (exit.value) return reply(true)
        const settlesBy = completedAt + leaseMs
        if (now() < settlesBy) return finish(h, "nak", Math.max(250, settlesBy - now()))
        reply(false)
      })
    }

    // what a handler's request reaches back to, shared by every run of this dispatcher
    const runSide: RunSide = {
      isRunning: (run) => running.get(run.job.taskId) === run,
      progress: (run, value) =>
        Effect.sync(() => {
          if (running.get(run.job.taskId) !== run || !statuses) return
          run.statusWritten = true
          results.submit(Status.running(run.job, now(), run.startedAt, undefined, value), () => {})
        }),
      atCommit: (run, write) =>
        ledger.writes
          ? Effect.sync(() => {
            run.writes.push(write)
          })
          : Effect.die(new Error(
            "atCommit writes need the SQLite ledger: set MSGSYS_IDEMPOTENCY_STORE=sqlite (the default); " +
              "the in-memory broker cannot run them"
          ))
    }

    /** Runs the handler for one message, or a batch handler for several of one subject. */
    const start = (hs: ReadonlyArray<Held>) => {
      if (hs.length === 0) return
      const first = hs[0]!.job!
      const handler = handlers[first.subject]!
      const policy = Actor.policyFor(actor, first.task)
      const startedAt = now()
      const timeoutMs = Duration.toMillis(policy.timeout)
      const writes: Array<(sql: Sql) => void> = []
      const runs: Array<Run> = hs.map((h) => ({
        held: h,
        job: h.job!,
        ref: h.claimed ? refOf(h.job!) : { ...refOf(h.job!), claimed: false },
        deferred: h.claimed ? [] : claimRows(h.job!),
        claiming: false,
        afterClaim: undefined,
        startedAt,
        deadline: startedAt + timeoutMs,
        timeoutMs,
        policy: policy.retry,
        renewAt: startedAt + beatEvery,
        statusWritten: false,
        stopped: undefined,
        interrupt: undefined,
        abort: undefined,
        writes,
        prior: h.job!.attempt > 1 ? readHistory(h.job!.taskId) : undefined,
        group: undefined,
        span: undefined
      }))
      const batched = actor.batch !== undefined
      const maxAttempts = Retry.maxAttempts(policy.retry)
      for (const run of runs) {
        if (batched) run.group = runs
        run.held.run = run
        running.set(run.job.taskId, run)
      }
      const requestOf = (run: Run): Actor.Request<Task.Any> => new RunRequest(run, runSide, maxAttempts)
      const call = batched
        ? Effect.suspend(() => (handler as unknown as (rs: ReadonlyArray<Actor.Request<Task.Any>>) => Effect.Effect<unknown, unknown>)(runs.map(requestOf)))
        : Effect.suspend(() => handler(requestOf(runs[0]!)))
      const span = spans?.handle(runs.map((r) => aboutJob(r.job)))
      for (const run of runs) run.span = span
      // a batch handler runs for several messages: no current message, the client needs a `parent`
      const fiber = Effect.runForkWith(handlerContext(
        batched ? MessageLog.batchAnnotations(actor.name, first.subject, runs.map((r) => r.job.taskId)) : MessageLog.annotations(aboutJob(first)),
        batched ? undefined : first.envelope,
        span
      ))(call)
      for (const run of runs) run.interrupt = () => fiber.interruptUnsafe()
      // a cancel that came while the message waited to start
      for (const run of runs) if (cancelled.has(run.job.taskId)) stopRun(run, "cancel")
      fiber.addObserver((exit) => {
        if (span !== undefined) spans!.end(span, exit)
        for (const run of runs) {
          running.delete(run.job.taskId)
          run.abort?.abort()
        }
        const live = runs.filter((run) => held.has(run.held))
        if (live.length === 0) return
        const endedAt = now()
        // a settlement follows its run's late claim (a claim that failed let its message go)
        whenClaimed(live, () => {
          const still = live.filter((run) => held.has(run.held))
          if (still.length === 0) return
          if (Exit.isSuccess(exit)) {
            const verdict = Verdict.decide(exit, { task: first.task, policy: policy.retry, attempt: first.attempt, timeoutMs, stopped: undefined })
            if (verdict._tag === "Succeeded") {
              for (const run of still) recordRun(run.job.subject, verdict._tag, endedAt - run.startedAt)
              return onSucceeded(still[0]!.group !== undefined ? { ...still[0]!, group: still } : still[0]!, verdict.output)
            }
          }
          for (const run of still) {
            const verdict = Verdict.decide(exit, { task: run.job.task, policy: policy.retry, attempt: run.job.attempt, timeoutMs, stopped: run.stopped })
            recordRun(run.job.subject, verdict._tag, endedAt - run.startedAt)
            onFailed(run, verdict)
          }
        })
      })
    }

    /** Calls `f` once none of `runs` has a late claim being written. */
    const whenClaimed = (runs: ReadonlyArray<Run>, f: () => void) => {
      const claiming = runs.find((r) => r.claiming)
      if (claiming === undefined) return f()
      claiming.afterClaim = () => whenClaimed(runs, f)
    }

    /**
     * Claims the keys of runs that were only checked and still run past `claimAfterMs`, with the
     * rows their claim would have written. A key another run holds or finished meanwhile means
     * this run is a duplicate: it is stopped and stores nothing.
     */
    const claimLate = (runs: ReadonlyArray<Run>) => {
      for (const run of runs) run.claiming = true
      const requests = runs.map((r) => ({ run: { ...r.ref, claimed: true }, leaseMs, audit: r.deferred }))
      runEffect(ledger.claim(requests)).addObserver((exit) => {
        const t = now()
        runs.forEach((run, i) => {
          run.claiming = false
          const then = run.afterClaim
          run.afterClaim = undefined
          if (Exit.isFailure(exit)) {
            // tried again at the next tick; a run that ended meanwhile settles as unclaimed
            if (i === 0) log(Effect.logWarning("could not claim the keys of long runs; trying again", exit.cause))
            return then?.()
          }
          const answer = exit.value[i]!
          if (answer._tag === "Claimed") {
            run.ref = { ...run.ref, claimed: true }
            run.deferred = []
            run.renewAt = t + beatEvery
            return then?.()
          }
          log(Effect.logWarning(`task ${run.job.taskId}: another run has its key (${answer._tag}); this one is stopped and stores nothing`))
          if (then !== undefined) return finish(run.held, "drop")
          stopRun(run, "lease")
        })
      })
    }

    const stopRun = (run: Run, reason: Verdict.StopReason) => {
      if (run.stopped !== undefined) return
      // a batch stops together, for the same reason
      for (const r of run.group ?? [run]) {
        r.stopped ??= reason
        r.abort?.abort()
      }
      run.interrupt?.()
    }

    // ------------------------------------------------------------------------------------------
    // taking in messages

    const receive = (d: Delivery) => {
      const h = hold(d)
      // a paused worker keeps what a long poll still brings (a nak would spend one of its deliveries)
      if (stopped) return finish(h, "nak", 0)
      const intake = Intake.read(actor, names, d, now(), keyScope?.(d.streamSequence))
      if (intake._tag === "Poison") {
        const { poison } = intake
        const kind = TaskError.classify(poison.error, [])
        // an event no handler of the group takes is unroutable
        const reason: DeadLetter.Reason = isGroup && poison.error instanceof TaskError.UnknownSubject
          ? "unroutable"
          : kind === "retryable" ? "poison" : kind
        return deadLetter(h, { subject: poison.subject, envelope: poison.envelope, attempt: d.deliveryCount },
          reason, Verdict.storedError(poison.error, undefined))
      }
      h.job = intake.job
      ready[rank(intake.job.priority)]!.push(h)
      readyCount += 1
    }

    /**
     * Whether a consumer of higher priority than `rank` may still hold work: then a message of
     * this rank (one a long poll brought early) waits until that consumer has been asked.
     */
    const higherMayHaveWork = (r: number) => {
      for (const f of feeds) {
        if (rank(f.priority) >= r) continue
        if (f.state !== "empty") return true
      }
      return false
    }

    /** Starts what can start, then asks the consumers for what fits. */
    function pump() {
      // paused: what is held waits here (heartbeated) and nothing new is asked for
      if (stopped || paused) return
      outer: for (let p = 0; p < 3; p++) {
        const queue = ready[p]!
        if (queue.length > 0 && p > 0 && higherMayHaveWork(p)) break outer
        while (queue.length > 0) {
          const h = queue[0]!
          const job = h.job!
          if (!h.ownsPartition && job.partition !== undefined && activePartitions.has(job.partition)) {
            // its key is busy: wait beside it, without a slot (other keys go on)
            queue.shift()
            readyCount -= 1
            const line = parked.get(job.partition)
            if (line === undefined) parked.set(job.partition, [h])
            else line.push(h)
            parkedCount += 1
            continue
          }
          if (!takeSlot(h)) break
          queue.shift()
          readyCount -= 1
          if (job.partition !== undefined && !h.ownsPartition) {
            activePartitions.add(job.partition)
            h.ownsPartition = true
          }
          if (cancelled.has(job.taskId)) {
            settle(
              { _tag: "Record", audit: [jobRow(job, "cancelled")] },
              () => putStatus(Status.cancelled(job, now()), aboutJob(job), () => finish(h, "term")),
              retryLater(h, "record the cancel")
            )
            continue
          }
          claimQueue.push(h)
        }
      }
      if (claimQueue.length > 0) scheduleFlush()
      fill()
    }

    /**
     * Asks each consumer for what fits, high priority first: the free slots and the prefetch,
     * less what is asked for already and what waits to start at this priority or above (a
     * message of lower priority waits behind whatever comes).
     */
    const fill = () => {
      if (paused || stopped || feeds.length === 0 || parkedCount + waiting.size >= parkLimit) return
      const free = Math.min(concurrency - slotsUsed, poolSlots.free())
      let asked = 0
      for (const f of feeds) if (f.state !== "empty") asked += f.feed.outstanding()
      let waitingAbove = 0
      for (const f of feeds) {
        const r = rank(f.priority)
        waitingAbove += ready[r]!.length
        if (f.feed.outstanding() > 0) continue
        const budget = free + prefetch - asked - waitingAbove
        if (f.state === "empty") {
          // a long poll for what fits (at least one): new work reaches us in one hop as it comes,
          // not one round trip per message. It is not counted against the other consumers: which
          // of them gets work next is not known (at most one budget each is held then)
          f.feed.wait(Math.max(1, Math.min(budget, maxBatch)))
          continue
        }
        if (budget <= 0) continue
        const n = Math.min(budget, maxBatch)
        f.feed.fetch(n)
        asked += n
      }
    }

    const listenerFor = (state: () => FeedState | undefined, failed: (e: Pull.PullFailed) => void): Pull.Listener => ({
      onMessage: (d) => {
        const f = state()
        if (f !== undefined) {
          f.lastPending = d.pending
          if (d.pending > 0) f.state = "active"
        }
        receive(d)
        pump()
      },
      onEnd: (end) => {
        const f = state()
        if (f === undefined) return
        f.state = end === "lost" ? "unknown" : end === "filled" && f.lastPending > 0 ? "active" : "empty"
        pump()
        startBatches()
      },
      onFailure: failed
    })

    // ------------------------------------------------------------------------------------------
    // time

    // A handler that computes without yielding blocks the event loop, heartbeats included: past
    // ack_wait its message is redelivered and runs again elsewhere. Said once per stall, in real time.
    let lastTickAt = performance.now()
    const noticeStall = () => {
      const at = performance.now()
      const blockedMs = at - lastTickAt
      lastTickAt = at
      if (blockedMs < beatEvery || held.size === 0) return
      // the handler that blocked may have ended in the same turn: name what this actor holds
      const subjects = [...new Set([...held].flatMap((h) => h.job === undefined ? [] : [h.job.subject]))]
      const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
      log(Effect.logWarning(
        `the event loop was blocked for ${seconds(blockedMs)} (a handler computing without a pause, or a starved ` +
          `machine) while ${actor.name} held ${held.size} message(s) ` +
          `(${subjects.slice(0, 3).join(", ")}${subjects.length > 3 ? ", ..." : ""}): heartbeats are due every ` +
          `${seconds(beatEvery)}, and a message without one for its ack wait (${seconds(options.ackWaitMs)}) is ` +
          "redelivered and runs again elsewhere. Move CPU-bound work off the event loop: a Worker thread or a subprocess"
      ))
    }

    const tick = () => {
      noticeStall()
      const t = now()
      for (const f of feeds) f.feed.check(Date.now())
      // heartbeats for every message held: waiting, claiming, running or settling (guarantee 5)
      for (const h of held) {
        if (t - h.beatAt >= beatEvery) {
          h.delivery.working()
          h.beatAt = t
        }
      }
      const renewals: Array<Run> = []
      const late: Array<Run> = []
      for (const run of running.values()) {
        if (run.stopped !== undefined) continue
        if (t >= run.deadline) {
          stopRun(run, "timeout")
          continue
        }
        if (!run.statusWritten && t - run.startedAt >= runningAfterMs) {
          // best effort, and only while it runs: the final status is published after it
          run.statusWritten = true
          results.submit(Status.running(run.job, t, run.startedAt, undefined), () => {})
        }
        if (run.ref.claimed === false) {
          // only checked so far: a run that goes on claims its key, well within ack_wait
          if (!run.claiming && t - run.startedAt >= claimAfterMs) late.push(run)
        } else if (t >= run.renewAt) {
          run.renewAt = t + beatEvery
          renewals.push(run)
        }
      }
      if (settleRetries.length > 0 && (t >= settleRetryAt || stopped)) {
        settleQueue.push(...settleRetries)
        settleRetries = []
        scheduleFlush()
      }
      if (late.length > 0) claimLate(late)
      if (renewals.length > 0) {
        runEffect(ledger.renew(renewals.map((r) => r.ref), leaseMs)).addObserver((exit) => {
          if (Exit.isFailure(exit)) {
            log(Effect.logWarning("could not renew leases; trying again at the next heartbeat", exit.cause))
            return
          }
          // a lease another worker took over: stop the handler, store nothing (issue: lost leases)
          exit.value.forEach((ok, i) => {
            if (!ok) stopRun(renewals[i]!, "lease")
          })
        })
      }
      for (const h of waiting) {
        if (h.retryAt !== undefined && t >= h.retryAt) {
          waiting.delete(h)
          h.retryAt = undefined
          h.ownsPartition = h.job?.partition !== undefined
          ready[rank(h.job!.priority)]!.unshift(h)
          readyCount += 1
        }
      }
      pump()
    }

    // ------------------------------------------------------------------------------------------
    // the consume side

    const handBack = () => {
      // every message not started yet goes back to the stream for any worker
      for (const queue of ready) {
        for (const h of queue.splice(0)) finish(h, "nak", 0)
      }
      readyCount = 0
      for (const line of parked.values()) for (const h of line.splice(0)) finish(h, "nak", 0)
      parked.clear()
      parkedCount = 0
      for (const h of waiting) finish(h, "nak", 0)
      waiting.clear()
      // claimed, waiting for a batch: free the key first, so another worker can take it at once
      for (const h of batchBuffer.splice(0)) {
        const back = () => finish(h, "nak", 0)
        settle({ _tag: "Release", run: refOf(h.job!), audit: [] }, back, back)
      }
    }

    const connect: Dispatcher["connect"] = (makeFeed) =>
      Effect.gen(function*() {
        const failure = yield* Deferred.make<never, Pull.PullFailed>()
        const states: Array<FeedState> = []
        for (const priority of priorities) {
          let state: FeedState | undefined
          const feed = yield* makeFeed(priority, listenerFor(() => state, (e) => Deferred.doneUnsafe(failure, Effect.fail(e))))
          state = { priority, feed, state: "unknown", lastPending: 0 }
          states.push(state)
        }
        feeds = states
        yield* Effect.addFinalizer(() => Effect.sync(() => {
          if (feeds === states) feeds = []
        }))
        pump()
        return yield* Deferred.await(failure)
      })

    yield* Effect.addFinalizer(() => Effect.sync(() => {
      stopped = true
      feeds = []
    }))

    return {
      actor,
      connect,
      tick,
      reconnected: () => {
        for (const f of feeds) f.feed.reset()
        // the broker may have restarted and may hand out again what it delivered before, heartbeats
        // or not: for two ack_waits every key is claimed before its run, and runs going on claim now
        claimFirstUntil = now() + 2 * options.ackWaitMs
        const unclaimed = [...running.values()].filter((r) => r.ref.claimed === false && !r.claiming && r.stopped === undefined)
        if (unclaimed.length > 0) claimLate(unclaimed)
        pump()
      },
      cancel: (taskId) => {
        cancelled.add(taskId)
        if (cancelled.size > 100_000) cancelled.delete(cancelled.values().next().value!)
        const run = running.get(taskId)
        if (run !== undefined) stopRun(run, "cancel")
      },
      setPaused: (value) => {
        if (paused === value) return
        paused = value
        if (paused) return
        // what a consumer had while paused is not known: each is asked again before a lower
        // priority's message may start
        for (const f of feeds) if (f.feed.outstanding() === 0) f.state = "unknown"
        pump()
        startBatches()
      },
      state: () => ({ running: running.size, held: held.size, paused }),
      stop: () => {
        if (stopped) return
        stopped = true
        handBack()
        feeds = []
      },
      abandon: () => {
        for (const run of running.values()) stopRun(run, "shutdown")
      },
      idle: Effect.callback<void>((resume) => {
        if (held.size === 0) return resume(Effect.void)
        idleWaiters.push(() => resume(Effect.void))
      })
    }
  })

