/**
 * Delayed tasks. `enqueue(..., { delay })` stores the task on the actor's `delayed` subject with a
 * `Msgsys-Run-At` header; this loop takes each one when it is due and republishes it on its real
 * subject (deduplicated, so a crash between the two steps makes one task, not two), then acks the
 * delayed copy. One that is not due yet is nak'ed with the time left, so JetStream holds it:
 * delayed tasks survive restarts, never run early, and their waiting is not counted as attempts.
 * @since 0.1.0
 */
import { Clock, Duration, Effect } from "effect"
import * as Publish from "../broker/Publish.ts"
import type { Puller, PullFailed } from "../broker/Pull.ts"
import type { Names, Priority } from "../broker/Subjects.ts"
import * as Envelope from "../envelope/Envelope.ts"
import * as TaskHeaders from "../task/TaskHeaders.ts"

const isPriority = (s: string | undefined): s is Priority => s === "high" || s === "normal" || s === "low"

/** Runs until interrupted; fails when a pull fails (the supervisor restarts it). @category loops @since 0.1.0 */
export const run = (options: {
  readonly publisher: Publish.Publisher
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
        const runAt = Number(d.headers?.[TaskHeaders.RunAt])
        if (Number.isFinite(runAt) && runAt > now) {
          yield* d.nak(runAt - now)
          continue
        }
        const { subject } = options.names.parseTaskSubject(d.subject)
        const headers: Record<string, string> = { ...d.headers }
        delete headers[TaskHeaders.RunAt]
        const priority = headers[TaskHeaders.Priority]
        const id = headers[Envelope.Headers.Id] ?? `${d.stream}-${d.streamSequence}`
        yield* Publish.publish(options.publisher, {
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
