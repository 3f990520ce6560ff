/**
 * The dead-letter stream: moving a message into it (the one code path every caller uses), and
 * listing, reading and replaying its letters (`DeadLetter.ts` holds the format).
 *
 * Moving (`move`) publishes the letter and waits for the stream's ack; the caller settles the
 * original (term, delete) only after `move` succeeded, so a crash in between leaves the original in
 * its task stream, to be moved again: the letter is deduplicated per stored message
 * (`dlq:<stream>:<seq>`, within the stream's duplicate window), so that makes one letter.
 *
 * When the original and the metadata do not fit in one message (`max_payload`), the original is
 * stored first as a body part, then the letter naming its sequence. A crash between the two leaves
 * an orphan body part and the original in its task stream: the next move stores the letter
 * (reusing the body part when its dedup id fitted beside the body, else storing another). An
 * orphan body part costs space, never a letter.
 *
 * A full dead-letter stream (`discard: new` with its max_bytes or max_msgs reached) refuses the
 * letter: `move` fails with `DeadLetterStreamFull`, counts it in `msgsys_dlq_refused_total`, and
 * logs it at error level at most once a minute per stream; the caller leaves the original in its
 * task stream (nak with `retryWhenFull`), never terms it.
 * @since 0.1.0
 */
import { AckPolicy, DeliverPolicy, JetStreamApiError, type StoredMsg } from "@nats-io/jetstream"
import { InvalidArgumentError, nanos } from "@nats-io/transport-node"
import { Clock, Data, Duration, Effect, Metric, Option } from "effect"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Publish from "../broker/Publish.ts"
import * as Pull from "../broker/Pull.ts"
import { isName, matchesFilter, type Names } from "../broker/Subjects.ts"
import { Headers as EnvelopeHeaders, isValidTenant } from "../envelope/Envelope.ts"
import * as Failpoint from "../failpoint/Failpoint.ts"
import { Results } from "../task/Results.ts"
import type { FailedAttempt } from "../task/TaskRecord.ts"
import * as DeadLetter from "./DeadLetter.ts"

// ---------------------------------------------------------------------------------------------
// moving

/** How long a caller waits before trying a move the full stream refused again. @category constants @since 0.1.0 */
export const retryWhenFull: Duration.Duration = Duration.seconds(30)

const fullLogInterval = Duration.toMillis(Duration.minutes(1))

/** @category metrics @since 0.1.0 */
export const refusedCounter = Metric.counter("msgsys_dlq_refused_total", {
  description: "Dead letters the full dead-letter stream refused (the message stayed in its task stream), by actor",
  incremental: true
})

/** @category metrics @since 0.1.0 */
export const movedCounter = Metric.counter("msgsys_dead_letters_total", {
  description: "Messages moved to the dead-letter stream, by actor and reason (a repeated move of one message counts once)",
  incremental: true
})

/**
 * The dead-letter stream refused the letter because it is full. Nothing is lost: the message stays
 * in its task stream and is tried again.
 * @category errors @since 0.1.0
 */
export class DeadLetterStreamFull extends Data.TaggedError("DeadLetterStreamFull")<{
  readonly stream: string
  readonly taskId: string
  readonly subject: string
  /** The server's words, e.g. "maximum bytes exceeded". */
  readonly reason: string
}> {
  override get message() {
    return `the dead-letter stream ${this.stream} is full (${this.reason}): task ${this.taskId} (${this.subject}) ` +
      `stays in its task stream and is tried again every ${Duration.format(retryWhenFull)}. Fix: replay or delete ` +
      "dead letters (`msgsys dlq list`, `msgsys dlq replay ID`), or raise MSGSYS_DLQ_MAX_BYTES (or shorten " +
      "MSGSYS_DLQ_MAX_AGE) and restart a worker so the stream is updated"
  }
}

/** The letter could not be stored for another reason (broker away, stream missing). @category errors @since 0.1.0 */
export class DeadLetterNotStored extends Data.TaggedError("DeadLetterNotStored")<{
  readonly stream: string
  readonly taskId: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message() {
    return `could not store the dead letter of task ${this.taskId} in ${this.stream}: ${this.reason}. The message ` +
      "stays in its task stream and is tried again; check that the broker is up and the stream exists (`msgsys topology`)"
  }
}

