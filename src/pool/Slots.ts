/**
 * A concurrency budget that hands out as many slots as are free, up to a maximum, in one step.
 * A consume loop asks for "up to n", gets k >= 1, and pulls exactly k messages: that is how a
 * worker never holds more messages than it can run (guarantee 6).
 * @since 0.1.0
 */
import { Deferred, Effect } from "effect"

/** @category models @since 0.1.0 */
export interface Slots {
  readonly size: number
  /** Slots in use now. */
  readonly inUse: () => number
  /** Waits until at least one slot is free, then takes `min(free, max)` of them. */
  readonly acquireUpTo: (max: number) => Effect.Effect<number>
  /** Gives back slots; wakes waiters. */
  readonly release: (n: number) => Effect.Effect<void>
  /** Waits until every slot is free. */
  readonly awaitIdle: Effect.Effect<void>
}

/** @category constructors @since 0.1.0 */
export const make = (size: number): Slots => {
  let used = 0
  let waiters: Array<Deferred.Deferred<void>> = []
  let idleWaiters: Array<Deferred.Deferred<void>> = []

  const wake = () => {
    const ws = waiters
    waiters = []
    for (const w of ws) Deferred.doneUnsafe(w, Effect.void)
    if (used === 0) {
      const idle = idleWaiters
      idleWaiters = []
      for (const w of idle) Deferred.doneUnsafe(w, Effect.void)
    }
  }

  const acquireUpTo = (max: number): Effect.Effect<number> =>
    Effect.suspend(() => {
      const free = size - used
      if (free > 0) {
        const n = Math.min(free, Math.max(1, max))
        used += n
        return Effect.succeed(n)
      }
      const w = Deferred.makeUnsafe<void>()
      waiters.push(w)
      return Deferred.await(w).pipe(
        Effect.onInterrupt(() => Effect.sync(() => {
          waiters = waiters.filter((x) => x !== w)
        })),
        Effect.andThen(acquireUpTo(max))
      )
    })

  return {
    size,
    inUse: () => used,
    acquireUpTo,
    release: (n) =>
      Effect.sync(() => {
        used = Math.max(0, used - n)
        wake()
      }),
    awaitIdle: Effect.suspend(() => {
      if (used === 0) return Effect.void
      const w = Deferred.makeUnsafe<void>()
      idleWaiters.push(w)
      return Deferred.await(w)
    })
  }
}
