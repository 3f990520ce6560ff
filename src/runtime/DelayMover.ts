/**
 * Delayed tasks. `enqueue(..., { delay })` stores the task on the actor's `delayed` subject with a
 * `Msgsys-Run-At` header; this loop takes each one when it is due and republishes it on its real
 * subject (deduplicated, so a crash between the two steps makes one task, not two), then acks the
 * delayed copy. One that is not due yet is nak'ed with the time left, so JetStream holds it:
 * delayed tasks survive restarts, never run early, and their waiting is not counted as attempts.
 * It follows the consumer with a long poll, so a due task moves at once, without polling.
 * @since 0.1.0
 */
import type { NatsConnection } from "@nats-io/transport-node"
import { Clock, Effect, type Scope } from "effect"
import type { Delivery } from "../broker/Delivery.ts"
import type * as Publish from "../broker/Publish.ts"
import * as Pull from "../broker/Pull.ts"
import type { Names, Priority } from "../broker/Subjects.ts"
import * as Envelope from "../envelope/Envelope.ts"
import * as TaskHeaders from "../task/TaskHeaders.ts"

const isPriority = (s: string | undefined): s is Priority => s === "high" || s === "normal" || s === "low"

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
    const move = (d: Delivery) => {
      const now = clock.currentTimeMillisUnsafe()
      const runAt = Number(d.headers?.[TaskHeaders.RunAt])
      if (Number.isFinite(runAt) && runAt > now) return d.nak(runAt - now)
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
    return yield* Pull.follow(options.nc, options.stream, options.consumer, move, {
      batch: 256,
      ...(options.consumerExists ? { consumerExists: options.consumerExists } : {})
    })
  })
