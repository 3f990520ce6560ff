/**
 * The pull protocol of one durable JetStream consumer, spoken directly so the runtime decides
 * exactly how many messages it holds (guarantee 6). A `Feed` has at most one request in flight:
 *
 * - `fetch(n)` asks for up to n messages that are there now (`no_wait`): answered at once, then a
 *   404/408 status when fewer were there. For a consumer known to have work.
 * - `wait(n)` is a long poll (`expires`, with idle heartbeats): the server answers as soon as a
 *   message is published or a retry becomes due. For a consumer that looked empty: the message
 *   reaches the worker in one hop, without polling.
 *
 * nats-server 2.9 leaves a `no_wait` pull unanswered when the consumer does not exist (and in a
 * case seen here, the pull that finds a message's deliveries exhausted): `check` notices the
 * silence and asks whether the consumer exists. A long poll that stops hearing heartbeats was
 * lost (a reconnect) and ends, so the owner asks again.
 * @since 0.1.0
 */
import { createInbox, type Msg, type NatsConnection } from "@nats-io/transport-node"
import { Data, Effect, Scope } from "effect"
import { ACK, type Delivery, nakBody, parseAckSubject, TERM, WPI } from "./Delivery.ts"

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

/** Why the request in flight ended. @category models @since 0.1.0 */
export type End =
  /** Every message asked for arrived. */
  | "filled"
  /** Fewer were there than asked for (`fetch`), or the long poll expired. */
  | "drained"
  /** The request was lost (no heartbeat, or `reset`); nothing more will come for it. */
  | "lost"

/** What a feed reports to its owner, synchronously. @category models @since 0.1.0 */
export interface Listener {
  readonly onMessage: (delivery: Delivery) => void
  readonly onEnd: (end: End) => void
  readonly onFailure: (error: PullFailed) => void
}

/** @category models @since 0.1.0 */
export interface Feed {
  readonly stream: string
  readonly consumer: string
  /** Asks for up to `n` messages available now. */
  readonly fetch: (n: number) => void
  /** Asks for up to `n` messages, waiting for the first until the poll expires. */
  readonly wait: (n: number) => void
  /** Messages asked for and not yet received; 0 when no request is in flight. */
  readonly outstanding: () => number
  /** Ends requests whose answer or heartbeats are overdue. Call it every few hundred ms. */
  readonly check: (now: number) => void
  /** Forgets the request in flight (after a reconnect the server has dropped it). */
  readonly reset: () => void
}

/** @category models @since 0.1.0 */
export interface Options {
  /** How long a long poll lasts. Default 30 seconds. */
  readonly expiresMs?: number
  /** The server's heartbeat interval while a long poll waits. Default 5 seconds. */
  readonly heartbeatMs?: number
  /** How long a `fetch` may go unanswered before the consumer is presumed missing. Default 5 seconds. */
  readonly answerTimeoutMs?: number
  /** Asked when a `fetch` goes unanswered: false fails the feed (so it can be declared again). */
  readonly consumerExists?: () => Promise<boolean>
}

/** A message's header block: the status line's code and description, and the first value of each header. */
export interface HeaderBlock {
  /** 0 for a message; 100, 404, 408, 409 for JetStream's status messages. */
  readonly code: number
  readonly description: string
  readonly headers: Record<string, string> | undefined
}

const NO_HEADERS: HeaderBlock = { code: 0, description: "", headers: undefined }
const decoder = new TextDecoder()

/**
 * Parses a NATS header block (`NATS/1.0[ code description]\r\nKey: value\r\n...`) as nats.js
 * does (keys as sent, values trimmed, the first of repeated keys), in one pass over its text:
 * nats.js's own decoding (a Map, canonical key checks) was a tenth of a worker's time per message.
 * @category protocol @since 0.1.0
 */
export const parseHeaderBlock = (text: string): HeaderBlock => {
  let end = text.indexOf("\r\n")
  if (end < 0) end = text.length
  let code = 0
  let description = ""
  // "NATS/1.0" then, for a status message, " 100 Idle Heartbeat"
  const status = text.slice(8, end).trim()
  if (status.length > 0) {
    const space = status.indexOf(" ")
    code = Number.parseInt(space < 0 ? status : status.slice(0, space), 10) || 0
    description = space < 0 ? "" : status.slice(space + 1).trim()
  }
  let headers: Record<string, string> | undefined
  let at = end + 2
  while (at < text.length) {
    let next = text.indexOf("\r\n", at)
    if (next < 0) next = text.length
    if (next > at) {
      const colon = text.indexOf(":", at)
      if (colon > at && colon < next) {
        const key = text.slice(at, colon)
        headers ??= {}
        if (!(key in headers)) headers[key] = text.slice(colon + 1, next).trim()
      }
    }
    at = next + 2
  }
  return { code, description, headers }
}

