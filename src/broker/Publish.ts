/**
 * Publishing to JetStream the way guarantee 1 needs: wait for the stream's ack, retry on a
 * timeout or a dropped connection, and deduplicate the retries by `Nats-Msg-Id`.
 * @since 0.1.0
 */
import { headers as natsHeaders } from "@nats-io/transport-node"
import type { JetStreamClient } from "@nats-io/jetstream"
import { Data, Effect, Schedule } from "effect"
import { type BrokerError, brokerFailure } from "./BrokerError.ts"

/** No stream stores this subject. @category errors @since 0.1.0 */
export class NoStreamForSubject extends Data.TaggedError("NoStreamForSubject")<{
  readonly subject: string
}> {
  override get message() {
    return `no JetStream stream stores ${this.subject}: start a worker (or run \`msgsys topology\`) for the actor ` +
      "that owns it, so its stream exists, and check the subject's spelling"
  }
}

/** The stream's answer. @category models @since 0.1.0 */
export interface Ack {
  readonly stream: string
  readonly sequence: number
  /** The `Nats-Msg-Id` was seen within the duplicate window: nothing new was stored. */
  readonly duplicate: boolean
}

/** @category models @since 0.1.0 */
export interface Message {
  readonly subject: string
  readonly data: Uint8Array
  readonly headers?: Readonly<Record<string, string>>
  /** Deduplication id; also sent as the `Nats-Msg-Id` header. */
  readonly msgId?: string
}

const toHeaders = (h: Readonly<Record<string, string>> | undefined) => {
  if (!h) return undefined
  const out = natsHeaders()
  for (const [k, v] of Object.entries(h)) if (k !== "Nats-Msg-Id") out.set(k, v)
  return out
}

const isNoStream = (e: unknown) => {
  const text = `${(e as Error)?.message ?? ""} ${String((e as Error)?.cause ?? "")}`
  return /no responders|jetstream is not enabled|503/i.test(text)
}

const isTransient = (e: unknown) => {
  const text = `${(e as Error)?.name ?? ""} ${(e as Error)?.message ?? ""}`
  return /timeout|disconnect|closed|reconnect|connection/i.test(text)
}

/**
 * Publishes one message and waits for the stream to store it. Retries transient failures
 * (timeouts, reconnects) up to `attempts` times; the `msgId` makes those retries safe.
 * @category publishing @since 0.1.0
 */
export const publish = (
  js: JetStreamClient,
  message: Message,
  options: { readonly timeoutMs?: number; readonly attempts?: number } = {}
): Effect.Effect<Ack, BrokerError | NoStreamForSubject> =>
  Effect.tryPromise({
    try: () =>
      js.publish(message.subject, message.data, {
        headers: toHeaders(message.headers),
        ...(message.msgId !== undefined ? { msgID: message.msgId } : {}),
        timeout: options.timeoutMs ?? 5000
      }),
    catch: (e): BrokerError | NoStreamForSubject =>
      isNoStream(e)
        ? new NoStreamForSubject({ subject: message.subject })
        : brokerFailure(`publish to ${message.subject}`)(e)
  }).pipe(
    Effect.retry({
      // a reconnect after a broker restart takes seconds; a stream that is missing may be being created
      schedule: Schedule.min([Schedule.exponential("100 millis", 2), Schedule.spaced("2 seconds")]),
      times: options.attempts ?? 8,
      while: (e) => e._tag === "BrokerError" ? isTransient(e.cause) : false
    }),
    Effect.map((ack) => ({ stream: ack.stream, sequence: ack.seq, duplicate: ack.duplicate }))
  )