/** @category errors @since 0.1.0 */
export type MoveError = DeadLetterStreamFull | DeadLetterNotStored

/** Where the letter went. @category models @since 0.1.0 */
export interface Moved {
  /** The letter's sequence in the dead-letter stream. */
  readonly sequence: number
  /** The body part's sequence, when the original was stored apart. */
  readonly bodySequence: number | undefined
  /** An earlier move of the same stored message had already stored the letter. */
  readonly duplicate: boolean
}

type Attempt =
  | { readonly _tag: "Stored"; readonly ack: Publish.Ack }
  | { readonly _tag: "TooLarge" }

// 10077 wraps any store failure: a limit reached under `discard: new` names it ("maximum bytes
// exceeded", "maximum messages exceeded", "... per subject exceeded"); 10023: the server's or
// account's JetStream storage is used up
const isFull = (e: unknown) =>
  e instanceof JetStreamApiError &&
  (e.code === 10023 || (e.code === 10077 && /maximum .*exceeded/i.test(e.apiError().description ?? e.message)))
const tooLarge = (e: unknown) =>
  // the client checks max_payload before sending; 10054: the stream's max_msg_size
  (e instanceof InvalidArgumentError && e.message.includes("max_payload")) ||
  (e instanceof JetStreamApiError && e.code === 10054)

/**
 * Moves one stored message to the dead-letter stream: publishes its letter (and, when the
 * original and the metadata exceed `max_payload`, the original apart first) and waits for the
 * acks. Deduplicated per stored message. The caller terms or deletes the original only after this
 * succeeded; on `DeadLetterStreamFull` it leaves the original (nak it with `retryWhenFull`).
 * @category moving @since 0.1.0
 */
export const move = (
  nats: Nats["Service"],
  names: Names,
  original: DeadLetter.Original,
  metadata: DeadLetter.Metadata
): Effect.Effect<Moved, MoveError> =>
  Effect.gen(function*() {
    const stream = names.deadLetterStream
    const refused = (e: BrokerError | Publish.NoStreamForSubject): MoveError => {
      const cause = e._tag === "BrokerError" ? e.cause : undefined
      const reason = cause instanceof JetStreamApiError ? cause.apiError().description ?? cause.message : e.message
      return isFull(cause)
        ? new DeadLetterStreamFull({ stream, taskId: metadata.taskId, subject: metadata.subject, reason })
        : new DeadLetterNotStored({ stream, taskId: metadata.taskId, reason, cause: e })
    }
    const attempt = (message: Publish.Message): Effect.Effect<Attempt, MoveError> =>
      Publish.publish(nats.publisher, message).pipe(
        Effect.map((ack): Attempt => ({ _tag: "Stored", ack })),
        Effect.catch((e) =>
          e._tag === "BrokerError" && tooLarge(e.cause) ? Effect.succeed<Attempt>({ _tag: "TooLarge" }) : Effect.fail(refused(e))
        )
      )

    const { carried, held } = DeadLetter.splitHeaders(original.headers)
    const meta = DeadLetter.metadataHeaders(metadata, original, held)
    const letterSubject = names.deadLetterSubject(metadata.actor, metadata.tenant)
    const msgId = DeadLetter.dedupId(original.stream, original.sequence)

    // one message: the original with the metadata beside its headers
    const whole = yield* attempt({ subject: letterSubject, data: original.body, headers: { ...carried, ...meta }, msgId })
    if (whole._tag === "Stored") {
      return { sequence: whole.ack.sequence, bodySequence: undefined, duplicate: whole.ack.duplicate }
    }

    // apart: the original first (it fitted in its task stream, so without our headers it fits here),
    // marked and deduplicated when that still fits, then the letter naming it
    const bodySubject = names.deadLetterBodySubject(metadata.actor, metadata.tenant)
    const tries: ReadonlyArray<Publish.Message> = [
      { subject: bodySubject, data: original.body, headers: { ...carried, ...DeadLetter.bodyPartHeaders(original) },
        msgId: DeadLetter.bodyDedupId(original.stream, original.sequence) },
      { subject: bodySubject, data: original.body, headers: carried },
      { subject: bodySubject, data: original.body, headers: {} }
    ]
    let body: Publish.Ack | undefined
    for (const message of tries) {
      const r = yield* attempt(message)
      if (r._tag === "Stored") {
        body = r.ack
        break
      }
    }
    if (body === undefined) {
      return yield* new DeadLetterNotStored({
        stream,
        taskId: metadata.taskId,
        reason: `its body of ${original.body.length} bytes is larger than the server accepts in one message ` +
          "(max_payload, or the stream's max_msg_size)"
      })
    }
    const bodySequence = body.sequence
    const letter = yield* attempt({
      subject: letterSubject,
      data: new Uint8Array(0),
      headers: { ...meta, [DeadLetter.Headers.BodySequence]: String(bodySequence) },
      msgId
    }).pipe(
      Effect.tapError((e) =>
        // refused for sure: no letter names this body part, so take it back (a body part an
        // earlier move stored, or one whose fate is unknown, stays: an orphan, never a loss)
        e._tag === "DeadLetterStreamFull" && !body.duplicate
          ? Effect.ignore(Effect.tryPromise(() =>
            nats.manager.streams.deleteMessage(stream, bodySequence, false)
          ))
          : Effect.void
      )
    )
    if (letter._tag === "TooLarge") {
      return yield* new DeadLetterNotStored({
        stream,
        taskId: metadata.taskId,
        reason: "its metadata alone is larger than the server accepts in one message (is max_payload below 32 KB?)"
      })
    }
    return { sequence: letter.ack.sequence, bodySequence, duplicate: letter.ack.duplicate }
  }).pipe(
    Effect.tap((moved) =>
      moved.duplicate ? Effect.void : Metric.update(Metric.withAttributes(movedCounter, { actor: metadata.actor, reason: metadata.reason }), 1)
    ),
    Effect.tapError((e) => e._tag === "DeadLetterStreamFull" ? reportFull(e, metadata.actor) : Effect.void)
  )

