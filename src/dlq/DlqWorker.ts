/**
 * The DLQ worker (guarantee 4): a durable consumer on the dead-letter stream's letters (not their
 * body parts) that retries each letter with long backoff, by replaying it through the normal path,
 * and stores what still fails as exhausted.
 *
 * Per letter, from its headers alone (`decide`, a pure function):
 * - reason `poison`, or a reason not in `MSGSYS_DLQ_RETRY_REASONS`: exhausted at once (a retry
 *   sends the same bad payload);
 * - retried `MSGSYS_DLQ_RETRY_ATTEMPTS` times already: exhausted;
 * - otherwise retry n is due `delay(n)` after the letter was dead-lettered, `delay(n)` being the
 *   base doubled n-1 times, capped, varied by ±20% per task so a burst of letters does not come
 *   back at once. A letter not due yet is nak'ed with the time left: JetStream holds it, so the
 *   waiting survives restarts and costs nothing.
 *
 * A retry replays the letter (`DeadLetters.replayRead`: same task id, a fresh attempt count, its
 * status back to queued), with `Msgsys-Dlq-Retries: n` on the replayed task. When that run is
 * dead-lettered again, its new letter carries the header, so the count crosses the round trip with
 * the task, and the next delay counts from the new letter's time.
 *
 * Crash safety: a letter is deleted only after its replay is acked by its task stream, or after it
 * is stored as exhausted; the consumer acks it only after that. A crash in between redelivers the
 * letter after ack_wait and it is replayed again with the same `Nats-Msg-Id`, which the task
 * stream drops within its duplicate window (2 minutes by default); past the window the task's
 * idempotency key still keeps a run that completed from running again.
 *
 * Letters it cannot act on are left in the stream for a person, and acked so they do not come
 * back: letters that do not read, letters of a reason this version does not know, and letters
 * whose body part is gone.
 * @since 0.1.0
 */
import { Clock, Duration, Effect, FiberSet, Layer, Metric, Option, type Scope } from "effect"
import * as Supervisor from "../actor/Supervisor.ts"
import type { BrokerError } from "../broker/BrokerError.ts"
import type { Delivery } from "../broker/Delivery.ts"
import { Nats } from "../broker/Nats.ts"
import * as Pull from "../broker/Pull.ts"
import * as Subjects from "../broker/Subjects.ts"
import * as Topology from "../broker/Topology.ts"
import { MsgsysConfig, type MsgsysSettings } from "../config/MsgsysConfig.ts"
import * as Envelope from "../envelope/Envelope.ts"
import type { Ledger } from "../ledger/Ledger.ts"
import * as MessageLog from "../trace/MessageLog.ts"
import * as ActorTopology from "../actor/ActorTopology.ts"
import type { Results } from "../task/Results.ts"
import * as DeadLetter from "./DeadLetter.ts"
import * as DeadLetters from "./DeadLetters.ts"
import * as ExhaustedLetters from "./ExhaustedLetters.ts"
import type { ExhaustedStore } from "./ExhaustedStore.ts"

// ---------------------------------------------------------------------------------------------
// deciding

/** How the DLQ worker retries. @category models @since 0.1.0 */
export interface Policy {
  /** Replays before a letter is stored as exhausted. */
  readonly attempts: number
  readonly baseMs: number
  readonly capMs: number
  /** Reasons retried; letters of other reasons are exhausted at once. */
  readonly reasons: ReadonlyArray<string>
}

/** The policy the settings give (`MSGSYS_DLQ_RETRY_*`). @category models @since 0.1.0 */
export const policyOf = (
  settings: Pick<MsgsysSettings, "dlqRetryAttempts" | "dlqRetryBase" | "dlqRetryCap" | "dlqRetryReasons">
): Policy => ({
  attempts: settings.dlqRetryAttempts,
  baseMs: Duration.toMillis(settings.dlqRetryBase),
  capMs: Duration.toMillis(settings.dlqRetryCap),
  reasons: settings.dlqRetryReasons
})

