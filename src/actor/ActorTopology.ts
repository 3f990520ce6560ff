/**
 * The streams, consumers and buckets a set of actors needs, as data for `Topology.apply`.
 *
 * Per actor: a work-queue stream with its four subject spaces (see `Subjects.ts`) and one
 * consumer each, plus a stream capturing the server's MAX_DELIVERIES advisories for that stream.
 * Shared: the dead-letter stream (limits retention; bounded by `MSGSYS_DLQ_MAX_BYTES` and, if set,
 * `MSGSYS_DLQ_MAX_AGE`; when full it refuses new letters rather than dropping old ones), the results
 * bucket (TTL, `MSGSYS_RESULTS_MAX_BYTES`), the control bucket (pauses) and the workers bucket.
 * @since 0.1.0
 */
import { Duration, Option } from "effect"
import type * as Actor from "./Actor.ts"
import type { Names } from "../broker/Subjects.ts"
import { priorities } from "../broker/Subjects.ts"
import type * as Topology from "../broker/Topology.ts"
import type { MsgsysSettings } from "../config/MsgsysConfig.ts"
import * as WorkerRegistry from "../registry/WorkerRegistry.ts"
import * as Retry from "../retry/Retry.ts"
import type * as Task from "../task/Task.ts"

/** The consumer of an actor's MAX_DELIVERIES advisories. @category names @since 0.1.0 */
export const advisoryConsumer = "max-deliveries"

/** The advisory stream of one actor. @category names @since 0.1.0 */
export const advisoryStream = (names: Names, actor: string) => `${names.advisoryStream}_${actor}`

/** Deliveries beyond the retry policy's last attempt before the server gives up on a message. */
const maxDeliverSlack = 2

/** @category models @since 0.1.0 */
export type Settings = Pick<MsgsysSettings, "ackWait" | "resultTtl" | "dlqMaxBytes" | "dlqMaxAge" | "resultsMaxBytes">

/** The topology shared by every actor: dead letters and buckets. @category topology @since 0.1.0 */
export const shared = (names: Names, settings: Settings): Topology.Topology => ({
  streams: [{
    name: names.deadLetterStream,
    subjects: [names.deadLetterSubjects],
    retention: "limits",
    // a full dead-letter stream refuses new letters (they stay in their task stream); it never drops one
    discard: "new",
    ...Option.match(settings.dlqMaxBytes, { onNone: () => ({}), onSome: (maxBytes) => ({ maxBytes }) }),
    ...Option.match(settings.dlqMaxAge, { onNone: () => ({}), onSome: (maxAge) => ({ maxAge }) }),
    description: "msgsys dead letters: replay or delete them with `msgsys dlq`"
  }],
  consumers: [],
  kv: [
    {
      bucket: names.resultsBucket,
      ttl: settings.resultTtl,
      history: 1,
      ...Option.match(settings.resultsMaxBytes, { onNone: () => ({}), onSome: (maxBytes) => ({ maxBytes }) }),
      description: "msgsys task status and results"
    },
    { bucket: names.controlBucket, history: 1, description: "msgsys pauses and event group replay epochs" },
    WorkerRegistry.bucket(names)
  ]
})

/** The streams and consumers of one actor. @category topology @since 0.1.0 */
export const forActor = (names: Names, actor: Actor.Any, settings: Settings): Topology.Topology => {
  const stream = names.taskStream(actor.name)
  const subjects = names.actorSubjects(actor.name)
  const ackWait = actor.ackWait ?? settings.ackWait
  // the retry policy decides when to dead-letter; max_deliver only catches runs that never settle
  const longest = Math.max(
    0,
    ...[actor.retry, ...actor.protocol.map((t: Task.Any) => t.retry ?? actor.retry)].map((p) => Retry.maxAttempts(p) ?? Infinity)
  )
  const maxDeliver = Number.isFinite(longest) ? longest + maxDeliverSlack : -1
  return {
    streams: [
      {
        name: stream,
        subjects: [subjects.high, subjects.normal, subjects.low, subjects.delayed],
        retention: "workqueue",
        description: `msgsys tasks of actor ${actor.name}`
      },
      {
        name: advisoryStream(names, actor.name),
        subjects: [names.maxDeliveriesAdvisory(stream)],
        retention: "workqueue",
        maxAge: Duration.days(30),
        description: `MAX_DELIVERIES advisories of ${stream}, kept until msgsys dead-letters the message`
      }
    ],
    consumers: [
      ...priorities.map((p): Topology.ConsumerSpec => ({
        stream,
        name: names.taskConsumer(actor.name, p),
        filterSubject: subjects[p],
        ackWait,
        maxDeliver,
        maxAckPending: 10_000,
        description: `msgsys ${p}-priority tasks of ${actor.name}`
      })),
      {
        stream,
        name: names.taskConsumer(actor.name, "delayed"),
        filterSubject: subjects.delayed,
        ackWait,
        maxDeliver: -1,
        // waiting tasks are nak'ed with their delay and count as pending acks
        maxAckPending: 100_000,
        description: `msgsys delayed tasks of ${actor.name}`
      },
      {
        stream: advisoryStream(names, actor.name),
        name: advisoryConsumer,
        ackWait: Duration.seconds(30),
        maxDeliver: -1,
        description: `moves messages of ${stream} that ran out of deliveries to dead letters`
      }
    ],
    kv: []
  }
}
