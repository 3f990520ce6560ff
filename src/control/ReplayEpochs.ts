/**
 * A group's replay epochs: which idempotency-key scope an event is handled under. Events are
 * deduplicated per group by event id; a replay makes the events from its start sequence run once
 * more by giving them a new scope (`group/<name>#<epoch>`), while the events before it keep the
 * scope they had, so one the group has not handled yet runs once and one it has is still skipped.
 *
 * Stored as JSON at `replay.<group>` in the control bucket (see `Control`); every worker of the
 * group follows it before its first pull.
 * @since 0.1.0
 */
import { Schema } from "effect"

/** One replay: the events from stream sequence `from` on run again under `epoch`. @category models @since 0.1.0 */
export interface Replay {
  readonly epoch: number
  readonly from: number
  /** When the replay was made (ISO 8601). */
  readonly at: string
}

/**
 * A group's replays, as stored. `replays` ascend by `from` and by `epoch`: a later replay from an
 * earlier sequence covers the ones it starts before, and they are dropped.
 * @category models @since 0.1.0
 */
export interface Epochs {
  /** The latest epoch; 0 before any replay. */
  readonly epoch: number
  readonly replays: ReadonlyArray<Replay>
}

/** @category schemas @since 0.1.0 */
export const EpochsSchema: Schema.Codec<Epochs, Epochs> = Schema.Struct({
  epoch: Schema.Int,
  replays: Schema.Array(Schema.Struct({ epoch: Schema.Int, from: Schema.Int, at: Schema.String }))
})

/** No replay yet. @category constructors @since 0.1.0 */
export const initial: Epochs = { epoch: 0, replays: [] }

/** The key scope of a group's epoch. @category keys @since 0.1.0 */
export const scopeName = (group: string, epoch: number): string => epoch === 0 ? `group/${group}` : `group/${group}#${epoch}`

/** The epochs after one more replay from stream sequence `from`. @category constructors @since 0.1.0 */
export const add = (epochs: Epochs, from: number, at: Date): Epochs => {
  const epoch = epochs.epoch + 1
  return { epoch, replays: [...epochs.replays.filter((r) => r.from < from), { epoch, from, at: at.toISOString() }] }
}

/**
 * The key scope of each stream sequence: the latest replay that starts at or before it, else the
 * group's first scope. A group never replayed gets a function that returns a constant.
 * @category keys @since 0.1.0
 */
export const scopeOf = (group: string, epochs: Epochs): (streamSequence: number) => string => {
  const base = scopeName(group, 0)
  if (epochs.replays.length === 0) return () => base
  const froms = epochs.replays.map((r) => r.from)
  const scopes = epochs.replays.map((r) => scopeName(group, r.epoch))
  return (sequence) => {
    for (let i = froms.length - 1; i >= 0; i--) if (sequence >= froms[i]!) return scopes[i]!
    return base
  }
}

const decodeJson = Schema.decodeUnknownExit(Schema.fromJsonString(EpochsSchema))

/** Reads stored epochs; `undefined` when the text is not epochs. @category codec @since 0.1.0 */
export const decode = (text: string): Epochs | undefined => {
  const exit = decodeJson(text)
  return exit._tag === "Success" ? exit.value : undefined
}

/** @category codec @since 0.1.0 */
export const encode = (epochs: Epochs): string => JSON.stringify(epochs)
