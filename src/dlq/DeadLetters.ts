/**
 * Reading and replaying the dead-letter stream: list letters (by actor and tenant), show one,
 * replay one (republish the original subject, headers and payload under the same task id, then
 * delete the letter). A replay is deduplicated per letter, so replaying twice by accident runs the
 * task once.
 * @since 0.1.0
 */
import { Clock, Data, Effect, Exit } from "effect"
import { brokerFailure } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Publish from "../broker/Publish.ts"
import type { Names } from "../broker/Subjects.ts"
import { Results } from "../task/Results.ts"
import * as DeadLetter from "./DeadLetter.ts"

/** A dead letter and where it sits in the dead-letter stream. @category models @since 0.1.0 */
export interface Stored {
  readonly sequence: number
  readonly letter: DeadLetter.DeadLetter
}

/** No dead letter at that sequence. @category errors @since 0.1.0 */
export class LetterNotFound extends Data.TaggedError("LetterNotFound")<{ readonly sequence: number; readonly stream: string }> {
  override get message() {
    return `no dead letter #${this.sequence} in ${this.stream}: list them with \`msgsys dlq list\``
  }
}


const read = (names: Names, sequence: number) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    // null means no letter at that sequence; a broker error is reported as one, not as "missing"
    const stored = yield* Effect.tryPromise({
      try: () => nats.manager.streams.getMessage(names.deadLetterStream, { seq: sequence }),
      catch: brokerFailure(`read dead letter #${sequence}`)
    })
    if (stored === null) return undefined
    const decoded = DeadLetter.decode(new TextDecoder().decode(stored.data))
    return Exit.isSuccess(decoded) ? { sequence, letter: decoded.value } : undefined
  })

/**
 * Dead letters in stream order, optionally of one actor or tenant.
 * @category reading @since 0.1.0
 */
export const list = (names: Names, filter: { readonly actor?: string; readonly tenant?: string; readonly limit?: number } = {}) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    const info = yield* Effect.tryPromise({
      try: () => nats.manager.streams.info(names.deadLetterStream),
      catch: brokerFailure(`read ${names.deadLetterStream}`)
    })
    const out: Array<Stored> = []
    const limit = filter.limit ?? 100
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && out.length < limit; seq++) {
      const stored = yield* read(names, seq)
      if (!stored) continue
      if (filter.actor !== undefined && stored.letter.actor !== filter.actor) continue
      if (filter.tenant !== undefined && stored.letter.tenant !== filter.tenant) continue
      out.push(stored)
    }
    return out as ReadonlyArray<Stored>
  })

/** One dead letter. @category reading @since 0.1.0 */
export const get = (names: Names, sequence: number) =>
  Effect.flatMap(read(names, sequence), (stored) =>
    stored ? Effect.succeed(stored) : Effect.fail(new LetterNotFound({ sequence, stream: names.deadLetterStream })))

/**
 * Republishes a dead letter's original message (same subject, headers and task id), then deletes
 * the letter. The task's status goes back to queued first, so a client waiting on it sees the new
 * run's outcome, not the old one. Returns the task id.
 * @category replaying @since 0.1.0
 */
export const replay = (names: Names, sequence: number) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    const results = yield* Results
    const { letter } = yield* get(names, sequence)
    const now = yield* Clock.currentTimeMillis
    yield* results.put({
      id: letter.taskId,
      subject: letter.subject,
      tenant: letter.tenant,
      status: "queued",
      attempt: 0,
      updatedAt: now,
      enqueuedAt: now,
      history: letter.history
    })
    yield* Publish.publish(nats.publisher, {
      subject: letter.storedSubject,
      data: DeadLetter.payloadBytes(letter),
      headers: letter.headers,
      msgId: `replay:${names.deadLetterStream}:${sequence}`
    })
    yield* Effect.tryPromise({
      try: () => nats.manager.streams.deleteMessage(names.deadLetterStream, sequence, false),
      catch: brokerFailure(`delete dead letter #${sequence}`)
    })
    return letter.taskId
  })
