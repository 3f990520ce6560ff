/**
 * The safety net for `max_deliver`. The runtime dead-letters a message on the attempt its retry
 * policy ends, but a message whose deliveries run out without being settled (the worker crashed
 * or hung every time) would stay in a work-queue stream for good, never delivered again
 * (PITFALLS §3). The server announces each such message with a MAX_DELIVERIES advisory; a stream
 * per actor captures those advisories durably, and this loop moves each message they name to
 * the dead-letter stream, then deletes it from the task stream.
 * @since 0.1.0
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream"
import { Clock, Duration, Effect, Option } from "effect"
import type { Puller, PullFailed } from "../broker/Pull.ts"
import type { Names } from "../broker/Subjects.ts"
import * as Envelope from "../envelope/Envelope.ts"
import type { AuditLog } from "../audit/AuditLog.ts"
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

/** Runs until interrupted; fails when a pull fails (the supervisor restarts it). @category loops @since 0.1.0 */
export const run = (options: {
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
  readonly names: Names
  readonly actor: string
  readonly puller: Puller
  readonly results: Results["Service"]
  readonly audit: AuditLog["Service"]
  readonly pool: string
  readonly pollInterval?: Duration.Input
}): Effect.Effect<never, PullFailed> =>
  Effect.gen(function*() {
    const pollInterval = options.pollInterval ?? Duration.seconds(1)
    const rescue = (a: Advisory) =>
      Effect.gen(function*() {
        // null: gone already (settled by a worker after all, or rescued before). Any other error
        // (a broker restart, a timeout) fails the rescue, so the advisory is nak'ed and tried again.
        const stored = yield* Effect.tryPromise(() => options.jsm.streams.getMessage(a.stream, { seq: a.stream_seq }))
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
        const previous = yield* options.results.get(envelope.id).pipe(Effect.orElseSucceed(() => Option.none()))
        const history = Option.isSome(previous) ? previous.value.history ?? [] : []
        yield* DeadLetters.move(options.js, options.names, {
          stream: a.stream,
          sequence: a.stream_seq,
          storedSubject: stored.subject,
          headers,
          body: stored.data,
          storedAt: stored.time.getTime()
        }, {
          taskId: envelope.id,
          subject,
          actor: options.actor,
          tenant: envelope.tenant,
          reason: "max_deliveries",
          error,
          attempts: a.deliveries,
          history: [...history, { attempt: a.deliveries, at: now, error }],
          deadLetteredAt: now
        })
        // the status before the delete: if either fails, the advisory comes back and finds the message again
        yield* options.results.put({
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
        yield* options.audit.record({
          messageId: envelope.id,
          subject,
          actor: options.actor,
          pool: options.pool,
          tenant: envelope.tenant,
          correlationId: envelope.correlationId,
          attempt: a.deliveries,
          step: "dead_lettered",
          at: now,
          error: error.message
        })
        yield* Effect.tryPromise(() => options.jsm.streams.deleteMessage(a.stream, a.stream_seq, false))
        yield* Effect.logWarning(`task ${envelope.id} (${subject}) ran out of deliveries; moved to dead letters`)
      })

    while (true) {
      const advisories = yield* options.puller.pull(32)
      for (const d of advisories) {
        const a = parseAdvisory(d.data)
        if (a === undefined) {
          yield* d.term
          continue
        }
        yield* rescue(a).pipe(
          Effect.andThen(d.ack),
          // a full dead-letter stream: the message stays in its stream; move logged and counted it
          Effect.catchTag("DeadLetterStreamFull", () => d.nak(Duration.toMillis(DeadLetters.retryWhenFull))),
          Effect.catchCause((cause) =>
            Effect.logWarning("could not move a message that ran out of deliveries; retrying", cause).pipe(
              Effect.andThen(d.nak(5000))
            )
          )
        )
      }
      if (advisories.length === 0) yield* Effect.sleep(pollInterval)
    }
  })