/** The header block of a received message, read from its raw bytes when nats.js exposes them. */
export const headerBlockOf = (m: Msg): HeaderBlock => {
  // MsgImpl keeps the raw bytes and the header length (nats.js 3.x, pinned); else its decoded headers
  const raw = (m as unknown as { _rdata?: Uint8Array; _msg?: { hdr?: number } })
  const hdr = raw._msg?.hdr
  if (raw._rdata instanceof Uint8Array && typeof hdr === "number") {
    return hdr > 0 ? parseHeaderBlock(decoder.decode(raw._rdata.subarray(0, hdr))) : NO_HEADERS
  }
  const h = m.headers
  if (!h) return NO_HEADERS
  const headers: Record<string, string> = {}
  for (const k of h.keys()) headers[k] = h.get(k)
  return { code: h.code, description: h.description, headers }
}

/**
 * A delivery whose acknowledgements publish on the connection. A class: the four
 * acknowledgements are shared methods, not four closures a message held in flight.
 */
class NatsDelivery implements Delivery {
  readonly stream: string
  readonly consumer: string
  readonly deliveryCount: number
  readonly streamSequence: number
  readonly storedAt: number
  readonly pending: number
  constructor(
    private readonly nc: NatsConnection,
    private readonly reply: string,
    readonly subject: string,
    readonly headers: Readonly<Record<string, string>> | undefined,
    readonly data: Uint8Array
  ) {
    const facts = parseAckSubject(reply)
    this.stream = facts.stream
    this.consumer = facts.consumer
    this.deliveryCount = facts.deliveryCount
    this.streamSequence = facts.streamSequence
    this.storedAt = facts.storedAt
    this.pending = facts.pending
  }
  ack() {
    this.nc.publish(this.reply, ACK)
  }
  nak(delayMs?: number) {
    this.nc.publish(this.reply, nakBody(delayMs ?? 0))
  }
  working() {
    this.nc.publish(this.reply, WPI)
  }
  term() {
    this.nc.publish(this.reply, TERM)
  }
}

/**
 * A delivery whose acknowledgements publish on `nc`.
 * @category constructors @since 0.1.0
 */
export const toDelivery = (nc: NatsConnection, m: Msg, block: HeaderBlock = headerBlockOf(m)): Delivery =>
  new NatsDelivery(nc, m.reply!, m.subject, block.headers, m.data)

const nanos = (ms: number) => Math.round(ms * 1_000_000)

/**
 * A feed for one durable consumer; its inbox subscription lives in the scope.
 * @category constructors @since 0.1.0
 */
