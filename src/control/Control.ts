/**
 * Run-time control shared by every worker: pausing and resuming an actor or a pool, and the
 * replay epochs of event groups. A pause is a key in the control bucket (`pause.actor.<name>`,
 * `pause.pool.<name>`), so it reaches every worker on every host, holds across restarts, and is
 * visible to `msgsys status`. A paused actor stops pulling; its messages wait in the stream, none
 * is lost, and in-flight work finishes. A group's replay epochs live at `replay.<group>` (see
 * `ReplayEpochs`). Workers follow both through ONE watch, so they see them in the order they were
 * written (a replay pauses its group, writes the epoch, then resumes it).
 * @since 0.1.0
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import type { KV, KvEntry } from "@nats-io/kv"
import { Context, Data, Effect, Layer, Scope } from "effect"
import { type BrokerError, brokerFailure, retryTransient } from "../broker/BrokerError.ts"
import * as KvWatch from "../broker/KvWatch.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as ReplayEpochs from "./ReplayEpochs.ts"

/** What can be paused. @category models @since 0.1.0 */
export interface Target {
  readonly kind: "actor" | "pool"
  readonly name: string
}

/** One change a worker follows. @category models @since 0.1.0 */
export type Change =
  | { readonly _tag: "Pause"; readonly target: Target; readonly paused: boolean }
  /** A group's replay epochs (`ReplayEpochs.initial` when the key was removed). */
  | { readonly _tag: "Replay"; readonly group: string; readonly epochs: ReplayEpochs.Epochs }
  /** A key that does not read: left alone, reported so the worker can log it. */
  | { readonly _tag: "Unreadable"; readonly key: string }

/** A group's stored epochs and the revision to update them from (0: none stored). @category models @since 0.1.0 */
export interface StoredEpochs {
  readonly epochs: ReplayEpochs.Epochs
  readonly revision: number
}

/** Another process changed a group's epochs between the read and the write. @category errors @since 0.1.0 */
export class EpochsChanged extends Data.TaggedError("EpochsChanged")<{ readonly group: string }> {
  override get message() {
    return `the replay epochs of event group ${this.group} changed while this replay ran (another replay of it at ` +
      "the same time?): run the replay again once the other one is done"
  }
}

const keyOf = (t: Target) => `pause.${t.kind}.${t.name}`
const targetOf = (key: string): Target | undefined => {
  const m = /^pause\.(actor|pool)\.(.+)$/.exec(key)
  return m ? { kind: m[1] as Target["kind"], name: m[2]! } : undefined
}
const replayKey = (group: string) => `replay.${group}`
const replayPrefix = "replay."