// FNV-1a: a stable fraction in [0, 1) per text, so a letter's delay is the same on every delivery
const fraction = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) / 2 ** 32
}

/**
 * The wait before retry `retry` (1-based) of a task's letter: the base doubled `retry - 1` times,
 * varied by ±20% per task and retry, never above the cap.
 * @category deciding @since 0.1.0
 */
export const delayMs = (policy: Policy, retry: number, taskId: string): number => {
  const raw = policy.baseMs * 2 ** Math.min(Math.max(0, retry - 1), 52)
  const spread = 0.8 + 0.4 * fraction(`${taskId}:${retry}`)
  return Math.round(Math.min(policy.capMs, raw * spread))
}

/** What to do with one letter now. @category models @since 0.1.0 */
export type Decision =
  /** Not due: hold it this much longer. */
  | { readonly _tag: "Wait"; readonly ms: number }
  /** Replay it as retry `retry` (1-based). */
  | { readonly _tag: "Replay"; readonly retry: number }
  /** Store it as exhausted; `why` goes into the log and the audit row. */
  | { readonly _tag: "Exhaust"; readonly why: string }
  /** Leave it in the stream for a person. */
  | { readonly _tag: "Leave"; readonly why: string }

const knownReasons: ReadonlyArray<string> = DeadLetter.Reason.literals

/**
 * The decision for a letter at `now` (epoch ms). Pure: a letter's headers and the policy decide.
 * @category deciding @since 0.1.0
 */
export const decide = (
  policy: Policy,
  letter: Pick<DeadLetter.Letter, "reason" | "retries" | "deadLetteredAt" | "taskId">,
  now: number
): Decision => {
  if (!knownReasons.includes(letter.reason)) {
    return { _tag: "Leave", why: `its reason ${JSON.stringify(letter.reason)} is unknown to this version of msgsys` }
  }
  if (letter.reason === "poison") return { _tag: "Exhaust", why: "poison (a retry would send the same payload)" }
  if (!policy.reasons.includes(letter.reason)) {
    return { _tag: "Exhaust", why: `${letter.reason} letters are not retried (MSGSYS_DLQ_RETRY_REASONS)` }
  }
  if (letter.retries >= policy.attempts) {
    return { _tag: "Exhaust", why: `still failing after ${letter.retries} ${letter.retries === 1 ? "retry" : "retries"}` }
  }
  const retry = letter.retries + 1
  const due = letter.deadLetteredAt + delayMs(policy, retry, letter.taskId)
  return now < due ? { _tag: "Wait", ms: due - now } : { _tag: "Replay", retry }
}

// ---------------------------------------------------------------------------------------------
// running

/** The DLQ worker's durable consumer. @category names @since 0.1.0 */
export const consumerName = "dlq-worker"

/** Its consumer on the dead-letter stream, as data for `Topology.apply`. @category topology @since 0.1.0 */
export const topology = (names: Subjects.Names, settings: Pick<MsgsysSettings, "ackWait">): Topology.Topology => ({
  streams: [],
  consumers: [{
    stream: names.deadLetterStream,
    name: consumerName,
    filterSubject: names.deadLetterFilter(),
    ackWait: settings.ackWait,
    maxDeliver: -1,
    // letters waiting for their retry are held as unacknowledged
    maxAckPending: 100_000,
    description: "msgsys DLQ worker: retries dead letters with long backoff, stores what still fails as exhausted"
  }],
  kv: []
})

/** @category metrics @since 0.1.0 */
export const retriesCounter = Metric.counter("msgsys_dlq_retries_total", {
  description: "Dead letters the DLQ worker replayed, by actor",
  incremental: true
})

/** @category metrics @since 0.1.0 */
export const exhaustedCounter = Metric.counter("msgsys_dlq_exhausted_total", {
  description: "Dead letters the DLQ worker stored as exhausted, by actor and reason",
  incremental: true
})

/** The longest one nak holds a letter (the server takes the delay in nanoseconds). */
const maxHoldMs = Duration.toMillis(Duration.days(1))

