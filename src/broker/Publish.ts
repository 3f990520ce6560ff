/**
 * Publishing to JetStream the way guarantee 1 needs — wait for the stream's ack, retry on a
 * timeout, deduplicate retries by `Nats-Msg-Id` — at the speed of a pipeline. A publish nobody
 * answers (503) fails at once when no stream stores its subject, and is sent again while one
 * does: on a cluster, that is a stream between leaders. What went out on a connection that was
 * found dead (a server gone without a word) is sent again as soon as the connection is back, when
 * sending it twice is safe.
 *
 * nats.js's `js.publish` is one request per message: a subscription entry, a timer and an Error
 * (for its stack) each. A `Publisher` sends every publish of a connection with a reply subject
 * under one wildcard inbox, keeps the waiting ones in a map, and checks their deadlines with one
 * timer; headers are encoded once into the bytes the protocol sends. Many publishes are in flight
 * at once, and each caller learns its own outcome.
 * @since 0.1.0
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { createInbox, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node"
import { Data, Effect } from "effect"
import { BrokerError } from "./BrokerError.ts"

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
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Deduplication id, sent as `Nats-Msg-Id`; retries after a timeout happen only with one. */
  readonly msgId?: string | undefined
  /**
   * Storing it twice is harmless (a KV put of a final record): without a `msgId`, it is still sent
   * again when the connection it went out on was lost. Default false.
   */
  readonly repeatable?: boolean | undefined
}

/** Why a publish failed. @category models @since 0.1.0 */
export type PublishError = BrokerError | NoStreamForSubject

/** @category models @since 0.1.0 */
export type Outcome = { readonly ok: true; readonly ack: Ack } | { readonly ok: false; readonly error: PublishError }

/** @category models @since 0.1.0 */
export interface Options {
  /** How long one attempt waits for the stream's ack. Default 5 seconds. */
  readonly timeoutMs?: number
  /** Attempts in all for a message with a `msgId` (a timeout or a dropped connection). Default 8. */
  readonly attempts?: number
}

/** @category models @since 0.1.0 */
export interface Publisher {
  /** Publishes and calls `done` once with the ack or the failure. Never throws. */
  readonly submit: (message: Message, done: (outcome: Outcome) => void, options?: Options) => void
  /** Publishes in flight now. */
  readonly inFlight: () => number
  /** The connection noticed it was lost: what went out before may never have arrived. */
  readonly disconnected: () => void
  /**
   * The connection is back: what went out before the loss and may be sent again (a `msgId`, or
   * `repeatable`) is sent again now, rather than after its timeout.
   */
  readonly reconnected: () => void
  /** Fails everything in flight and stops; later submits fail at once. */
  readonly close: () => void
}

// ---------------------------------------------------------------------------------------------
// headers

const encoder = new TextEncoder()
const PREAMBLE = "NATS/1.0\r\n"

/**
 * Header values as the protocol sends them, encoded once. nats.js only ever calls `encode()` on
 * the headers it is given, so this stands in for its `MsgHdrs` without a map and canonicalising
 * every key on each publish.
 */
class EncodedHeaders {
  constructor(readonly bytes: Uint8Array) {}
  encode(): Uint8Array {
    return this.bytes
  }
}

// CR or LF in a header would break the frame; ':' in a name too.
const BAD_VALUE = /[\r\n]/
const BAD_NAME = /[\r\n:\s]/

/**
 * Encodes headers (and `Nats-Msg-Id` when given) to the bytes of a NATS header block. Invalid
 * names are dropped, CR/LF in values become spaces.
 * @category encoding @since 0.1.0
 */
export const encodeHeaders = (headers: Readonly<Record<string, string>> | undefined, msgId?: string): Uint8Array => {
  let text = PREAMBLE
  if (headers !== undefined) {
    for (const name in headers) {
      if (name === "Nats-Msg-Id" || BAD_NAME.test(name) || name.length === 0) continue
      const value = headers[name]!
      text += `${name}: ${BAD_VALUE.test(value) ? value.replace(/[\r\n]+/g, " ") : value}\r\n`
    }
  }
  if (msgId !== undefined) text += `Nats-Msg-Id: ${BAD_VALUE.test(msgId) ? msgId.replace(/[\r\n]+/g, " ") : msgId}\r\n`
  return encoder.encode(text + "\r\n")
}

/** The encoded size of a header block: counted with the body against the server's max_payload. @category encoding @since 0.1.0 */
export const headersSize = (headers: Readonly<Record<string, string>> | undefined, msgId?: string): number =>
  headers === undefined && msgId === undefined ? 0 : encodeHeaders(headers, msgId).length

// ---------------------------------------------------------------------------------------------
// the publisher

