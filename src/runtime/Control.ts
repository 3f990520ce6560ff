/**
 * Run-time control shared by every worker: pausing and resuming an actor or a pool. A pause is a
 * key in the control bucket (`pause.actor.<name>`, `pause.pool.<name>`), so it reaches every
 * worker on every host, holds across restarts, and is visible to `msgsys status`. A paused actor
 * stops pulling; its messages wait in the stream, none is lost, and in-flight work finishes.
 * @since 0.1.0
 */
import type { KV } from "@nats-io/kv"
import { Context, Effect, Layer, Scope } from "effect"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import * as KvWatch from "../broker/KvWatch.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"

/** What can be paused. @category models @since 0.1.0 */
export interface Target {
  readonly kind: "actor" | "pool"
  readonly name: string
}

const keyOf = (t: Target) => `pause.${t.kind}.${t.name}`
const targetOf = (key: string): Target | undefined => {
  const m = /^pause\.(actor|pool)\.(.+)$/.exec(key)
  return m ? { kind: m[1] as Target["kind"], name: m[2]! } : undefined
}


/** @category services @since 0.1.0 */
export class Control extends Context.Service<Control, {
  readonly pause: (target: Target) => Effect.Effect<void, BrokerError>
  readonly resume: (target: Target) => Effect.Effect<void, BrokerError>
  readonly paused: Effect.Effect<ReadonlyArray<Target>, BrokerError>
  /**
   * Calls `onChange` with every pause and resume, the current ones first — all delivered before
   * this returns, so a worker knows them before its first pull — while the scope lives.
   */
  readonly watch: (onChange: (target: Target, paused: boolean) => void) => Effect.Effect<void, BrokerError, Scope.Scope>
}>()("msgsys/Control") {}

/** @category constructors @since 0.1.0 */
export const make = Effect.fn("Control.make")(function*(bucket: string) {
  const nats = yield* Nats
  const kv: KV = yield* Effect.tryPromise({
    try: () => nats.kvm.create(bucket, { history: 1 }),
    catch: brokerFailure(`open control bucket ${bucket}`)
  })
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
  return Control.of({
    pause: (t) =>
      Effect.tryPromise({ try: () => kv.put(keyOf(t), "paused"), catch: brokerFailure(`pause ${t.kind} ${t.name}`) }).pipe(
        Effect.asVoid
      ),
    resume: (t) => Effect.tryPromise({ try: () => kv.delete(keyOf(t)), catch: brokerFailure(`resume ${t.kind} ${t.name}`) }),
    paused,
    watch: (onChange) =>
      Effect.gen(function*() {
        for (const t of yield* paused) onChange(t, true)
        yield* KvWatch.follow("pauses", () => kv.watch({ key: "pause.>" }), (e) => {
          const t = targetOf(e.key)
          if (t) onChange(t, e.operation === "PUT")
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