// Reports of a full stream, per stream: the first at once, then at most one a minute with the count.
const fullReports = new Map<string, { at: number; refused: number }>()

const reportFull = (e: DeadLetterStreamFull, actor: string) =>
  Effect.gen(function*() {
    yield* Metric.update(Metric.withAttributes(refusedCounter, { actor }), 1)
    const now = yield* Clock.currentTimeMillis
    const last = fullReports.get(e.stream)
    if (last !== undefined && now - last.at < fullLogInterval) {
      last.refused++
      return
    }
    fullReports.set(e.stream, { at: now, refused: 0 })
    const others = last?.refused ?? 0
    yield* Effect.logError(others > 0 ? `${e.message} (${others} more refused in the last minute)` : e.message)
  })

// ---------------------------------------------------------------------------------------------
// reading

/** No dead letter at that sequence. @category errors @since 0.1.0 */
export class LetterNotFound extends Data.TaggedError("LetterNotFound")<{
  readonly sequence: number
  readonly stream: string
  /** Why, when it is not simply absent. */
  readonly detail?: string
}> {
  override get message() {
    return `no dead letter #${this.sequence} in ${this.stream}${this.detail ? ` (${this.detail})` : ""}: ` +
      "list them with `msgsys dlq list`"
  }
}

/** The message at that sequence is not a letter any version of msgsys wrote. @category errors @since 0.1.0 */
export class LetterUnreadable extends Data.TaggedError("LetterUnreadable")<{
  readonly sequence: number
  readonly stream: string
}> {
  override get message() {
    return `dead letter #${this.sequence} in ${this.stream} cannot be read as a msgsys dead letter: look at it with ` +
      `\`nats stream get ${this.stream} ${this.sequence}\``
  }
}

/** The letter's body part is gone. @category errors @since 0.1.0 */
export class LetterBodyMissing extends Data.TaggedError("LetterBodyMissing")<{
  readonly sequence: number
  readonly bodySequence: number
  readonly stream: string
}> {
  override get message() {
    return `dead letter #${this.sequence} stores its body apart as #${this.bodySequence} in ${this.stream}, ` +
      "which is gone (deleted, or expired by the stream's max age): the letter cannot be replayed; " +
      "`msgsys dlq show` still prints its metadata"
  }
}

