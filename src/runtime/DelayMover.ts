/**
 * Delayed tasks. `enqueue(..., { delay })` stores the task on the actor's `delayed` subject with a
 * `Msgsys-Run-At` header; this loop takes each one when it is due and republishes it on its real
 * subject (deduplicated, so a crash between the two steps makes one task, not two), then acks the
 * delayed copy. One that is not due yet is nak'ed with the time left (a day at most, then again),
 * so JetStream holds it: delayed tasks survive restarts, never run early, and their waiting is not
 * counted as attempts. It follows the consumer with a long poll, so a due task moves at once,
 * without polling.
 * @since 0.1.0
 */
import type { NatsConnection } from "@nats-io/transport-node"
import { Clock, Duration, Effect, type Scope } from "effect"
import type { Delivery } from "../broker/Delivery.ts"
import type * as Publish from "../broker/Publish.ts"
import * as Pull from "../broker/Pull.ts"
import type { Names, Priority } from "../broker/Subjects.ts"
import * as Envelope from "../envelope/Envelope.ts"
import * as TaskHeaders from "../task/TaskHeaders.ts"
import * as MessageLog from "../trace/MessageLog.ts"

const isPriority = (s: string | undefined): s is Priority => s === "high" || s === "normal" || s === "low"

/**
 * The longest one nak holds a delayed task; a later run-at is reached in steps of this. The
 * server takes the delay in nanoseconds: a far run-at in one nak would overflow it.
 * @category constants @since 0.1.0
 */
export const maxHold: Duration.Duration = Duration.days(1)

/** A run-at further ahead than this is almost surely a mistake (seconds for milliseconds, ...): warned about. */
const saneAhead = Duration.toMillis(Duration.days(3653))

/**
 * What the mover does with one delayed message at `now`: hold it (nak with the time left, a day
 * at most) or release it on its real subject, then ack it. Synchronous; the publish answers later.
 * @category moving @since 0.1.0
 */
export const handle = (
  d: Delivery,
  now: number,
  options: {
    readonly publisher: Publish.Publisher
    readonly names: Names
    /** A warning about the message, with the annotations that name it. */
    readonly warn: (message: string, annotations: Record<string, unknown>) => void
  }
): void => {
  const header = d.headers?.[TaskHeaders.RunAt]
  // rare (a bad header): the envelope is read only to name the message
  const about = () => {
    const { subject } = options.names.parseTaskSubject(d.subject)
    const envelope = Envelope.fromHeaders(subject, d.headers, { now, fallbackId: `${d.stream}-${d.streamSequence}`, deliveryCount: d.deliveryCount })
    return { ...MessageLog.annotations({ actor: subject.split(".", 1)[0]!, subject, envelope, attempt: 0 }), delayed: true }
  }
  const runAt = Number(header)
  if (Number.isFinite(runAt) && runAt > now) {
    if (runAt - now > saneAhead) {
      options.warn(
        `delayed task ${d.headers?.[Envelope.Headers.Id] ?? `${d.stream}-${d.streamSequence}`} has ` +
          `${TaskHeaders.RunAt} ${header}, more than 10 years ahead: held a day at a time until then; ` +
          "the publisher should send epoch milliseconds",
        about()
      )
    }
    return d.nak(Math.min(runAt - now, Duration.toMillis(maxHold)))
  }
  if (header !== undefined && !Number.isFinite(runAt)) {
    options.warn(`delayed task has ${TaskHeaders.RunAt} ${JSON.stringify(header)}, not epoch milliseconds: released now`, about())
  }
  const { subject } = options.names.parseTaskSubject(d.subject)
  const headers: Record<string, string> = { ...d.headers }
  const id = headers[Envelope.Headers.Id] ?? headers[Envelope.Headers.NatsMsgId] ?? `${d.stream}-${d.streamSequence}`
  delete headers[TaskHeaders.RunAt]
  delete headers[Envelope.Headers.NatsMsgId]
  // the released copy keeps the task's id (its dedup id is a new one)
  headers[Envelope.Headers.Id] = id
  const priority = headers[TaskHeaders.Priority]
  options.publisher.submit(
    {
      subject: options.names.taskSubject(subject, isPriority(priority) ? priority : "normal"),
      data: d.data,
      headers,
      msgId: `${id}:due`
    },
    (outcome) => (outcome.ok ? d.ack() : d.nak(1000))
  )
}

/** Runs until the scope closes; fails when the consumer fails (the supervisor restarts it). @category loops @since 0.1.0 */
export const run = (options: {
  readonly nc: NatsConnection
  readonly publisher: Publish.Publisher
  readonly names: Names
  readonly stream: string
  readonly consumer: string
  readonly consumerExists?: () => Promise<boolean>
}): Effect.Effect<never, Pull.PullFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    const warn = (message: string, annotations: Record<string, unknown>) => {
      Effect.runForkWith(context)(Effect.annotateLogs(Effect.logWarning(message), annotations))
    }
    return yield* Pull.follow(
      options.nc,
      options.stream,
      options.consumer,
      (d) => handle(d, clock.currentTimeMillisUnsafe(), { publisher: options.publisher, names: options.names, warn }),
      { batch: 256, ...(options.consumerExists ? { consumerExists: options.consumerExists } : {}) }
    )
  })
