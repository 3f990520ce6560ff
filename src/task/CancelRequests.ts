/**
 * Cancel requests: `cancel.<task id>` in the results bucket, kept for the bucket's TTL, so a
 * worker skips a cancelled task when it arrives (even one that starts after the request) and
 * interrupts it when it runs. Every worker follows them with one watch.
 * @since 0.1.0
 */
import { Context, type Duration, Effect, Layer, type Scope } from "effect"
import { type BrokerError, brokerFailure, retryTransient } from "../broker/BrokerError.ts"
import * as KvWatch from "../broker/KvWatch.ts"
import type { Nats } from "../broker/Nats.ts"
import type { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as ResultsBucket from "./internal/resultsBucket.ts"

/** @category services @since 0.1.0 */
export class CancelRequests extends Context.Service<CancelRequests, {
  readonly request: (taskId: string) => Effect.Effect<void, BrokerError>
  /**
   * Calls `onCancel` for every cancel request, past (within the TTL) and future, while the scope
   * lives. The past ones are all delivered before this returns.
   */
  readonly watch: (onCancel: (taskId: string) => void) => Effect.Effect<void, BrokerError, Scope.Scope>
}>()("msgsys/CancelRequests") {}

const prefix = "cancel."

/** The requests in the results bucket (created if missing). @category constructors @since 0.1.0 */
export const make = Effect.fn("CancelRequests.make")(function*(bucket: string, ttl: Duration.Duration) {
  const { kv } = yield* ResultsBucket.open(bucket, ttl)
  return CancelRequests.of({
    request: (taskId) =>
      Effect.tryPromise({ try: () => kv.put(prefix + taskId, "1"), catch: brokerFailure(`cancel task ${taskId}`) }).pipe(
        Effect.asVoid
      ),
    watch: (onCancel) =>
      Effect.gen(function*() {
        // the requests so far first, so a worker knows them before its first pull
        const keys = yield* Effect.tryPromise({
          try: async () => {
            const out: Array<string> = []
            for await (const k of await kv.keys(`${prefix}>`)) out.push(k)
            return out
          },
          catch: brokerFailure("list cancel requests")
        }).pipe(retryTransient)
        for (const k of keys) onCancel(k.slice(prefix.length))
        yield* KvWatch.follow("cancel requests", () => kv.watch({ key: `${prefix}>` }), (e) => {
          if (e.operation === "PUT") onCancel(e.key.slice(prefix.length))
        })
      })
  })
})

/** The requests in memory (one process), for unit tests and the in-memory broker. @category constructors @since 0.1.0 */
export const makeMemory: Effect.Effect<CancelRequests["Service"]> = Effect.sync(() => {
  const cancels = new Set<string>()
  const listeners = new Set<(taskId: string) => void>()
  return CancelRequests.of({
    request: (taskId) =>
      Effect.sync(() => {
        cancels.add(taskId)
        for (const l of listeners) l(taskId)
      }),
    watch: (onCancel) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          for (const id of cancels) onCancel(id)
          listeners.add(onCancel)
        }),
        () => Effect.sync(() => listeners.delete(onCancel))
      )
  })
})

/** The requests in the results bucket named by the config. @category layers @since 0.1.0 */
export const layer: Layer.Layer<CancelRequests, BrokerError, Nats | MsgsysConfig> = Layer.effect(
  CancelRequests,
  Effect.flatMap(ResultsBucket.fromConfig, ({ bucket, ttl }) => make(bucket, ttl))
)