/** A bad `--actor` or `--tenant`. @category errors @since 0.1.0 */
export class InvalidFilter extends Data.TaggedError("InvalidFilter")<{
  readonly field: "actor" | "tenant"
  readonly value: string
}> {
  override get message() {
    return `invalid ${this.field} ${JSON.stringify(this.value)}: use 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'`
  }
}

/** A dead letter's metadata and where it sits. @category models @since 0.1.0 */
export interface Stored {
  readonly sequence: number
  readonly letter: DeadLetter.Letter
}

/** A letter with the original message. @category models @since 0.1.0 */
export interface Full extends Stored {
  /** The original's headers, as replay sends them. */
  readonly headers: Readonly<Record<string, string>>
  /** The original body; `undefined` when its body part is gone. */
  readonly body: Uint8Array | undefined
}

/** One page of letters. @category models @since 0.1.0 */
export interface Page {
  readonly letters: ReadonlyArray<Stored>
  /** Messages in the range that are no msgsys letter, by sequence (shown, never hidden). */
  readonly unreadable: ReadonlyArray<number>
  /** Letters matching the filter after this page. */
  readonly more: number
  /** The sequence to pass as `after` for the next page; `undefined` when the page is empty. */
  readonly last: number | undefined
}

/** @category models @since 0.1.0 */
export interface ListOptions {
  readonly actor?: string | undefined
  readonly tenant?: string | undefined
  /** Default 100. */
  readonly limit?: number | undefined
  /** Only letters after this stream sequence; default 0 (from the start). */
  readonly after?: number | undefined
}

const headersOf = (m: StoredMsg): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const k of m.header?.keys() ?? []) out[k] = m.header.get(k)
  return out
}

const getMessage = (stream: string, sequence: number) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    // sequence 0 answers "bad request" rather than "not found" (PITFALLS §10)
    if (!Number.isSafeInteger(sequence) || sequence < 1) return undefined
    const m = yield* Effect.tryPromise({
      try: () => nats.manager.streams.getMessage(stream, { seq: sequence }),
      catch: brokerFailure(`read #${sequence} of ${stream}`)
    })
    return m ?? undefined
  })

/**
 * One dead letter with its original headers and body, in either format.
 * @category reading @since 0.1.0
 */
export const read = (names: Names, sequence: number) =>
  Effect.gen(function*() {
    const stream = names.deadLetterStream
    const m = yield* getMessage(stream, sequence)
    if (m === undefined) return yield* new LetterNotFound({ sequence, stream })
    if (names.isDeadLetterBody(m.subject)) {
      return yield* new LetterNotFound({ sequence, stream, detail: "that is the body of a letter stored apart, not a letter" })
    }
    const headers = headersOf(m)
    if (DeadLetter.isLetter(headers)) {
      const letter = DeadLetter.fromHeaders(headers)
      if (Option.isNone(letter)) return yield* new LetterUnreadable({ sequence, stream })
      const l = letter.value
      if (l.bodySequence === undefined) {
        return { sequence, letter: l, headers: DeadLetter.originalHeadersOf(headers), body: m.data } satisfies Full
      }
      const part = yield* getMessage(stream, l.bodySequence)
      return part === undefined
        ? { sequence, letter: l, headers: {}, body: undefined } satisfies Full
        : { sequence, letter: l, headers: DeadLetter.originalHeadersOf(headersOf(part)), body: part.data } satisfies Full
    }
    const legacy = DeadLetter.fromLegacy(m.data)
    if (Option.isNone(legacy)) return yield* new LetterUnreadable({ sequence, stream })
    return { sequence, ...legacy.value } satisfies Full
  })

/** One dead letter's metadata. @category reading @since 0.1.0 */
export const get = (names: Names, sequence: number) =>
  Effect.map(read(names, sequence), ({ letter }): Stored => ({ sequence, letter }))

const emptyPage: Page = { letters: [], unreadable: [], more: 0, last: undefined }

/** How many messages one pull asks for. */
const pullBatch = 256