interface Pending {
  readonly message: Message
  readonly headers: MsgHdrs | undefined
  readonly done: (outcome: Outcome) => void
  readonly timeoutMs: number
  readonly budgetMs: number
  attemptsLeft: number
  deadline: number
  /** Since when nobody answers (503) though a stream stores the subject: a cluster between leaders. */
  unansweredSince?: number
  backoffMs?: number
  /** Send again at the deadline without spending an attempt (nothing was received). */
  resend?: boolean
}

const decoder = new TextDecoder()

const failure = (message: Message, reason: string, cause?: unknown): Outcome => ({
  ok: false,
  error: new BrokerError({ operation: `publish to ${message.subject}`, reason, cause })
})

const parseAck = (message: Message, m: Msg): Outcome => {
  const status = m.headers?.code ?? 0
  // 503: nobody answers on this subject — no stream stores it, JetStream is off, or (a cluster) the
  // stream that stores it is between leaders: the publisher tells these apart
  if (status === 503) return { ok: false, error: new NoStreamForSubject({ subject: message.subject }) }
  if (status >= 400) return failure(message, `status ${status} ${m.headers?.description ?? ""}`.trim())
  let body: {
    readonly stream?: string
    readonly seq?: number
    readonly duplicate?: boolean
    readonly error?: { readonly code?: number; readonly err_code?: number; readonly description?: string }
  }
  try {
    body = JSON.parse(decoder.decode(m.data))
  } catch (cause) {
    return failure(message, "the ack is not JSON", cause)
  }
  if (body.error !== undefined) {
    const e = body.error
    // the stream refused it: the cause carries JetStream's error code for callers to classify
    const apiError = new JetStreamApiError({ code: e.code ?? 0, err_code: e.err_code ?? 0, description: e.description ?? "refused" })
    return failure(message, `${e.description ?? "refused"} (code ${e.code ?? "?"}, err_code ${e.err_code ?? "?"})`, apiError)
  }
  if (typeof body.stream !== "string" || typeof body.seq !== "number") return failure(message, "invalid ack")
  return { ok: true, ack: { stream: body.stream, sequence: body.seq, duplicate: body.duplicate === true } }
}

/**
 * A publisher on `nc`: its reply subscription lives until `close()`.
 * @category constructors @since 0.1.0
 */