/** How long a stopping DLQ worker lets letters in hand finish. */
const stopGrace = Duration.seconds(5)

/** What `run` needs besides its services. @category models @since 0.1.0 */
export interface RunOptions {
  readonly names: Subjects.Names
  readonly policy: Policy
  /** Letters replayed or exhausted at once. Default 8. */
  readonly concurrency?: number
  readonly consumerExists?: () => Promise<boolean>
}

type Needs = Nats | Results | Ledger | ExhaustedStore

/**
 * Runs the DLQ worker until the scope closes; fails when its consumer fails (a supervisor
 * restarts it). Asks for no more letters than it has free slots for; letters not due are nak'ed at
 * once and take no slot.
 * @category running @since 0.1.0
 */
export const run = (options: RunOptions): Effect.Effect<never, Pull.PullFailed, Scope.Scope | Needs> =>
  Effect.gen(function*() {
    const nats = yield* Nats
    const clock = yield* Clock.Clock
    const { names, policy } = options
    const concurrency = Math.max(1, options.concurrency ?? 8)
    const fibers = yield* FiberSet.make<void>()
    const fork = yield* FiberSet.runtime(fibers)<Needs>()
    // a failure to act on a letter is tried again, later each time (the delivery count grows)
    const failureDelay = (d: Delivery) =>
      Math.min(policy.capMs, Math.min(policy.baseMs, 5_000) * 2 ** Math.min(10, Math.max(0, d.deliveryCount - 1)))

    const act = (d: Delivery) =>
      Effect.gen(function*() {
        const full = yield* DeadLetters.read(names, d.streamSequence)
        const now = yield* Clock.currentTimeMillis
        const decision = decide(policy, full.letter, now)
        const { letter } = full
        const what = `dead letter #${d.streamSequence} (task ${letter.taskId}, ${letter.subject})`
        // its lines name the task as the worker's lines about it did (id, tenant, correlation, trace)
        const about: MessageLog.About = {
          actor: letter.actor,
          subject: letter.subject,
          envelope: Envelope.fromHeaders(letter.subject, full.headers, { now, fallbackId: letter.taskId }),
          attempt: letter.attempts
        }
        return yield* MessageLog.annotate(about)(Effect.gen(function*() {
          switch (decision._tag) {
            case "Wait":
              return d.nak(Math.min(decision.ms, maxHoldMs))
            case "Leave":
              yield* Effect.logWarning(`DLQ worker leaves ${what} to a person: ${decision.why}`)
              return d.ack()
            case "Replay":
              yield* DeadLetters.replayRead(names, full, { retries: decision.retry })
              yield* Metric.update(Metric.withAttributes(retriesCounter, { actor: letter.actor }), 1)
              yield* Effect.logInfo(`DLQ worker replayed ${what}: retry ${decision.retry} of ${policy.attempts}`)
              return d.ack()
            case "Exhaust":
              yield* ExhaustedLetters.exhaust(names, full, decision.why)
              yield* Metric.update(Metric.withAttributes(exhaustedCounter, { actor: letter.actor, reason: letter.reason }), 1)
              yield* Effect.logWarning(
                `DLQ worker stored ${what} as exhausted: ${decision.why}. Inspect it with \`msgsys dlq exhausted show ` +
                  `${letter.taskId}\`, replay it with \`msgsys dlq exhausted replay ${letter.taskId}\``
              )
              return d.ack()
          }
        }))
      }).pipe(
        Effect.catchTags({
          // replayed or purged meanwhile
          LetterNotFound: () => Effect.sync(() => d.ack()),
          LetterUnreadable: (e) => Effect.andThen(Effect.logWarning(`DLQ worker leaves it to a person: ${e.message}`), Effect.sync(() => d.ack())),
          LetterBodyMissing: (e) => Effect.andThen(Effect.logWarning(`DLQ worker leaves it to a person: ${e.message}`), Effect.sync(() => d.ack()))
        }),
        Effect.catchCause((cause) => {
          const ms = failureDelay(d)
          return Effect.andThen(
            Effect.logWarning(`DLQ worker could not act on dead letter #${d.streamSequence}; trying again in ${ms} ms`, cause),
            Effect.sync(() => d.nak(ms))
          )
        })
      )

    let feed: Pull.Feed | undefined
    let inFlight = 0
    let askedAt = 0
    let stopped = false
    let failed: ((e: Pull.PullFailed) => void) | undefined
    const ask = () => {
      const free = concurrency - inFlight
      if (stopped || feed === undefined || free <= 0) return
      askedAt = Date.now()
      feed.wait(free)
    }
    const onMessage = (d: Delivery) => {
      if (stopped) return d.nak()
      // the headers of a letter of this format decide a wait without reading it again
      const letter = DeadLetter.fromHeaders(d.headers ?? {})
      if (Option.isSome(letter)) {
        const decision = decide(policy, letter.value, clock.currentTimeMillisUnsafe())
        if (decision._tag === "Wait") return d.nak(Math.min(decision.ms, maxHoldMs))
      }
      inFlight++
      fork(act(d)).addObserver(() => {
        inFlight--
        ask()
      })
    }
    feed = yield* Pull.make(nats.connection, names.deadLetterStream, consumerName, {
      onMessage,
      onEnd: (end) => {
        if (end === "filled") return ask()
        // an answer that came at once with nothing (a limit, a lost request): do not spin on it
        setTimeout(ask, Date.now() - askedAt < 100 ? 250 : 0)
      },
      onFailure: (e) => failed?.(e)
    }, options.consumerExists ? { consumerExists: options.consumerExists } : {})
    const timer = setInterval(() => feed?.check(Date.now()), 1000)
    // runs before the fiber set's own finalizer (which interrupts what is left)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        stopped = true
        clearInterval(timer)
        yield* FiberSet.awaitEmpty(fibers).pipe(Effect.timeoutOption(stopGrace))
      })
    )
    ask()
    return yield* Effect.callback<never, Pull.PullFailed>((resume) => {
      failed = (e) => resume(Effect.fail(e))
    })
  })

