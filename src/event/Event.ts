/**
 * An event: a typed fact on a subject such as `events.user.registered` or `v1.messages.upsert`,
 * published once and delivered to every subscribing group (each group a durable consumer; the
 * instances of one group share its events). A definition is data: publishers import it to publish
 * with checked types, subscribers to handle.
 * @since 0.1.0
 */
import { Duration, Schema } from "effect"
import { invalidSubject } from "../broker/Subjects.ts"
import * as Task from "../task/Task.ts"

/** @category models @since 0.1.0 */
export interface Event<Subject extends string = string, Payload extends Task.Codec = Task.Codec> {
  readonly _tag: "Event"
  readonly subject: Subject
  readonly payload: Payload
  /** The payload's schema version, sent as `Msgsys-Version`. */
  readonly version: number
  /** Limits of its domain's stream, when this definition sets them (see `Options.retention`). */
  readonly retention: Retention | undefined
}

/** How long, and how many, events a domain's stream keeps. @category models @since 0.1.0 */
export interface Retention {
  /** Default `MSGSYS_EVENTS_MAX_AGE` (7 days). */
  readonly maxAge?: Duration.Duration | undefined
  /** Default unlimited; beyond it the oldest events are dropped. */
  readonly maxMessages?: number | undefined
}

/** @category models @since 0.1.0 */
export interface Options<P extends Task.SchemaInput> {
  readonly payload: P
  /** Default 1. */
  readonly version?: number
  /**
   * Limits of the stream of the event's domain (its first subject token), e.g. a task-event log
   * kept 30 days and at most 10 million events: `{ maxAge: "30 days", maxMessages: 10_000_000 }`.
   * One stream holds the whole domain, so events of one domain that set it must agree (a worker
   * refuses to start otherwise); events that leave it out take the domain's.
   */
  readonly retention?: { readonly maxAge?: Duration.Input; readonly maxMessages?: number }
}

/** Any event. @category models @since 0.1.0 */
export type Any = Event<string, any>

/** @category type-level @since 0.1.0 */
export type Payload<E extends Any> = E["payload"]["Type"]

/**
 * Defines an event.
 * @example
 * const UserRegistered = Event.make("events.user.registered", {
 *   payload: { userId: Schema.String, email: Schema.String },
 *   version: 1
 * })
 * @category constructors @since 0.1.0
 */
export const make = <const Subject extends string, P extends Task.SchemaInput>(
  subject: Subject,
  options: Options<P>
): Event<Subject, Task.ToCodec<P>> => {
  const problem = invalidSubject(subject)
  if (problem !== undefined) throw new Task.InvalidDefinition(`event subject ${JSON.stringify(subject)} ${problem}`)
  const version = options.version ?? 1
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new Task.InvalidDefinition(`event ${subject}: version must be a whole number >= 1, got ${version}`)
  }
  const payload = (Schema.isSchema(options.payload)
    ? options.payload
    : Schema.Struct(options.payload as Schema.Struct.Fields)) as unknown as Task.ToCodec<P>
  const max = options.retention?.maxMessages
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
    throw new Task.InvalidDefinition(`event ${subject}: retention.maxMessages must be a whole number >= 1, got ${max}`)
  }
  const retention = options.retention === undefined ? undefined : {
    maxAge: options.retention.maxAge === undefined ? undefined : Duration.fromInputUnsafe(options.retention.maxAge),
    maxMessages: max
  }
  return { _tag: "Event", subject, payload, version, retention }
}

/** @category guards @since 0.1.0 */
export const isEvent = (u: unknown): u is Any =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Event"

/** The events domain of a subject: its first token, which names its stream. @category subjects @since 0.1.0 */
export const domainOf = (subject: string): string => subject.split(".", 1)[0]!