/**
 * A page of dead letters in stream order, optionally of one actor and/or tenant. Reads headers
 * only (a headers-only ephemeral consumer), so listing never downloads bodies; letters written in
 * format 1 are read whole. An empty or missing dead-letter stream is an empty page.
 * @category reading @since 0.1.0
 */
export const list = (names: Names, options: ListOptions = {}) =>
  Effect.scoped(Effect.gen(function*() {
    const nats = yield* Nats
    const stream = names.deadLetterStream
    if (options.actor !== undefined && !isName(options.actor)) {
      return yield* new InvalidFilter({ field: "actor", value: options.actor })
    }
    if (options.tenant !== undefined && !isValidTenant(options.tenant)) {
      return yield* new InvalidFilter({ field: "tenant", value: options.tenant })
    }
    const limit = Math.max(0, options.limit ?? 100)
    const after = Math.max(0, options.after ?? 0)
    const info = yield* Effect.tryPromise({
      try: () => nats.manager.streams.info(stream),
      catch: (e) => e
    }).pipe(
      Effect.catch((e) =>
        // never created (no worker ever ran): nothing to list
        e instanceof JetStreamApiError && e.code === 10059 ? Effect.succeed(undefined) : Effect.fail(brokerFailure(`read ${stream}`)(e))
      )
    )
    if (info === undefined || info.state.messages === 0) return emptyPage

    const consumer = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          nats.manager.consumers.add(stream, {
            ack_policy: AckPolicy.None,
            headers_only: true,
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: after + 1,
            filter_subject: names.deadLetterFilter(options.actor, options.tenant),
            inactive_threshold: nanos(30_000),
            mem_storage: true,
            num_replicas: 1
          }),
        catch: brokerFailure(`read ${stream}`)
      }),
      (ci) => Effect.ignore(Effect.tryPromise(() => nats.manager.consumers.delete(stream, ci.name)))
    )
    if (consumer.num_pending === 0 || limit === 0) return { ...emptyPage, more: consumer.num_pending }
    const puller = yield* Pull.batches(nats.connection, stream, consumer.name)

    const letters: Array<Stored> = []
    const unreadable: Array<number> = []
    let more = consumer.num_pending
    let last: number | undefined
    while (letters.length + unreadable.length < limit) {
      const batch = yield* puller.next(Math.min(pullBatch, limit - letters.length - unreadable.length))
      if (batch.length === 0) break
      for (const d of batch) {
        more = d.pending
        last = d.streamSequence
        const fromHeaders = DeadLetter.fromHeaders(d.headers ?? {})
        if (Option.isSome(fromHeaders)) {
          letters.push({ sequence: d.streamSequence, letter: fromHeaders.value })
          continue
        }
        // format 1 keeps everything in the body
        const whole = yield* read(names, d.streamSequence).pipe(Effect.option)
        if (Option.isSome(whole)) letters.push({ sequence: d.streamSequence, letter: whole.value.letter })
        else unreadable.push(d.streamSequence)
      }
      if (more === 0) break
    }
    return { letters, unreadable, more, last } satisfies Page
  }))

// ---------------------------------------------------------------------------------------------
// selecting

/** Which letters `select` picks; every field narrows, none means all. @category models @since 0.1.0 */
export interface Filter {
  readonly actor?: string | undefined
  readonly tenant?: string | undefined
  /** The task subject, or a NATS pattern of task subjects (`etl.*`, `etl.>`). */
  readonly subject?: string | undefined
  /** Only letters dead-lettered at or after this time (epoch ms). */
  readonly since?: number | undefined
  /** Only letters dead-lettered before this time (epoch ms). */
  readonly before?: number | undefined
}

/** A selected letter: where it and its body part sit. @category models @since 0.1.0 */
export interface Selected {
  readonly sequence: number
  readonly bodySequence: number | undefined
  readonly taskId: string
}

/** What `select` found. @category models @since 0.1.0 */
export interface Matches {
  /** The matching letters in stream order. */
  readonly letters: ReadonlyArray<Selected>
  /** Messages in the range that are no msgsys letter: never selected, counted so they are not hidden. */
  readonly unreadable: number
}

