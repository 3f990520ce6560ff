/**
 * Builds every subject, stream, consumer and bucket name msgsys uses, so no call site writes one
 * with a template literal.
 *
 * A task subject such as `etl.extract.salesforce` belongs to the actor named by its first token
 * (`etl`). Each actor has one work-queue stream holding four subject spaces, one consumer each:
 *
 * | consumer  | subjects                                   | what                                |
 * | --------- | ------------------------------------------ | ----------------------------------- |
 * | `high`    | `<prefix>.prio.high.etl.>`                 | high-priority tasks                 |
 * | `normal`  | `etl.>`                                    | normal tasks, and any plain client  |
 * | `low`     | `<prefix>.prio.low.etl.>`                  | low-priority tasks                  |
 * | `delayed` | `<prefix>.delayed.etl.>`                   | tasks waiting for their run-at time |
 *
 * Internal subjects carry the stream prefix, so two deployments with different prefixes on one
 * server never see each other's priorities, delays or dead letters.
 * @since 0.1.0
 */

import { Data, Effect } from "effect"

/** @category models @since 0.1.0 */
export type Priority = "high" | "normal" | "low"

/** In the order a worker takes them. @category constants @since 0.1.0 */
export const priorities: ReadonlyArray<Priority> = ["high", "normal", "low"]

const nameToken = /^[A-Za-z0-9_-]+$/
const subjectToken = /^[^\s.*>]+$/

/** Why a subject is not a valid task subject, or undefined when it is. @category validation @since 0.1.0 */
export const invalidSubject = (subject: string): string | undefined => {
  const tokens = subject.split(".")
  if (tokens.length < 2) return "needs at least two tokens, its domain (the actor, or the events stream) first (e.g. \"etl.extract\")"
  const bad = tokens.find((t) => !subjectToken.test(t))
  if (bad !== undefined) return `has an empty token or one with spaces or wildcards (${JSON.stringify(bad)})`
  if (!nameToken.test(tokens[0]!)) return "its first token (the actor) may hold only letters, digits, _ and -"
  return undefined
}

/** A subject given to enqueue cannot name a task. @category errors @since 0.1.0 */
export class InvalidSubject extends Data.TaggedError("InvalidSubject")<{
  readonly subject: string
  readonly problem: string
  /** What the subject was given for. Default "task". */
  readonly kind?: "task" | "event"
}> {
  override get message() {
    const shown = this.subject.length > 80 ? `${JSON.stringify(this.subject.slice(0, 80))}...` : JSON.stringify(this.subject)
    return this.kind === "event"
      ? `invalid event subject ${shown}: it ${this.problem}. Give the subject of one event, e.g. ` +
        "\"events.user.registered\" (its first token names the events stream; wildcards * and > cannot be published to)"
      : `invalid task subject ${shown}: it ${this.problem}. Give the subject of one task, e.g. ` +
        "\"etl.extract.salesforce\" (wildcards * and > select many subjects and cannot be enqueued to)"
  }
}

/**
 * Succeeds with the subject when a task can be enqueued to it: valid tokens (see `invalidSubject`)
 * and, given the stream prefix, not one of msgsys's internal subjects (priorities, delays, dead
 * letters live under the prefix).
 * @category validation @since 0.1.0
 */
export const validateSubject = (
  subject: string,
  prefix?: string,
  kind: "task" | "event" = "task"
): Effect.Effect<string, InvalidSubject> => {
  const problem = invalidSubject(subject) ??
    (prefix !== undefined && domainOf(subject) === prefix
      ? `starts with the stream prefix ${prefix}, which is kept for msgsys's internal subjects`
      : undefined)
  return problem === undefined ? Effect.succeed(subject) : Effect.fail(new InvalidSubject({ subject, problem, kind }))
}

/**
 * Whether a subject (no wildcards) matches a NATS filter: `*` matches one token, a final `>` one
 * or more. @category subjects @since 0.1.0
 */
export const matchesFilter = (subject: string, filter: string): boolean => {
  const s = subject.split(".")
  const f = filter.split(".")
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return i === f.length - 1 && s.length > i
    if (i >= s.length || (f[i] !== "*" && f[i] !== s[i])) return false
  }
  return s.length === f.length
}

/** The actor (domain) that owns a subject: its first token. @category subjects @since 0.1.0 */
export const domainOf = (subject: string): string => subject.split(".", 1)[0]!

/** Whether `name` can be part of stream, consumer and bucket names. @category validation @since 0.1.0 */
export const isName = (name: string): boolean => nameToken.test(name)

