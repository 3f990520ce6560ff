/**
 * Per-key ordering for `partitionBy`: runs with the same key one at a time, in the order they
 * arrived; runs with different keys in parallel. Holds one entry per key that has work waiting.
 * @since 0.1.0
 */
import { Deferred, Effect } from "effect"

/** @category models @since 0.1.0 */
export interface Partitions {
  /** Runs `effect` after every earlier run with the same key has finished. */
  readonly withKey: <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Keys with work running or waiting. */
  readonly size: () => number
}

/** @category constructors @since 0.1.0 */
export const make = (): Partitions => {
  const tails = new Map<string, Deferred.Deferred<void>>()
  return {
    size: () => tails.size,
    withKey: (key, effect) =>
      Effect.suspend(() => {
        // Claim the place in line synchronously, at call time: that is what fixes the order.
        const previous = tails.get(key)
        const mine = Deferred.makeUnsafe<void>()
        tails.set(key, mine)
        const wait = previous ? Deferred.await(previous) : Effect.void
        return wait.pipe(
          Effect.andThen(effect),
          Effect.ensuring(Effect.sync(() => {
            Deferred.doneUnsafe(mine, Effect.void)
            if (tails.get(key) === mine) tails.delete(key)
          }))
        )
      })
  }
}