/**
 * The DLQ worker as a layer: declares the dead-letter stream and its consumer, then runs
 * supervised (a lost consumer is declared again) until the layer's scope closes.
 * @category layers @since 0.1.0
 */
export const layer: Layer.Layer<never, Topology.TopologyConflict | BrokerError, Needs | MsgsysConfig> = Layer.effectDiscard(
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    const nats = yield* Nats
    const names = Subjects.make(config.streamPrefix)
    const declare = Topology.apply(Topology.merge(ActorTopology.shared(names, config), topology(names, config))).pipe(
      Effect.provideService(Nats, nats)
    )
    yield* declare
    const policy = policyOf(config)
    const context = yield* Effect.context<Needs>()
    const stream = names.deadLetterStream
    yield* Supervisor.supervise(
      "DLQ worker",
      Effect.scoped(run({
        names,
        policy,
        consumerExists: () => nats.manager.consumers.info(stream, consumerName).then(() => true, () => false)
      })).pipe(Effect.provideContext(context)),
      { beforeRestart: Effect.ignore(declare) }
    ).pipe(Effect.forkScoped)
    yield* Effect.logInfo(
      `DLQ worker running: ${policy.attempts} retries of ${policy.reasons.join(", ") || "no reason"} letters, ` +
        `${Duration.format(config.dlqRetryBase)} doubling up to ${Duration.format(config.dlqRetryCap)}`
    )
  })
)

/**
 * The DLQ worker when `MSGSYS_DLQ_WORKER` is on (the default), nothing otherwise: what
 * `App.layer` and `msgsys worker` run.
 * @category layers @since 0.1.0
 */
export const layerFromConfig: Layer.Layer<never, Topology.TopologyConflict | BrokerError, Needs | MsgsysConfig> = Layer.unwrap(
  Effect.map(MsgsysConfig, (config) => config.dlqWorker ? layer : Layer.empty)
)
