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
  /** Slots free now. */
  readonly free: () => number
  /** Takes up to `n` free slots at once without waiting; returns how many it took. */
  readonly tryTake: (n: number) => number
  /** Gives back slots without an Effect (same as `release`). */
  readonly releaseUnsafe: (n: number) => void
  /** Calls `listener` once, the next time a slot is given back. */
  readonly onceFree: (listener: () => void) => void
}

/** @category constructors @since 0.1.0 */
export const make = (size: number): Slots => {
  let used = 0
  let waiters: Array<Deferred.Deferred<void>> = []
  let idleWaiters: Array<Deferred.Deferred<void>> = []
  let freeListeners: Array<() => void> = []

  const wake = () => {
    if (freeListeners.length > 0) {
      const ls = freeListeners
      freeListeners = []
      for (const l of ls) l()
    }
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

  const releaseUnsafe = (n: number) => {
    used = Math.max(0, used - n)
    wake()
  }

  return {
    size,
    inUse: () => used,
    acquireUpTo,
    release: (n) => Effect.sync(() => releaseUnsafe(n)),
    free: () => size - used,
    tryTake: (n) => {
      const k = Math.max(0, Math.min(n, size - used))
      used += k
      return k
    },
    releaseUnsafe,
    onceFree: (listener) => {
      freeListeners.push(listener)
    },
    awaitIdle: Effect.suspend(() => {
      if (used === 0) return Effect.void
      const w = Deferred.makeUnsafe<void>()
      idleWaiters.push(w)
      return Deferred.await(w)
    })
  }
}
