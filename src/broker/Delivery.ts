/**
 * A message delivered by a JetStream consumer, with its acknowledgements. The acknowledgements
 * are synchronous one-way publishes (as JetStream defines them): the runtime decides when to
 * send each, and a lost one is covered by redelivery after ack_wait.
 * @since 0.1.0
 */

/** @category models @since 0.1.0 */
export interface Delivery {
  /** The subject the message was stored under. */
  readonly subject: string
  readonly headers: Readonly<Record<string, string>> | undefined
  readonly data: Uint8Array
  readonly stream: string
  readonly consumer: string
  /** 1 on the first delivery. */
  readonly deliveryCount: number
  readonly streamSequence: number
  /** When the message was stored, epoch ms. */
  readonly storedAt: number
  /** Messages left for this consumer after this one (not counting redeliveries). */
  readonly pending: number
  /** Done: the message is removed from a work-queue stream. */
  readonly ack: () => void
  /** Redeliver after `delayMs` (at once when 0 or absent). */
  readonly nak: (delayMs?: number) => void
  /** Still working: restarts the ack_wait timer. */
  readonly working: () => void
  /** Never redeliver. */
  readonly term: () => void
}

/**
 * Reads the delivery facts from the ack subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.
 * <cseq>.<ns>.<pending>`, or the newer form with a domain and account hash after `$JS.ACK`.
 * @category parsing @since 0.1.0
 */
export const parseAckSubject = (reply: string) => {
  const t = reply.split(".")
  const base = t.length >= 12 ? 4 : 2
  return {
    stream: t[base]!,
    consumer: t[base + 1]!,
    deliveryCount: Number(t[base + 2]),
    streamSequence: Number(t[base + 3]),
    storedAt: Math.floor(Number(t[base + 5]) / 1e6),
    pending: Number(t[base + 6])
  }
}

const encoder = new TextEncoder()
/** @category protocol @since 0.1.0 */
export const ACK = encoder.encode("+ACK")
/** @category protocol @since 0.1.0 */
export const WPI = encoder.encode("+WPI")
/** @category protocol @since 0.1.0 */
export const TERM = encoder.encode("+TERM")
const NAK = encoder.encode("-NAK")

// A nak delay travels in nanoseconds: keep it inside what the server parses (int64).
const maxNakDelayMs = 365 * 24 * 3_600_000

/** The body of a `-NAK` with a delay. @category protocol @since 0.1.0 */
export const nakBody = (delayMs: number): Uint8Array => {
  if (!(delayMs > 0)) return NAK
  const ms = Math.min(Math.round(delayMs), maxNakDelayMs)
  return encoder.encode(`-NAK {"delay":${ms * 1_000_000}}`)
}