/** A bad `--subject`. @category errors @since 0.1.0 */
export class InvalidSubjectFilter extends Data.TaggedError("InvalidSubjectFilter")<{ readonly value: string }> {
  override get message() {
    return `invalid subject ${JSON.stringify(this.value)}: give a task subject such as etl.extract, or a pattern ` +
      "such as etl.* or etl.> (tokens separated by dots, no spaces)"
  }
}

const selectPage = 1000

/**
 * The letters that match `selection`, in stream order, as the stream holds them now: letters
 * stored while it reads are left out, so a command acts on exactly what it counted. Reads
 * headers only, a page at a time.
 * @category selecting @since 0.1.0
 */
export const select = (names: Names, selection: Filter = {}) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    const subject = selection.subject
    if (subject !== undefined && (subject.length === 0 || subject.split(".").some((t) => !/^[^\s.]+$/.test(t)))) {
      return yield* new InvalidSubjectFilter({ value: subject })
    }
    const info = yield* Effect.tryPromise({
      try: () => nats.manager.streams.info(names.deadLetterStream),
      catch: (e) => e
    }).pipe(
      Effect.map((i) => i.state.last_seq),
      Effect.catch((e) =>
        e instanceof JetStreamApiError && e.code === 10059
          ? Effect.succeed(0)
          : Effect.fail(brokerFailure(`read ${names.deadLetterStream}`)(e))
      )
    )
    const letters: Array<Selected> = []
    let unreadable = 0
    let after = 0
    while (info > after) {
      const page = yield* list(names, { actor: selection.actor, tenant: selection.tenant, limit: selectPage, after })
      for (const { sequence, letter } of page.letters) {
        if (sequence > info) continue
        if (subject !== undefined && !matchesFilter(letter.subject, subject)) continue
        if (selection.since !== undefined && letter.deadLetteredAt < selection.since) continue
        if (selection.before !== undefined && letter.deadLetteredAt >= selection.before) continue
        letters.push({ sequence, bodySequence: letter.bodySequence, taskId: letter.taskId })
      }
      unreadable += page.unreadable.filter((s) => s <= info).length
      if (page.last === undefined || page.more === 0) break
      after = page.last
    }
    return { letters, unreadable } satisfies Matches
  })

// ---------------------------------------------------------------------------------------------
// removing

const deleteMessage = (stream: string, sequence: number) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    return yield* Effect.tryPromise({
      try: () => nats.manager.streams.deleteMessage(stream, sequence, false),
      catch: (e) => e
    }).pipe(
      // 10057: no message at that sequence (deleted already)
      Effect.catch((e) =>
        e instanceof JetStreamApiError && e.code === 10057
          ? Effect.succeed(false)
          : Effect.fail(brokerFailure(`delete #${sequence} of ${stream}`)(e))
      )
    )
  })

/**
 * Deletes a letter, then its body part if it has one (a crash between the two leaves an orphan
 * body part, never a letter without its body). False when the letter was gone already.
 * @category removing @since 0.1.0
 */
export const remove = (names: Names, letter: { readonly sequence: number; readonly bodySequence: number | undefined }) =>
  Effect.gen(function*() {
    const stream = names.deadLetterStream
    const removed = yield* deleteMessage(stream, letter.sequence)
    if (letter.bodySequence !== undefined) {
      const bodySequence = letter.bodySequence
      yield* deleteMessage(stream, bodySequence).pipe(
        Effect.catch(() => Effect.logWarning(`could not delete #${bodySequence}, the body of dead letter #${letter.sequence}`))
      )
    }
    return removed
  })

// ---------------------------------------------------------------------------------------------
// replaying

/** How a letter is replayed. @category models @since 0.1.0 */
export interface ReplayOptions {
  /**
   * The DLQ worker's count, sent as `Msgsys-Dlq-Retries` on the replayed task. Default: none (a
   * replay by a person starts the DLQ worker's count afresh).
   */
  readonly retries?: number | undefined
}

