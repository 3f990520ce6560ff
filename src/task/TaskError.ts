/**
 * How a task run can fail, and how each failure is classified (guarantee 3): retryable by
 * default, permanent (straight to dead letters), poison (cannot be decoded: straight to dead
 * letters with the reason), timeout (retryable).
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * Fail a handler with this (or use `permanent(error)`) when retrying cannot help: the message goes
 * to dead letters at once.
 * @category errors @since 0.1.0
 */
export class Permanent extends Schema.TaggedError<Permanent>()("Permanent", {
  reason: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {
  override get message() {
    return `permanent failure: ${this.reason}`
  }
}

/** Wraps any error as permanent. @category constructors @since 0.1.0 */
export const permanent = (error: unknown): Permanent =>
  error instanceof Permanent ? error : new Permanent({ reason: describe(error), cause: error })

/** The handler ran past its timeout; retried like any failure. @category errors @since 0.1.0 */
export class TaskTimeout extends Schema.TaggedError<TaskTimeout>()("TaskTimeout", {
  subject: Schema.String,
  timeoutMs: Schema.Number
}) {
  override get message() {
    return `${this.subject} ran past its timeout of ${this.timeoutMs} ms: raise the actor's or task's timeout, ` +
      "or split the work"
  }
}

/** The task was cancelled by a client. @category errors @since 0.1.0 */
export class TaskCancelled extends Schema.TaggedError<TaskCancelled>()("TaskCancelled", {
  taskId: Schema.String
}) {
  override get message() {
    return `task ${this.taskId} was cancelled`
  }
}

/** The handler threw or died (a defect): the failure of this message only. @category errors @since 0.1.0 */
export class HandlerDefect extends Schema.TaggedError<HandlerDefect>()("HandlerDefect", {
  subject: Schema.String,
  defect: Schema.String
}) {
  override get message() {
    return `the handler of ${this.subject} crashed: ${this.defect}`
  }
}

/** No handler is registered for the subject. @category errors @since 0.1.0 */
export class UnknownSubject extends Schema.TaggedError<UnknownSubject>()("UnknownSubject", {
  subject: Schema.String,
  actor: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message() {
    return `no task of actor ${this.actor} handles ${this.subject} (known: ${this.known.join(", ") || "none"}): ` +
      "publish to one of those subjects, or add the task to the actor's protocol"
  }
}

/** A one-line description of any error or defect. @category utils @since 0.1.0 */
export const describe = (error: unknown): string => {
  if (error instanceof Error) {
    const tag = (error as { _tag?: unknown })._tag
    const msg = error.message || String(tag ?? error.name)
    return typeof tag === "string" && !msg.startsWith(tag) ? `${tag}: ${msg}` : msg
  }
  if (typeof error === "object" && error !== null) {
    const tag = (error as { _tag?: unknown })._tag
    try {
      return typeof tag === "string" ? `${tag}: ${JSON.stringify(error)}` : JSON.stringify(error)
    } catch {
      return String(error)
    }
  }
  return String(error)
}

/** How the runtime treats a failure. @category models @since 0.1.0 */
export type Classification = "retryable" | "permanent" | "poison"

/** Classifies a handler failure given the task's permanent tags. @category decisions @since 0.1.0 */
export const classify = (error: unknown, permanentTags: ReadonlyArray<string>): Classification => {
  const tag = typeof error === "object" && error !== null ? (error as { _tag?: unknown })._tag : undefined
  if (tag === "Permanent" || (typeof tag === "string" && permanentTags.includes(tag))) return "permanent"
  if (tag === "PayloadDecodeError" || tag === "UnknownSubject") return "poison"
  return "retryable"
}
