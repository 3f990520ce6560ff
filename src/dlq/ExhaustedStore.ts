/**
 * Dead letters the DLQ worker gave up on, kept for a person to inspect, replay or delete
 * (guarantee 4: dead letters are never dropped). One row per task: a task exhausted again after a
 * replay replaces its row.
 * @since 0.1.0
 */
import { Context, Data, type Effect, type Option } from "effect"

/** One failed attempt in the history of an exhausted message. @category models @since 0.1.0 */
export interface ExhaustedAttempt {
  readonly attempt: number
  /** Epoch ms. */
  readonly at: number
  /** A JSON value: a message, or a structured error such as `TaskRecord.StoredError`. */
  readonly error: unknown
}

/** An exhausted dead letter as stored. @category models @since 0.1.0 */
export interface Exhausted {
  /** The task id (unique in the store). */
  readonly id: string
  /** The subject the original was stored on (with any priority prefix): a replay publishes there. */
  readonly originalSubject: string
  readonly actor: string
  readonly tenant: string
  readonly headers: Readonly<Record<string, string>>
  /** The original body, base64. */
  readonly payload: string
  /** The last error: a JSON value (a message, or a structured error). */
  readonly error: unknown
  /** Why it was dead-lettered (a `DeadLetter.Reason`: exhausted, permanent, poison, max_deliveries). */
  readonly reason: string
  /** How many times the DLQ worker replayed it before giving up. */
  readonly retries: number
  readonly attempts: ReadonlyArray<ExhaustedAttempt>
  /** Epoch ms. */
  readonly deadLetteredAt: number
  /** Epoch ms. */
  readonly exhaustedAt: number
  /** Epoch ms of the last replay, if any. */
  readonly replayedAt: number | undefined
}

/** What `add` takes: the payload as bytes or base64; reason default "exhausted", retries default 0. @category models @since 0.1.0 */
export interface ExhaustedInput extends Omit<Exhausted, "payload" | "replayedAt" | "reason" | "retries"> {
  readonly payload: Uint8Array | string
  readonly reason?: string | undefined
  readonly retries?: number | undefined
}

/** @category models @since 0.1.0 */
export interface ListOptions {
  readonly actor?: string | undefined
  readonly tenant?: string | undefined
  /** Default 100. Newest first. */
  readonly limit?: number | undefined
}

/** The exhausted store could not be read or written. @category errors @since 0.1.0 */
export class ExhaustedStoreError extends Data.TaggedError("ExhaustedStoreError")<{
  readonly operation: string
  readonly id: string | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    const which = this.id === undefined ? "" : ` of ${this.id}`
    return `exhausted dead letters: ${this.operation}${which} failed: ${why}. ` +
      "The dead letter stays in the dead-letter stream; check the msgsys SQLite file and retry."
  }
}

/** @category services @since 0.1.0 */
export class ExhaustedStore extends Context.Service<ExhaustedStore, {
  /** Stores the letter; adding an id again replaces it (and clears `replayedAt`). */
  readonly add: (letter: ExhaustedInput) => Effect.Effect<void, ExhaustedStoreError>
  readonly list: (options?: ListOptions) => Effect.Effect<ReadonlyArray<Exhausted>, ExhaustedStoreError>
  /** How many letters match the filter (the limit aside). */
  readonly count: (options?: Omit<ListOptions, "limit">) => Effect.Effect<number, ExhaustedStoreError>
  readonly get: (id: string) => Effect.Effect<Option.Option<Exhausted>, ExhaustedStoreError>
  /** Records a replay; `false` if there is no such letter. */
  readonly markReplayed: (id: string, at: number) => Effect.Effect<boolean, ExhaustedStoreError>
  /** Deletes the letter; `false` if there was none. */
  readonly remove: (id: string) => Effect.Effect<boolean, ExhaustedStoreError>
}>()("msgsys/ExhaustedStore") {}