const isConflict = (e: unknown): boolean =>
  e instanceof JetStreamApiError &&
  (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

/** What an entry of the bucket means, or undefined for a key control does not own. */
const changeOf = (key: string, deleted: boolean, text: () => string): Change | undefined => {
  const target = targetOf(key)
  if (target !== undefined) return { _tag: "Pause", target, paused: !deleted }
  if (!key.startsWith(replayPrefix)) return undefined
  const group = key.slice(replayPrefix.length)
  if (deleted) return { _tag: "Replay", group, epochs: ReplayEpochs.initial }
  const epochs = ReplayEpochs.decode(text())
  return epochs === undefined ? { _tag: "Unreadable", key } : { _tag: "Replay", group, epochs }
}

const isDeleted = (e: KvEntry) => e.operation !== "PUT"

/** @category services @since 0.1.0 */
export class Control extends Context.Service<Control, {
  readonly pause: (target: Target) => Effect.Effect<void, BrokerError>
  readonly resume: (target: Target) => Effect.Effect<void, BrokerError>
  readonly paused: Effect.Effect<ReadonlyArray<Target>, BrokerError>
  /** A group's replay epochs as stored now, with the revision `setEpochs` updates from. */
  readonly epochs: (group: string) => Effect.Effect<StoredEpochs, BrokerError>
  /** Stores a group's epochs if they are still at `revision`. */
  readonly setEpochs: (
    group: string,
    epochs: ReplayEpochs.Epochs,
    revision: number
  ) => Effect.Effect<void, BrokerError | EpochsChanged>
  /**
   * Calls `onChange` with every pause, resume and replay, the current ones first — all delivered
   * before this returns, so a worker knows them before its first pull — while the scope lives.
   */
  readonly watch: (onChange: (change: Change) => void) => Effect.Effect<void, BrokerError, Scope.Scope>
}>()("msgsys/Control") {}

/** @category constructors @since 0.1.0 */
export const make = Effect.fn("Control.make")(function*(bucket: string) {
  const nats = yield* Nats
  const kv: KV = yield* Effect.tryPromise({
    try: () => nats.kvm.create(bucket, { history: 1, replicas: nats.replicas }),
    catch: brokerFailure(`open control bucket ${bucket}`)
  }).pipe(retryTransient)
  const paused = Effect.tryPromise({
    try: async () => {
      const out: Array<Target> = []
      for await (const key of await kv.keys("pause.>")) {
        const e = await kv.get(key)
        const t = targetOf(key)
        if (t && e && e.operation === "PUT") out.push(t)
      }
      return out
    },
    catch: brokerFailure("list pauses")
  })
  /** Every pause and replay stored now. */
  const current = Effect.tryPromise({
    try: async () => {
      const out: Array<Change> = []
      for await (const key of await kv.keys()) {
        const e = await kv.get(key)
        if (e === null || isDeleted(e)) continue
        const change = changeOf(key, false, () => e.string())
        if (change !== undefined) out.push(change)
      }
      return out
    },
    catch: brokerFailure("read pauses and replays")
  })
  return Control.of({
    pause: (t) =>
      Effect.tryPromise({ try: () => kv.put(keyOf(t), "paused"), catch: brokerFailure(`pause ${t.kind} ${t.name}`) }).pipe(
        Effect.asVoid
      ),
    resume: (t) => Effect.tryPromise({ try: () => kv.delete(keyOf(t)), catch: brokerFailure(`resume ${t.kind} ${t.name}`) }),
    paused,
    epochs: (group) =>
      Effect.tryPromise({ try: () => kv.get(replayKey(group)), catch: brokerFailure(`read the replay epochs of ${group}`) }).pipe(
        Effect.flatMap((e): Effect.Effect<StoredEpochs, BrokerError> => {
          if (e === null) return Effect.succeed({ epochs: ReplayEpochs.initial, revision: 0 })
          if (isDeleted(e)) return Effect.succeed({ epochs: ReplayEpochs.initial, revision: e.revision })
          const epochs = ReplayEpochs.decode(e.string())
          return epochs === undefined
            ? Effect.fail(brokerFailure(`read the replay epochs of ${group}`)(
              new Error(`${bucket} key ${replayKey(group)} does not hold replay epochs: delete it with \`nats kv del ${bucket} ${replayKey(group)}\``)
            ))
            : Effect.succeed({ epochs, revision: e.revision })
        })
      ),
    setEpochs: (group, epochs, revision) =>
      Effect.tryPromise({
        try: () => revision === 0
          ? kv.create(replayKey(group), ReplayEpochs.encode(epochs))
          : kv.update(replayKey(group), ReplayEpochs.encode(epochs), revision),
        catch: (e) => isConflict(e) ? new EpochsChanged({ group }) : brokerFailure(`store the replay epochs of ${group}`)(e)
      }).pipe(Effect.asVoid),
    watch: (onChange) =>
      Effect.gen(function*() {
        for (const change of yield* current) onChange(change)
        // one watch of every key: pauses and replays arrive in the order they were written
        yield* KvWatch.follow("pauses and replays", () => kv.watch(), (e) => {
          const change = changeOf(e.key, isDeleted(e), () => e.string())
          if (change !== undefined) onChange(change)
        })
      })
  })
})

/** The control bucket named by the config. @category layers @since 0.1.0 */
export const layer: Layer.Layer<Control, BrokerError, Nats | MsgsysConfig> = Layer.effect(
  Control,
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    return yield* make(Subjects.make(config.streamPrefix).controlBucket)
  })
)
