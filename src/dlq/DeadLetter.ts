/**
 * A dead letter: a message the runtime gave up on, with everything needed to inspect and replay
 * it (guarantee 4): original subject, headers and payload, the error, the attempt history and
 * timestamps. Published to the dead-letter stream on `<prefix>.dlq.<actor>.<tenant>`.
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Publish from "../broker/Publish.ts"
import type { Names } from "../broker/Subjects.ts"
import { FailedAttempt, StoredError } from "../task/TaskRecord.ts"

/** Why the message was dead-lettered. @category models @since 0.1.0 */
export const Reason = Schema.Literals(["exhausted", "permanent", "poison", "max_deliveries"])
/** @category models @since 0.1.0 */
export type Reason = typeof Reason.Type

/** @category models @since 0.1.0 */
export const DeadLetter = Schema.Struct({
  taskId: Schema.String,
  subject: Schema.String,
  storedSubject: Schema.String,
  actor: Schema.String,
  tenant: Schema.String,
  reason: Reason,
  error: StoredError,
  attempts: Schema.Number,
  history: Schema.Array(FailedAttempt),
  headers: Schema.Record(Schema.String, Schema.String),
  /** The original body, base64. */
  payload: Schema.String,
  stream: Schema.String,
  streamSequence: Schema.Number,
  storedAt: Schema.Number,
  deadLetteredAt: Schema.Number
})
/** @category models @since 0.1.0 */
export type DeadLetter = typeof DeadLetter.Type

/** The dedup id of the dead letter of one stored message: a crash between publish and term makes one letter, not two. @category utils @since 0.1.0 */
export const dedupId = (stream: string, sequence: number) => `dlq:${stream}:${sequence}`

/** @category codecs @since 0.1.0 */
export const encode = (letter: DeadLetter): Uint8Array => new TextEncoder().encode(JSON.stringify(letter))

/** @category codecs @since 0.1.0 */
export const decode = Schema.decodeUnknownExit(Schema.fromJsonString(DeadLetter))

/** @category codecs @since 0.1.0 */
export const payloadBytes = (letter: DeadLetter): Uint8Array => Uint8Array.from(Buffer.from(letter.payload, "base64"))

/**
 * Publishes a dead letter to `<prefix>.dlq.<actor>.<tenant>` and waits for the stream's ack,
 * deduplicated per stored message.
 * @category publishing @since 0.1.0
 */
export const send = (publisher: Publish.Publisher, names: Names, letter: DeadLetter, headers?: Readonly<Record<string, string>>) =>
  Publish.publish(publisher, {
    subject: names.deadLetterSubject(letter.actor, letter.tenant),
    data: encode(letter),
    ...(headers ? { headers } : {}),
    msgId: dedupId(letter.stream, letter.streamSequence)
  })