/**
 * Publishes an original message again through the normal path, as a new message with a fresh
 * attempt count: same subject, headers and task id (its `Msgsys-Id` is added when its publisher
 * named it only by `Nats-Msg-Id`, which is not replayed). `dedupId` makes a second replay within
 * the task stream's duplicate window store nothing; an original that filled `max_payload` has no
 * room for it and goes as it was stored.
 *
 * The task's status goes back to queued first, so a client waiting on it sees the new run's
 * outcome, not the old one; but only from dead (or none): a status that moved on says an earlier
 * replay of this letter ran or runs (a crash kept the letter), and a deduplicated replay starts no
 * run to move a queued status on, so it puts the status it replaced back.
 * @category replaying @since 0.1.0
 */
export const resend = (
  original: {
    readonly taskId: string
    readonly subject: string
    readonly storedSubject: string
    readonly tenant: string
    readonly history: ReadonlyArray<FailedAttempt>
    readonly headers: Readonly<Record<string, string>>
    readonly body: Uint8Array
  },
  dedupId: string,
  options: ReplayOptions = {}
) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    const results = yield* Results
    const now = yield* Clock.currentTimeMillis
    const prior = yield* results.get(original.taskId)
    const requeue = Option.isNone(prior) || prior.value.status === "dead"
    if (requeue) {
      yield* results.put({
        id: original.taskId,
        subject: original.subject,
        tenant: original.tenant,
        status: "queued",
        attempt: 0,
        updatedAt: now,
        enqueuedAt: now,
        history: original.history
      })
    }
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(original.headers)) {
      if (k.toLowerCase() !== DeadLetter.RetriesHeader.toLowerCase()) headers[k] = v
    }
    if (options.retries !== undefined && options.retries > 0) headers[DeadLetter.RetriesHeader] = String(options.retries)
    const hasId = Object.keys(headers).some((k) => k.toLowerCase() === EnvelopeHeaders.Id.toLowerCase())
    const withId = hasId ? headers : { ...headers, [EnvelopeHeaders.Id]: original.taskId }
    const data = original.body
    const subject = original.storedSubject
    const tries: ReadonlyArray<Publish.Message> = [
      { subject, data, headers: withId, msgId: dedupId },
      { subject, data, headers: withId },
      { subject, data, headers }
    ]
    let ack: Publish.Ack | undefined
    for (const [i, message] of tries.entries()) {
      ack = yield* Publish.publish(nats.publisher, message).pipe(
        Effect.catchIf((e) => e._tag === "BrokerError" && tooLarge(e.cause) && i < tries.length - 1, () => Effect.succeed(undefined))
      )
      if (ack !== undefined) break
    }
    if (ack?.duplicate === true && requeue && Option.isSome(prior)) yield* results.put(prior.value)
    return { duplicate: ack?.duplicate === true }
  })

/** The dedup id of the replay of one letter. @category replaying @since 0.1.0 */
export const replayDedupId = (stream: string, sequence: number) => `replay:${stream}:${sequence}`

/**
 * Replays a letter that was read: its original through the normal path (`resend`, deduplicated
 * per letter, so replaying twice within the duplicate window enqueues once), then deletes the
 * letter and its body part. Fails with `LetterBodyMissing` when the body part is gone.
 * @category replaying @since 0.1.0
 */
export const replayRead = (names: Names, full: Full, options: ReplayOptions = {}) =>
  Effect.gen(function*() {
    const { sequence, letter, headers, body } = full
    if (body === undefined) {
      return yield* new LetterBodyMissing({ sequence, bodySequence: letter.bodySequence ?? 0, stream: names.deadLetterStream })
    }
    yield* resend({ ...letter, headers, body }, replayDedupId(names.deadLetterStream, sequence), options)
    yield* Failpoint.hit("dlq-after-replay")
    yield* remove(names, { sequence, bodySequence: letter.bodySequence })
    return letter.taskId
  })

/**
 * Republishes a dead letter's original message (same subject, headers and task id, a fresh
 * attempt count), then deletes the letter, then its body part if it has one. The task's status
 * goes back to queued first, so a client waiting on it sees the new run's outcome. Deduplicated
 * per letter: replaying twice within the duplicate window enqueues once. Returns the task id.
 * @category replaying @since 0.1.0
 */
export const replay = (names: Names, sequence: number, options: ReplayOptions = {}) =>
  Effect.flatMap(read(names, sequence), (full) => replayRead(names, full, options))
