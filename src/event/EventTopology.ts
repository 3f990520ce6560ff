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
import { InvalidDefinition } from "../task/Task.ts"
import type * as Task from "../task/Task.ts"
import * as Event from "./Event.ts"
import type * as Subscriber from "./Subscriber.ts"

/** @category models @since 0.1.0 */
export type Settings = Pick<MsgsysSettings, "ackWait" | "eventsMaxAge">

/** The consumer of an events domain's MAX_DELIVERIES advisories. @category names @since 0.1.0 */
export const advisoryConsumer = "max-deliveries"

/** Each domain's stream limits, from the events that set them. @category models @since 0.1.0 */
export type Retentions = ReadonlyMap<string, Event.Retention>

/**
 * The stream limits of each domain, from every event definition a program knows. Throws
 * `InvalidDefinition` when two events of one domain set different limits (one stream holds them).
 * @category topology @since 0.1.0
 */
export const retentions = (events: ReadonlyArray<Event.Any>): Retentions => {
  const out = new Map<string, { readonly by: string; readonly retention: Event.Retention }>()
  const same = (a: Event.Retention, b: Event.Retention) =>
    (a.maxAge === undefined ? undefined : Duration.toMillis(a.maxAge)) === (b.maxAge === undefined ? undefined : Duration.toMillis(b.maxAge)) &&
    a.maxMessages === b.maxMessages
  for (const e of events) {
    if (e.retention === undefined) continue
    const domain = Event.domainOf(e.subject)
    const prior = out.get(domain)
    if (prior !== undefined && !same(prior.retention, e.retention)) {
      throw new InvalidDefinition(
        `events ${prior.by} and ${e.subject} set different retention for the ${domain} stream, which holds them both: ` +
          "give every event of a domain the same retention (or set it on one only)"
      )
    }
    out.set(domain, { by: e.subject, retention: e.retention })
  }
  return new Map([...out].map(([d, r]) => [d, r.retention]))
}

/** The stream of one events domain. @category topology @since 0.1.0 */
export const forDomain = (names: Names, domain: string, settings: Settings, retention?: Event.Retention): Topology.Topology => {
  const stream = names.eventStream(domain)
  const maxAge = retention?.maxAge !== undefined ? Option.some(retention.maxAge) : settings.eventsMaxAge
  return {
    streams: [
      {
        name: stream,
        subjects: [`${domain}.>`],
        retention: "limits",
        ...Option.match(maxAge, { onNone: () => ({}), onSome: (maxAge) => ({ maxAge }) }),
        ...(retention?.maxMessages !== undefined ? { maxMsgs: retention.maxMessages } : {}),
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
export const forEvents = (
  names: Names,
  events: ReadonlyArray<Event.Any>,
  settings: Settings,
  limits: Retentions = retentions(events)
): Topology.Topology => {
  const domains = [...new Set(events.map((e) => Event.domainOf(e.subject)))]
  const parts = domains.map((d) => forDomain(names, d, settings, limits.get(d)))
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
export const forSubscriber = (
  names: Names,
  subscriber: Subscriber.Any,
  settings: Settings,
  limits: Retentions = retentions(subscriber.events)
): Topology.Topology => {
  const domain = forDomain(names, subscriber.domain, settings, limits.get(subscriber.domain))
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