export const make = (
  nc: NatsConnection,
  stream: string,
  consumer: string,
  listener: Listener,
  options: Options = {}
): Effect.Effect<Feed, never, Scope.Scope> =>
  Effect.gen(function*() {
    const expiresMs = options.expiresMs ?? 30_000
    const heartbeatMs = options.heartbeatMs ?? 5_000
    const answerTimeoutMs = options.answerTimeoutMs ?? 5_000
    const inbox = createInbox()
    const api = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`

    // the request in flight: how many are still expected, and when silence means trouble
    let request: { kind: "fetch" | "wait"; left: number; got: number; deadline: number; checking: boolean } | undefined

    const end = (why: End) => {
      request = undefined
      listener.onEnd(why)
    }

    const sub = nc.subscribe(inbox, {
      callback: (_err, m) => {
        if (m === undefined) return
        const block = headerBlockOf(m)
        const code = block.code
        if (code > 0) {
          if (code === 100) {
            // an idle heartbeat: the long poll is alive
            if (request?.kind === "wait") request.deadline = Date.now() + 2 * heartbeatMs + 1000
            return
          }
          if (code === 409 && /deleted/i.test(block.description)) {
            request = undefined
            return listener.onFailure(new PullFailed({ stream, consumer, reason: `consumer ${block.description}` }))
          }
          // 404 no messages, 408 request timeout or requests pending, 409 limits: this request is over
          if (request !== undefined) end("drained")
          return
        }
        if (!m.reply) return
        // a message for the request in flight, or a late one for a request already ended: it is
        // delivered to us either way, so it is ours to handle
        listener.onMessage(toDelivery(nc, m, block))
        if (request !== undefined) {
          request.got += 1
          request.left -= 1
          if (request.kind === "wait") request.deadline = Date.now() + 2 * heartbeatMs + 1000
          if (request.left <= 0) end("filled")
        }
      }
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => sub.unsubscribe()))

    const send = (body: string) => {
      try {
        nc.publish(api, body, { reply: inbox })
      } catch (e) {
        request = undefined
        listener.onFailure(new PullFailed({ stream, consumer, reason: (e as Error)?.message ?? String(e) }))
      }
    }

    return {
      stream,
      consumer,
      fetch: (n) => {
        if (request !== undefined || n <= 0) return
        request = { kind: "fetch", left: n, got: 0, deadline: Date.now() + answerTimeoutMs, checking: false }
        send(`{"batch":${n},"no_wait":true}`)
      },
      wait: (n) => {
        if (request !== undefined || n <= 0) return
        request = { kind: "wait", left: n, got: 0, deadline: Date.now() + 2 * heartbeatMs + 1000, checking: false }
        send(`{"batch":${n},"expires":${nanos(expiresMs)},"idle_heartbeat":${nanos(heartbeatMs)}}`)
      },
      outstanding: () => request?.left ?? 0,
      check: (now) => {
        const r = request
        if (r === undefined || r.checking || r.deadline > now) return
        if (r.kind === "wait") return end("lost")
        if (r.got > 0) return end("drained")
        if (options.consumerExists === undefined) return end("drained")
        // silence from a no_wait pull: a live consumer means "nothing now", a missing one a failure
        r.checking = true
        options.consumerExists().then(
          (exists) => {
            if (request !== r) return
            if (exists) end("drained")
            else {
              request = undefined
              listener.onFailure(new PullFailed({ stream, consumer, reason: `no answer within ${answerTimeoutMs} ms` }))
            }
          },
          () => {
            if (request === r) end("drained")
          }
        )
      },
      reset: () => {
        if (request !== undefined) end("lost")
      }
    }
  })

/**
 * Follows a consumer with a long poll of up to `batch` messages, handing each to `onMessage`,
 * for as long as the scope lives; fails when the feed fails (so a supervisor can declare the
 * consumer again). For side loops (delayed tasks, advisories) that take whatever comes.
 * @category constructors @since 0.1.0
 */
export const follow = (
  nc: NatsConnection,
  stream: string,
  consumer: string,
  onMessage: (delivery: Delivery) => void,
  options: Options & { readonly batch?: number } = {}
): Effect.Effect<never, PullFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const batch = options.batch ?? 64
    let failed: ((e: PullFailed) => void) | undefined
    let feed: Feed | undefined
    let askedAt = 0
    const ask = () => {
      askedAt = Date.now()
      feed?.wait(batch)
    }
    feed = yield* make(nc, stream, consumer, {
      onMessage,
      // an answer that comes at once with nothing (a limit, a lost request): do not spin on it
      onEnd: (end) => {
        if (end === "filled") return ask()
        setTimeout(ask, Date.now() - askedAt < 100 ? 250 : 0)
      },
      onFailure: (e) => failed?.(e)
    }, options)
    const timer = setInterval(() => feed?.check(Date.now()), 1000)
    yield* Effect.addFinalizer(() => Effect.sync(() => {
      clearInterval(timer)
      feed = undefined
    }))
    ask()
    return yield* Effect.callback<never, PullFailed>((resume) => {
      failed = (e) => resume(Effect.fail(e))
    })
  })

/** @category models @since 0.1.0 */
export interface Batches {
  /** Up to `max` messages there now; an empty array when there are none. */
  readonly next: (max: number) => Effect.Effect<ReadonlyArray<Delivery>, PullFailed>
}

/**
 * Reads a consumer in `no_wait` batches, for tools that walk a stream (listing dead letters).
 * The subscription lives in the scope.
 * @category constructors @since 0.1.0
 */
export const batches = (
  nc: NatsConnection,
  stream: string,
  consumer: string,
  options: Options = {}
): Effect.Effect<Batches, never, Scope.Scope> =>
  Effect.gen(function*() {
    let got: Array<Delivery> = []
    let done: ((result: ReadonlyArray<Delivery> | PullFailed) => void) | undefined
    const feed = yield* make(nc, stream, consumer, {
      onMessage: (d) => got.push(d),
      onEnd: () => done?.(got),
      onFailure: (e) => done?.(e)
    }, { consumerExists: () => Promise.resolve(true), ...options })
    const timer = setInterval(() => feed.check(Date.now()), 250)
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))
    return {
      next: (max) =>
        max <= 0 ? Effect.succeed([]) : Effect.callback<ReadonlyArray<Delivery>, PullFailed>((resume) => {
          got = []
          done = (result) => {
            done = undefined
            resume(result instanceof PullFailed ? Effect.fail(result) : Effect.succeed(result))
          }
          feed.fetch(max)
        })
    }
  })
