/**
 * The streams and consumers events need, as data for `Topology.apply`.
 *
 * Per events domain (the first token of the subjects, e.g. `events` or `v1`): a stream
 * `<prefix>_EVENTS_<domain>` holding `<domain>.>` with limits retention (every group reads every
 * event; the stream keeps them `MSGSYS_EVENTS_MAX_AGE`), deduplicated by event id, and a stream
 * capturing the MAX_DELIVERIES advisories of its groups. Per group: a durable consumer named after
 * the group, filtered on its subjects, starting where the group asks when it is first created.
 * @since 0.1.0
 */
import { Duration, Option } from "effect"
import type { Names } from "../broker/Subjects.ts"
import type * as Topology from "../broker/Topology.ts"
import type { MsgsysSettings } from "../config/MsgsysConfig.ts"
import * as Retry from "../retry/Retry.ts"
import type * as Task from "../task/Task.ts"
import * as Event from "./Event.ts"
import type * as Subscriber from "./Subscriber.ts"

/** @category models @since 0.1.0 */
export type Settings = Pick<MsgsysSettings, "ackWait" | "eventsMaxAge">

/** The consumer of an events domain's MAX_DELIVERIES advisories. @category names @since 0.1.0 */
export const advisoryConsumer = "max-deliveries"

/** The stream of one events domain. @category topology @since 0.1.0 */
export const forDomain = (names: Names, domain: string, settings: Settings): Topology.Topology => {
  const stream = names.eventStream(domain)
  return {
    streams: [
      {
        name: stream,
        subjects: [`${domain}.>`],
        retention: "limits",
        ...Option.match(settings.eventsMaxAge, { onNone: () => ({}), onSome: (maxAge) => ({ maxAge }) }),
        description: `msgsys events of ${domain}.>: every group reads every event`
      },
      {
        name: names.eventAdvisoryStream(domain),
        subjects: [names.maxDeliveriesAdvisory(stream)],
        retention: "workqueue",
        maxAge: Duration.days(30),
        description: `MAX_DELIVERIES advisories of ${stream}'s groups, kept until msgsys dead-letters the event`
      }
    ],
    consumers: [{
      stream: names.eventAdvisoryStream(domain),
      name: advisoryConsumer,
      ackWait: Duration.seconds(30),
      maxDeliver: -1,
      description: `dead-letters events of ${stream} a group never settled`
    }],
    kv: []
  }
}

/** The streams of the domains of `events` (for programs that publish events no group of theirs reads). @category topology @since 0.1.0 */
export const forEvents = (names: Names, events: ReadonlyArray<Event.Any>, settings: Settings): Topology.Topology => {
  const domains = [...new Set(events.map((e) => Event.domainOf(e.subject)))]
  const parts = domains.map((d) => forDomain(names, d, settings))
  return {
    streams: parts.flatMap((p) => p.streams),
    consumers: parts.flatMap((p) => p.consumers),
    kv: []
  }
}

const startOf = (startAt: Subscriber.StartAt): Topology.ConsumerSpec["start"] =>
  startAt === "new" || startAt === "all"
    ? { policy: startAt }
    : "since" in startAt
    ? { policy: "by_start_time", time: new Date(startAt.since) }
    : { policy: "by_start_sequence", sequence: startAt.sequence }

/** The stream of a group's domain and the group's consumer. @category topology @since 0.1.0 */
export const forSubscriber = (names: Names, subscriber: Subscriber.Any, settings: Settings): Topology.Topology => {
  const domain = forDomain(names, subscriber.domain, settings)
  const longest = Math.max(
    ...[subscriber.retry, ...[...subscriber.tasks.values()].map((t: Task.Any) => t.retry ?? subscriber.retry)]
      .map((p) => Retry.maxAttempts(p) ?? Infinity)
  )
  return {
    ...domain,
    consumers: [
      ...domain.consumers,
      {
        stream: names.eventStream(subscriber.domain),
        name: subscriber.name,
        filterSubject: subscriber.filter,
        ackWait: subscriber.ackWait ?? settings.ackWait,
        maxDeliver: Number.isFinite(longest) ? longest + 2 : -1,
        maxAckPending: 10_000,
        start: startOf(subscriber.startAt),
        description: `msgsys event group ${subscriber.name} on ${subscriber.filter}`
      }
    ]
  }
}
