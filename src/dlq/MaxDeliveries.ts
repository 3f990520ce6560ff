/**
 * The safety net for `max_deliver`. The runtime dead-letters a message on the attempt its retry
 * policy ends, but a message whose deliveries run out without being settled (the worker crashed
 * or hung every time) would stay in a work-queue stream for good, never delivered again
 * (PITFALLS §3). The server announces each such message with a MAX_DELIVERIES advisory; a stream
 * per actor captures those advisories durably, and this loop moves each message they name to
 * the dead-letter stream, then deletes it from the task stream.
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Option, type Scope } from "effect"
import type { Delivery } from "../broker/Delivery.ts"
import type { Nats } from "../broker/Nats.ts"
import * as Pull from "../broker/Pull.ts"
import type { PullFailed } from "../broker/Pull.ts"
import type { Names } from "../broker/Subjects.ts"
import * as Envelope from "../envelope/Envelope.ts"
import type { Ledger } from "../ledger/Ledger.ts"
import * as MessageLog from "../trace/MessageLog.ts"
import type { Results } from "../task/Results.ts"
import * as DeadLetters from "./DeadLetters.ts"

interface Advisory {
  readonly stream: string
  readonly consumer: string
  readonly stream_seq: number
  readonly deliveries: number
}

const parseAdvisory = (data: Uint8Array): Advisory | undefined => {
  try {
    const a = JSON.parse(new TextDecoder().decode(data)) as Partial<Advisory>
    return typeof a.stream === "string" && typeof a.stream_seq === "number" ? a as Advisory : undefined
  } catch {
    return undefined
  }
}

/** Runs until the scope closes; fails when the consumer fails (the supervisor restarts it). @category loops @since 0.1.0 */
export const run = (options: {
  readonly nats: Nats["Service"]
  readonly names: Names
  /** The actor whose task stream it watches; for an events stream, its groups (the advisory names each). */
  readonly actor: string
  readonly pool: string
  /**
   * An events stream: every group reads the same events, so the event stays in its stream (its
   * group's consumer gave up on it), the letter names the group, and no task status is written.
   */
  readonly events?: boolean
  /** The advisory stream and its consumer. */
  readonly stream: string
  readonly consumer: string
  readonly results: Results["Service"]
  readonly ledger: Ledger["Service"]
  readonly consumerExists?: () => Promise<boolean>
}): Effect.Effect<never, PullFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const { nats } = options
    const context = yield* Effect.context<never>()
    const rescue = (a: Advisory) =>
      Effect.gen(function*() {
        // null: gone already (settled by a worker after all, or rescued before). Any other error
        // (a broker restart, a timeout) fails the rescue, so the advisory is nak'ed and tried again.
        const stored = yield* Effect.tryPromise(() => nats.manager.streams.getMessage(a.stream, { seq: a.stream_seq }))
        if (stored === null) return
        const headers: Record<string, string> = {}
        for (const k of stored.header?.keys() ?? []) headers[k] = stored.header.get(k)
        const now = yield* Clock.currentTimeMillis
        const { subject } = options.names.parseTaskSubject(stored.subject)
        const envelope = Envelope.fromHeaders(subject, headers, {
          now,
          fallbackId: `${a.stream}-${a.stream_seq}`,
          deliveryCount: a.deliveries
        })
        const error = {
          tag: "MaxDeliveries",
          message: `delivered ${a.deliveries} times to ${a.consumer} without being settled: the worker crashed or ` +
            "hung on it each time (look for out-of-memory kills or a handler that never returns)"
        }
        const events = options.events === true
        const actor = events ? a.consumer : options.actor
        // never overwrite the history with less: a failed read fails the rescue, which is retried
        const previous = events ? Option.none() : yield* options.results.get(envelope.id)
        const history = Option.isSome(previous) ? previous.value.history ?? [] : []
        yield* DeadLetters.move(nats, options.names, {
          stream: a.stream,
          sequence: a.stream_seq,
          storedSubject: stored.subject,
          headers,
          body: stored.data,
          storedAt: stored.time.getTime()
        }, {
          taskId: envelope.id,
          subject,
          actor,
          tenant: envelope.tenant,
          reason: "max_deliveries",
          error,
          attempts: a.deliveries,
          history: [...history, { attempt: a.deliveries, at: now, error }],
          deadLetteredAt: now
        })
        // the status before the delete: if either fails, the advisory comes back and finds the message again
        if (!events) yield* options.results.put({
          id: envelope.id,
          subject,
          tenant: envelope.tenant,
          status: "dead",
          attempt: a.deliveries,
          updatedAt: now,
          endedAt: now,
          error
        })
        // audited before the delete, like every other settle: a retry may write a second row, never none
        yield* options.ledger.settle([{
          _tag: "Record",
          audit: [{
            messageId: envelope.id,
            subject,
            actor,
            pool: options.pool,
            tenant: envelope.tenant,
            correlationId: envelope.correlationId,
            attempt: a.deliveries,
            step: "dead_lettered",
            at: now,
            error: error.message
          }]
        }])
        if (!events) yield* Effect.tryPromise(() => nats.manager.streams.deleteMessage(a.stream, a.stream_seq, false))
        yield* Effect.logWarning(`${events ? "event" : "task"} ${envelope.id} (${subject}) ran out of deliveries; moved to dead letters`).pipe(
          MessageLog.annotate({ actor, subject, envelope, attempt: a.deliveries })
        )
      })

    const onAdvisory = (d: Delivery) => {
      const a = parseAdvisory(d.data)
      if (a === undefined) return d.term()
      Effect.runForkWith(context)(rescue(a)).addObserver((exit) => {
        if (exit._tag === "Success") return d.ack()
        const full = exit.cause.reasons.some((r) => r._tag === "Fail" && (r.error as { _tag?: string })._tag === "DeadLetterStreamFull")
        // a full dead-letter stream: the message stays in its stream; move logged and counted it
        if (full) return d.nak(Duration.toMillis(DeadLetters.retryWhenFull))
        Effect.runForkWith(context)(
          Effect.logWarning("could not move a message that ran out of deliveries; retrying", exit.cause)
        )
        d.nak(5000)
      })
    }
    return yield* Pull.follow(nats.connection, options.stream, options.consumer, onAdvisory, {
      batch: 32,
      ...(options.consumerExists ? { consumerExists: options.consumerExists } : {})
    })
  })