export const make = (nc: NatsConnection, defaults: Options = {}): Publisher => {
  const inbox = createInbox()
  const prefix = `${inbox}.`
  const pending = new Map<string, Pending>()
  let next = 0
  let closed = false
  let timer: ReturnType<typeof setInterval> | undefined
  // publishes in flight when the connection was found lost: written to a socket that was dead
  // already, they may never have arrived (those sent since are buffered and go out on reconnect)
  let lost: ReadonlyArray<string> = []

  const finish = (id: string, outcome: Outcome) => {
    const p = pending.get(id)
    if (p === undefined) return
    pending.delete(id)
    if (pending.size === 0 && timer !== undefined) {
      clearInterval(timer)
      timer = undefined
    }
    try {
      p.done(outcome)
    } catch {
      // a caller's callback must not break the publisher
    }
  }

  // Whether some stream stores a subject, asked of JetStream and kept for a second: `undefined`
  // when JetStream did not answer (on a cluster, its meta leader may be changing too).
  const lookups = new Map<string, { readonly at: number; readonly answer: Promise<boolean | undefined> }>()
  const streamStores = (subject: string): Promise<boolean | undefined> => {
    const now = Date.now()
    const known = lookups.get(subject)
    if (known !== undefined && now - known.at < 1000) return known.answer
    if (lookups.size > 1000) lookups.clear()
    const ask = async (): Promise<boolean | undefined> => {
      const m = await nc.request("$JS.API.STREAM.NAMES", encoder.encode(JSON.stringify({ subject })), { timeout: 2000 })
      const body = JSON.parse(decoder.decode(m.data)) as { readonly streams?: ReadonlyArray<string> | null; readonly error?: unknown }
      return body.error !== undefined ? undefined : (body.streams?.length ?? 0) > 0
    }
    // whatever goes wrong in asking (a closed connection, a garbled answer) is "did not answer"
    const answer = ask().catch(() => undefined)
    lookups.set(subject, { at: now, answer })
    return answer
  }

  // Nobody answered (503). With no stream for the subject that is final; when a stream stores it,
  // the stream is between leaders (a cluster node went away): nothing was received, so it is sent
  // again shortly, msgId or not, for as long as the publish's budget lasts.
  const unanswered = (id: string, p: Pending, outcome: Outcome) => {
    const now = Date.now()
    p.unansweredSince ??= now
    if (now - p.unansweredSince >= p.budgetMs) return finish(id, outcome)
    p.deadline = Number.POSITIVE_INFINITY
    void streamStores(p.message.subject).then((stores) => {
      if (!pending.has(id)) return
      // JetStream itself not answering gets the whole budget on a cluster (its meta leader may be
      // moving too) and a few seconds on one server (still starting after a restart: the callers
      // have their own retries, and a held message must not wait out the whole budget)
      const clustered = nc.info?.cluster !== undefined
      const limit = stores === true || clustered ? p.budgetMs : Math.min(p.budgetMs, 5_000)
      if (stores === false || Date.now() - p.unansweredSince! >= limit) return finish(id, outcome)
      p.backoffMs = Math.min((p.backoffMs ?? 100) * 2, 2000)
      p.resend = true
      p.deadline = Date.now() + p.backoffMs
    })
  }

  const sub = nc.subscribe(`${inbox}.*`, {
    callback: (_err, m) => {
      if (m === undefined) return
      const id = m.subject.slice(prefix.length)
      const p = pending.get(id)
      if (p === undefined) return
      const outcome = parseAck(p.message, m)
      if (!outcome.ok && outcome.error._tag === "NoStreamForSubject") return unanswered(id, p, outcome)
      finish(id, outcome)
    }
  })

  const send = (id: string, p: Pending) => {
    try {
      nc.publish(p.message.subject, p.message.data, { reply: prefix + id, ...(p.headers ? { headers: p.headers } : {}) })
    } catch (cause) {
      // too large, or the connection is closed: nothing was sent, and retrying will not help
      finish(id, failure(p.message, (cause as Error)?.message ?? String(cause), cause))
    }
  }

  /** Sends `p` again without spending an attempt: nothing was answered for it. */
  const sendAgain = (id: string, p: Pending, now: number) => {
    p.resend = false
    p.deadline = now + p.timeoutMs
    send(id, p)
  }

  // One timer for every publish in flight: an attempt whose ack is late is sent again (the
  // msgId makes that safe), or fails when it has no msgId or no attempts left.
  const checkDeadlines = () => {
    const now = Date.now()
    for (const [id, p] of pending) {
      if (p.deadline > now) continue
      if (p.resend === true) {
        sendAgain(id, p, now)
        continue
      }
      if (p.message.msgId === undefined || p.attemptsLeft <= 1) {
        finish(id, failure(p.message, `no ack from the stream within ${p.timeoutMs} ms`))
        continue
      }
      p.attemptsLeft -= 1
      p.deadline = now + p.timeoutMs
      send(id, p)
    }
  }

  const submit = (message: Message, done: (outcome: Outcome) => void, options: Options = {}) => {
    if (closed) {
      done(failure(message, "the connection is closing"))
      return
    }
    const timeoutMs = options.timeoutMs ?? defaults.timeoutMs ?? 5000
    const attempts = options.attempts ?? defaults.attempts ?? 8
    const id = (next++).toString(36)
    // no header block at all when there is nothing to say: a body that fills max_payload has no room for one
    const hasHeaders = message.msgId !== undefined || (message.headers !== undefined && Object.keys(message.headers).length > 0)
    const p: Pending = {
      message,
      headers: hasHeaders ? new EncodedHeaders(encodeHeaders(message.headers, message.msgId)) as unknown as MsgHdrs : undefined,
      done,
      timeoutMs,
      budgetMs: timeoutMs * attempts,
      attemptsLeft: attempts,
      deadline: Date.now() + timeoutMs
    }
    pending.set(id, p)
    timer ??= setInterval(checkDeadlines, Math.min(250, Math.max(10, Math.floor(timeoutMs / 4))))
    send(id, p)
  }

  return {
    submit,
    inFlight: () => pending.size,
    disconnected: () => {
      lost = [...pending.keys()]
    },
    reconnected: () => {
      const now = Date.now()
      for (const id of lost) {
        const p = pending.get(id)
        if (p !== undefined && (p.message.msgId !== undefined || p.message.repeatable === true)) sendAgain(id, p, now)
      }
      lost = []
    },
    close: () => {
      if (closed) return
      closed = true
      sub.unsubscribe()
      for (const [id, p] of [...pending]) finish(id, failure(p.message, "the connection is closing"))
    }
  }
}

/**
 * Publishes one message and waits for the stream to store it (see `Publisher.submit`).
 * @category publishing @since 0.1.0
 */
export const publish = (publisher: Publisher, message: Message, options?: Options): Effect.Effect<Ack, PublishError> =>
  Effect.callback<Ack, PublishError>((resume) => {
    publisher.submit(message, (o) => resume(o.ok ? Effect.succeed(o.ack) : Effect.fail(o.error)), options)
  })
