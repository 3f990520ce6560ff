/**
 * Delayed tasks. `enqueue(..., { delay })` stores the task on the actor's `delayed` subject with a
 * `Msgsys-Run-At` header; this loop takes each one when it is due and republishes it on its real
 * subject (deduplicated, so a crash between the two steps makes one task, not two), then acks the
 * delayed copy. One that is not due yet is nak'ed with the time left (a day at most, then again),
 * so JetStream holds it: delayed tasks survive restarts, never run early, and their waiting is not
 * counted as attempts.
 * @since 0.1.0
 */
import type { JetStreamClient } from "@nats-io/jetstream"
import { Clock, Duration, Effect } from "effect"
import * as Publish from "../broker/Publish.ts"
import type { Puller, PullFailed } from "../broker/Pull.ts"
import type { Names, Priority } from "../broker/Subjects.ts"
import * as Envelope from "../envelope/Envelope.ts"
import * as TaskHeaders from "../task/TaskHeaders.ts"

const isPriority = (s: string | undefined): s is Priority => s === "high" || s === "normal" || s === "low"

/**
 * The longest one nak holds a delayed task; a later run-at is reached in steps of this. The
 * server takes the delay in nanoseconds: a far run-at in one nak would overflow it.
 * @category constants @since 0.1.0
 */
export const maxHold: Duration.Duration = Duration.days(1)

/** A run-at further ahead than this is almost surely a mistake (seconds for milliseconds, ...): warned about. */
const saneAhead = Duration.toMillis(Duration.days(3653))

/** Runs until interrupted; fails when a pull fails (the supervisor restarts it). @category loops @since 0.1.0 */
export const run = (options: {
  readonly js: JetStreamClient
  readonly names: Names
  readonly puller: Puller
  /** How often to look for due tasks. Default 250 millis. */
  readonly pollInterval?: Duration.Input
}): Effect.Effect<never, PullFailed> =>
  Effect.gen(function*() {
    const pollInterval = options.pollInterval ?? Duration.millis(250)
    while (true) {
      const due = yield* options.puller.pull(256)
      for (const d of due) {
        const now = yield* Clock.currentTimeMillis
        const header = d.headers?.[TaskHeaders.RunAt]
        const runAt = Number(header)
        if (Number.isFinite(runAt) && runAt > now) {
          if (runAt - now > saneAhead) {
            yield* Effect.logWarning(
              `delayed task ${d.headers?.[Envelope.Headers.Id] ?? `${d.stream}-${d.streamSequence}`} has ` +
                `${TaskHeaders.RunAt} ${header}, more than 10 years ahead: held a day at a time until then; ` +
                "the publisher should send epoch milliseconds"
            )
          }
          yield* d.nak(Math.min(runAt - now, Duration.toMillis(maxHold)))
          continue
        }
        if (header !== undefined && !Number.isFinite(runAt)) {
          yield* Effect.logWarning(`delayed task has ${TaskHeaders.RunAt} ${JSON.stringify(header)}, not epoch milliseconds: released now`)
        }
        const { subject } = options.names.parseTaskSubject(d.subject)
        const headers: Record<string, string> = { ...d.headers }
        delete headers[TaskHeaders.RunAt]
        const priority = headers[TaskHeaders.Priority]
        const id = headers[Envelope.Headers.Id] ?? `${d.stream}-${d.streamSequence}`
        yield* Publish.publish(options.js, {
          subject: options.names.taskSubject(subject, isPriority(priority) ? priority : "normal"),
          data: d.data,
          headers,
          msgId: `${id}:due`
        }).pipe(
          Effect.andThen(d.ack),
          Effect.catch((e) =>
            Effect.logWarning(`could not release delayed task ${id}: ${e.message}; retrying`).pipe(
              Effect.andThen(d.nak(1000))
            )
          )
        )
      }
      if (due.length === 0) yield* Effect.sleep(pollInterval)
    }
  })