/** @category models @since 0.1.0 */
export interface Names {
  readonly prefix: string
  readonly taskStream: (actor: string) => string
  readonly taskConsumer: (actor: string, kind: Priority | "delayed") => string
  /** The subject a task of this priority is published on. */
  readonly taskSubject: (subject: string, priority: Priority) => string
  readonly delayedSubject: (subject: string) => string
  /** The stream subjects of one actor. */
  readonly actorSubjects: (actor: string) => Readonly<Record<Priority | "delayed", string>>
  /** Maps a stored subject back to the task subject and its priority. */
  readonly parseTaskSubject: (stored: string) => { readonly subject: string; readonly priority: Priority | "delayed" }
  readonly deadLetterStream: string
  readonly deadLetterSubject: (actor: string, tenant: string) => string
  /** Where a dead letter's original is stored apart when it and the letter's metadata exceed max_payload. */
  readonly deadLetterBodySubject: (actor: string, tenant: string) => string
  /** Whether a subject of the dead-letter stream holds a body part rather than a letter. */
  readonly isDeadLetterBody: (subject: string) => boolean
  /** The letters (not the body parts) of one actor and/or tenant, or all. */
  readonly deadLetterFilter: (actor?: string, tenant?: string) => string
  readonly deadLetterSubjects: string
  readonly advisoryStream: string
  readonly maxDeliveriesAdvisory: (stream: string) => string
  readonly resultsBucket: string
  readonly controlBucket: string
  /** The stream of an events domain (the first token of its subjects). */
  readonly eventStream: (domain: string) => string
  /** The stream capturing the MAX_DELIVERIES advisories of an events stream's groups. */
  readonly eventAdvisoryStream: (domain: string) => string
  /** Live workers, each announcing itself under its id (see `WorkerRegistry`). */
  readonly workersBucket: string
  /** The scheduler's schedules (read by the dashboard when it exists). */
  readonly schedulesBucket: string
  /** Pipelines: each one's plan, and the outputs its gather steps collect. */
  readonly pipelinesBucket: string
}

/** The names for one stream prefix. @category constructors @since 0.1.0 */
export const make = (prefix: string): Names => {
  const high = `${prefix}.prio.high.`
  const low = `${prefix}.prio.low.`
  const delayed = `${prefix}.delayed.`
  return {
    prefix,
    taskStream: (actor) => `${prefix}_TASKS_${actor}`,
    taskConsumer: (actor, kind) => `${actor}-${kind}`,
    taskSubject: (subject, priority) => priority === "normal" ? subject : (priority === "high" ? high : low) + subject,
    delayedSubject: (subject) => delayed + subject,
    actorSubjects: (actor) => ({
      high: `${high}${actor}.>`,
      normal: `${actor}.>`,
      low: `${low}${actor}.>`,
      delayed: `${delayed}${actor}.>`
    }),
    parseTaskSubject: (stored) =>
      stored.startsWith(high)
        ? { subject: stored.slice(high.length), priority: "high" }
        : stored.startsWith(low)
        ? { subject: stored.slice(low.length), priority: "low" }
        : stored.startsWith(delayed)
        ? { subject: stored.slice(delayed.length), priority: "delayed" }
        : { subject: stored, priority: "normal" },
    deadLetterStream: `${prefix}_DLQ`,
    deadLetterSubject: (actor, tenant) => `${prefix}.dlq.${actor}.${tenant}`,
    // `$body` is no actor name, and one token longer than a letter's subject: letter filters never match it
    deadLetterBodySubject: (actor, tenant) => `${prefix}.dlq.$body.${actor}.${tenant}`,
    isDeadLetterBody: (subject) => subject.startsWith(`${prefix}.dlq.$body.`),
    deadLetterFilter: (actor, tenant) => `${prefix}.dlq.${actor ?? "*"}.${tenant ?? "*"}`,
    deadLetterSubjects: `${prefix}.dlq.>`,
    advisoryStream: `${prefix}_ADVISORIES`,
    maxDeliveriesAdvisory: (stream) => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.*`,
    resultsBucket: `${prefix}_results`,
    controlBucket: `${prefix}_control`,
    eventStream: (domain) => `${prefix}_EVENTS_${domain}`,
    eventAdvisoryStream: (domain) => `${prefix}_ADVISORIES_EVENTS_${domain}`,
    workersBucket: `${prefix}_workers`,
    schedulesBucket: `${prefix}_schedules`,
    pipelinesBucket: `${prefix}_pipelines`
  }
}
