/**
 * Exhausted letters: what the DLQ worker gave up on, moved out of the dead-letter stream into the
 * `ExhaustedStore` for a person (guarantee 4), and replayed from there through the normal path.
 *
 * `exhaust` stores the letter (one row per task), records an `exhausted` audit row, and only
 * then deletes the letter from the stream: a crash in between leaves the letter, which is
 * exhausted again (the row replaced, the audit row perhaps written twice, never lost).
 *
 * `replay` publishes the stored original as a new message with a fresh attempt count and marks
 * the row replayed. It is deduplicated per row and replay (`Nats-Msg-Id`), so running it twice
 * enqueues once, and a row already replayed is replayed again only when asked (`again`).
 * @since 0.1.0
 */
import { Clock, Data, Effect, Option } from "effect"
import type { Names } from "../broker/Subjects.ts"
import { Headers as EnvelopeHeaders } from "../envelope/Envelope.ts"
import { Ledger } from "../ledger/Ledger.ts"
import type { FailedAttempt, StoredError } from "../task/TaskRecord.ts"
import * as DeadLetters from "./DeadLetters.ts"
import { type Exhausted, type ExhaustedAttempt, ExhaustedStore } from "./ExhaustedStore.ts"

/** The pool named in audit rows the DLQ worker writes (it runs outside any actor's pool). @category constants @since 0.1.0 */
export const auditPool = "dlq"

/**
 * Stores a letter as exhausted, records its `exhausted` audit row, then deletes it (and its body
 * part) from the dead-letter stream. `why` says why it is not retried (any more). Fails with
 * `LetterBodyMissing` when the body part is gone (nothing is stored or deleted then).
 * @category exhausting @since 0.1.0
 */
export const exhaust = (names: Names, full: DeadLetters.Full, why: string) =>
  Effect.gen(function*() {
    const store = yield* ExhaustedStore
    const ledger = yield* Ledger
    const { sequence, letter, headers, body } = full
    if (body === undefined) {
      return yield* new DeadLetters.LetterBodyMissing({
        sequence,
        bodySequence: letter.bodySequence ?? 0,
        stream: names.deadLetterStream
      })
    }
    const now = yield* Clock.currentTimeMillis
    yield* store.add({
      id: letter.taskId,
      originalSubject: letter.storedSubject,
      actor: letter.actor,
      tenant: letter.tenant,
      headers,
      payload: body,
      error: letter.error,
      reason: letter.reason,
      retries: letter.retries,
      attempts: letter.history.map((a) => ({ attempt: a.attempt, at: a.at, error: a.error })),
      deadLetteredAt: letter.deadLetteredAt,
      exhaustedAt: now
    })
    yield* ledger.settle([{
      _tag: "Record",
      audit: [{
        messageId: letter.taskId,
        subject: letter.subject,
        actor: letter.actor,
        pool: auditPool,
        tenant: letter.tenant,
        correlationId: headers[EnvelopeHeaders.CorrelationId] ?? letter.taskId,
        attempt: letter.attempts,
        step: "exhausted",
        at: now,
        error: `${why}: ${letter.error.message}`
      }]
    }])
    yield* DeadLetters.remove(names, { sequence, bodySequence: letter.bodySequence })
  })

/** No exhausted letter with that id. @category errors @since 0.1.0 */
export class ExhaustedNotFound extends Data.TaggedError("ExhaustedNotFound")<{ readonly id: string }> {
  override get message() {
    return `no exhausted letter ${JSON.stringify(this.id)}: list them with \`msgsys dlq exhausted list\``
  }
}

/** The letter was replayed already; replaying it again needs `again`. @category errors @since 0.1.0 */
export class AlreadyReplayed extends Data.TaggedError("AlreadyReplayed")<{ readonly id: string; readonly at: number }> {
  override get message() {
    return `exhausted letter ${this.id} was replayed at ${new Date(this.at).toISOString()}: its new run's status is ` +
      `in \`msgsys result ${this.id}\`. To replay it once more, pass --again`
  }
}

const asStoredError = (error: unknown): StoredError => {
  if (typeof error === "object" && error !== null) {
    const e = error as { tag?: unknown; message?: unknown }
    if (typeof e.tag === "string" && typeof e.message === "string") return { tag: e.tag, message: e.message }
  }
  return { tag: "Error", message: typeof error === "string" ? error : JSON.stringify(error) ?? String(error) }
}

const historyOf = (attempts: ReadonlyArray<ExhaustedAttempt>): ReadonlyArray<FailedAttempt> =>
  attempts.map((a) => ({ attempt: a.attempt, at: a.at, error: asStoredError(a.error) }))

/** The dedup id of one replay of an exhausted row. @category replaying @since 0.1.0 */
export const replayDedupId = (row: Pick<Exhausted, "id" | "exhaustedAt" | "replayedAt">) =>
  `replay-exhausted:${row.id}:${row.exhaustedAt}:${row.replayedAt ?? 0}`

/** How an exhausted letter is replayed. @category models @since 0.1.0 */
export interface ReplayOptions {
  /** Replay a row that was replayed before. Default false. */
  readonly again?: boolean | undefined
}

/**
 * Replays an exhausted letter through the normal path (same subject, headers and task id, a
 * fresh attempt count; the DLQ worker counts afresh too), then marks it replayed. Returns the
 * task id. If the replay fails again it comes back as a dead letter, and in the end (after the
 * DLQ worker's retries) replaces this row.
 * @category replaying @since 0.1.0
 */
export const replay = (names: Names, id: string, options: ReplayOptions = {}) =>
  Effect.gen(function*() {
    const store = yield* ExhaustedStore
    const found = yield* store.get(id)
    if (Option.isNone(found)) return yield* new ExhaustedNotFound({ id })
    const row = found.value
    if (row.replayedAt !== undefined && options.again !== true) {
      return yield* new AlreadyReplayed({ id, at: row.replayedAt })
    }
    yield* DeadLetters.resend({
      taskId: row.id,
      subject: names.parseTaskSubject(row.originalSubject).subject,
      storedSubject: row.originalSubject,
      tenant: row.tenant,
      history: historyOf(row.attempts),
      headers: row.headers,
      body: Uint8Array.from(Buffer.from(row.payload, "base64"))
    }, replayDedupId(row))
    yield* store.markReplayed(id, yield* Clock.currentTimeMillis)
    return row.id
  })
