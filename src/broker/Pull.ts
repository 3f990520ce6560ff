/**
 * Pulls from a durable JetStream consumer exactly as many messages as the caller has room for.
 *
 * nats.js's `fetch` waits at least a second for an empty consumer, which would make a worker
 * scanning its high, normal and low consumers in turn slow to notice high-priority work. This
 * module speaks the pull protocol directly: `{ batch: n, no_wait: true }` answers at once with up
 * to n messages, then a 404 (none) or 408 (fewer than n) status. One request is in flight per
 * puller, so messages never wait in a client buffer while their ack_wait runs (guarantee 6).
 * @since 0.1.0
 */
import { createInbox, type Msg, type NatsConnection } from "@nats-io/transport-node"
import { Data, Deferred, Effect, Scope } from "effect"

/** A pull got no answer, or the server said the consumer is gone. @category errors @since 0.1.0 */
export class PullFailed extends Data.TaggedError("PullFailed")<{
  readonly stream: string
  readonly consumer: string
  readonly reason: string
}> {
  override get message() {
    return `pull from ${this.stream}/${this.consumer} failed: ${this.reason}`
  }
}

/** A message delivered by a pull consumer, with its acknowledgements. @category models @since 0.1.0 */
export interface Delivery {
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
  /** Messages left for this consumer after this one. */
  readonly pending: number
  /** Done: the message is removed from a work-queue stream. */
  readonly ack: Effect.Effect<void>
  /** Redeliver after `delayMs` (at once when 0). */
  readonly nak: (delayMs?: number) => Effect.Effect<void>
  /** Still working: restarts the ack_wait timer. */
  readonly working: Effect.Effect<void>
  /** Never redeliver. */
  readonly term: Effect.Effect<void>
}

const ACK = new TextEncoder().encode("+ACK")
const WPI = new TextEncoder().encode("+WPI")
const TERM = new TextEncoder().encode("+TERM")
const nakBody = (delayMs: number) =>
  new TextEncoder().encode(delayMs > 0 ? `-NAK ${JSON.stringify({ delay: Math.round(delayMs * 1e6) })}` : "-NAK")

/**
 * Reads the delivery facts from the ack subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.
 * <cseq>.<ns>.<pending>`, or the newer form with a domain and account hash after `$JS.ACK`.
 */
const parseAckSubject = (reply: string) => {
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

const headersOf = (m: Msg): Record<string, string> | undefined => {
  const h = m.headers
  if (!h) return undefined
  const out: Record<string, string> = {}
  for (const k of h.keys()) out[k] = h.get(k)
  return out
}

/** @category models @since 0.1.0 */
export interface Puller {
  /** Up to `max` messages available now; an empty array when there are none. */
  readonly pull: (max: number) => Effect.Effect<ReadonlyArray<Delivery>, PullFailed>
}

type Pending = {
  readonly want: number
  readonly got: Array<Delivery>
  readonly done: Deferred.Deferred<ReadonlyArray<Delivery>, PullFailed>
}

/** How long a no-wait pull may go unanswered before the consumer is presumed lost. */
const answerTimeout = "5 seconds"

/**
 * A puller for one durable consumer. Its inbox subscription lives in the scope.
 *
 * nats-server 2.9 leaves a pull unanswered in two cases: the consumer is gone, and (seen here)
 * the pull that finds a message's deliveries exhausted. `consumerExists` tells them apart when a
 * pull goes unanswered: a live consumer means "nothing now", a missing one fails the pull so the
 * supervisor can re-declare it.
 * @category constructors @since 0.1.0
 */
export const make = (
  nc: NatsConnection,
  stream: string,
  consumer: string,
  consumerExists: Effect.Effect<boolean> = Effect.succeed(false)
): Effect.Effect<Puller, never, Scope.Scope> =>
  Effect.gen(function*() {
    const inbox = createInbox()
    const api = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`
    let pending: Pending | undefined

    const toDelivery = (m: Msg): Delivery => {
      const facts = parseAckSubject(m.reply ?? "")
      const reply = m.reply!
      const send = (body: Uint8Array) => Effect.sync(() => nc.publish(reply, body))
      return {
        subject: m.subject,
        headers: headersOf(m),
        data: m.data,
        ...facts,
        ack: send(ACK),
        nak: (delayMs = 0) => send(nakBody(delayMs)),
        working: send(WPI),
        term: send(TERM)
      }
    }

    const finish = (result: ReadonlyArray<Delivery> | PullFailed) => {
      const p = pending
      pending = undefined
      if (!p) return
      if (result instanceof PullFailed) Deferred.doneUnsafe(p.done, Effect.fail(result))
      else Deferred.doneUnsafe(p.done, Effect.succeed(result))
    }

    const sub = nc.subscribe(inbox, {
      callback: (_err, m) => {
        const code = m.headers?.code ?? 0
        if (code > 0) {
          if (code === 100) return // heartbeat or flow control
          if (code === 404 || code === 408) return finish(pending?.got ?? [])
          if (code === 409 && /deleted/i.test(m.headers?.description ?? "")) {
            return finish(new PullFailed({ stream, consumer, reason: `consumer ${m.headers?.description}` }))
          }
          return finish(pending?.got ?? [])
        }
        if (!m.reply) return
        const delivery = toDelivery(m)
        if (!pending) {
          // an answer to a pull we stopped waiting for: give it straight back
          nc.publish(m.reply, nakBody(0))
          return
        }
        pending.got.push(delivery)
        if (pending.got.length >= pending.want) finish(pending.got)
      }
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => sub.unsubscribe()))

    const pull = (max: number): Effect.Effect<ReadonlyArray<Delivery>, PullFailed> =>
      max <= 0 ? Effect.succeed([]) : Effect.gen(function*() {
        const done = yield* Deferred.make<ReadonlyArray<Delivery>, PullFailed>()
        pending = { want: max, got: [], done }
        nc.publish(api, JSON.stringify({ batch: max, no_wait: true }), { reply: inbox })
        return yield* Deferred.await(done).pipe(
          Effect.timeoutOrElse({
            duration: answerTimeout,
            orElse: () =>
              Effect.suspend(() => {
                const got = pending?.done === done ? pending.got : []
                if (pending?.done === done) pending = undefined
                // a partial answer is still usable; silence from a live consumer means "nothing now"
                if (got.length > 0) return Effect.succeed(got)
                return Effect.flatMap(consumerExists, (exists) =>
                  exists
                    ? Effect.succeed([])
                    : Effect.fail(new PullFailed({ stream, consumer, reason: `no answer within ${answerTimeout}` })))
              })
          }),
          // messages that came for a pull nobody waits for any more go straight back
          Effect.onInterrupt(() => Effect.sync(() => {
            if (pending?.done !== done) return
            for (const d of pending.got) Effect.runSync(d.nak(0))
            pending = undefined
          }))
        )
      })

    return { pull }
  })
