/**
 * What every log line about a message carries, as log annotations: its id, subject, actor,
 * tenant, correlation id, attempt and trace id. The handler's fiber has them (so a handler's own
 * lines have them too), and the runtime's lines about a message (retry, dead letter, a settle
 * that failed) add them the same way, so `grep messageId=…` or a JSON query finds its whole story.
 * @since 0.1.0
 */
import { Effect } from "effect"
import { type Envelope, traceIdOf } from "../envelope/Envelope.ts"

/** The message a line is about. @category models @since 0.1.0 */
export interface About {
  /** The actor, or the event group. */
  readonly actor: string
  /** The logical subject. */
  readonly subject: string
  readonly envelope: Envelope
  /** The delivery (1 on the first). */
  readonly attempt: number
}

/**
 * The annotations of a line about a message: `messageId`, `subject`, `actor`, `tenant`,
 * `correlationId`, `attempt`, and `traceId` when the message carries a trace context.
 * @category annotations @since 0.1.0
 */
export const annotations = (about: About): Record<string, unknown> => {
  const { envelope } = about
  const traceId = envelope.traceparent === undefined ? undefined : traceIdOf(envelope.traceparent)
  const out: Record<string, unknown> = {
    messageId: envelope.id,
    subject: about.subject,
    actor: about.actor,
    tenant: envelope.tenant,
    correlationId: envelope.correlationId,
    attempt: about.attempt
  }
  if (traceId !== undefined) out.traceId = traceId
  return out
}

/**
 * The annotations of a line about several messages at once (a batch handler's run, a batch that
 * could not be settled): the actor and subject, how many, and their ids.
 * @category annotations @since 0.1.0
 */
export const batchAnnotations = (actor: string, subject: string | undefined, messageIds: ReadonlyArray<string>): Record<string, unknown> => ({
  actor,
  ...(subject !== undefined ? { subject } : {}),
  batch: messageIds.length,
  messageIds: messageIds.join(",")
})

/**
 * Annotates every line `effect` logs as being about the message.
 * @category annotations @since 0.1.0
 */
export const annotate = (about: About) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.annotateLogs(effect, annotations(about))
