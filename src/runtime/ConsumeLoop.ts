/**
 * One actor's consume loop: take free slots (the actor's and its pool's), pull exactly that many
 * messages, high priority first, then normal, then low, and hand each to the dispatcher in its own
 * fiber. With nothing to pull it sleeps until a message is published on the actor's subjects, or
 * `pollInterval` passes (redeliveries after a nak delay publish nothing).
 * @since 0.1.0
 */
import type { NatsConnection } from "@nats-io/transport-node"
import { Deferred, Duration, Effect, FiberSet, type Latch } from "effect"
import type { Delivery, Puller, PullFailed } from "../broker/Pull.ts"
import type { Priority } from "../broker/Subjects.ts"
import type { Pool } from "../pool/Pool.ts"
import type { Slots } from "../pool/Slots.ts"

/** @category models @since 0.1.0 */
export interface Options {
  readonly nc: NatsConnection
  readonly pool: Pool
  readonly actorSlots: Slots
  /** Open while the actor runs, closed while paused. */
  readonly actorRunning: Latch.Latch
  /** In the order they are served. */
  readonly pullers: ReadonlyArray<readonly [Priority, Puller]>
  /** Subjects whose publications wake an idle loop. */
  readonly wakeSubjects: ReadonlyArray<string>
  readonly dispatch: (d: Delivery) => Effect.Effect<void>
  readonly inflight: FiberSet.FiberSet<void, never>
  /** Most messages pulled in one go. Default 64. */
  readonly maxBatch?: number
  /** Longest idle sleep. Default 1 second. */
  readonly pollInterval?: Duration.Input
}

/** Subscriptions that complete a Deferred on the first publication to any of `subjects`. */
const arm = (nc: NatsConnection, subjects: ReadonlyArray<string>) => {
  const woke = Deferred.makeUnsafe<void>()
  const subs = subjects.map((subject) =>
    nc.subscribe(subject, {
      max: 1,
      callback: () => {
        Deferred.doneUnsafe(woke, Effect.void)
      }
    })
  )
  return {
    wait: (timeout: Duration.Input) => Effect.asVoid(Deferred.await(woke).pipe(Effect.timeoutOption(timeout))),
    disarm: () => {
      for (const sub of subs) sub.unsubscribe()
    }
  }
}

/**
 * Runs until interrupted; fails when a pull fails (the supervisor restarts it).
 * @category loops @since 0.1.0
 */
export const run = (options: Options): Effect.Effect<never, PullFailed> =>
  Effect.gen(function*() {
    const { pool, actorSlots } = options
    const maxBatch = options.maxBatch ?? 64
    const pollInterval = options.pollInterval ?? Duration.seconds(1)

    // Armed before a scan, so a publication between an empty pull and the wait still wakes us.
    let waker: ReturnType<typeof arm> | undefined
    const disarm = () => {
      waker?.disarm()
      waker = undefined
    }
    yield* Effect.addFinalizer(() => Effect.sync(disarm))

    while (true) {
      yield* options.actorRunning.await
      yield* pool.running.await
      const wanted = yield* actorSlots.acquireUpTo(maxBatch)
      const granted = yield* pool.slots.acquireUpTo(wanted)
      if (granted < wanted) yield* actorSlots.release(wanted - granted)

      // Only the pulls are interruptible: every message already pulled is handed to a dispatcher
      // even when the loop is being stopped (a shutdown then lets it finish or naks it).
      const got: Array<Delivery> = []
      const pulled = yield* Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const exit = yield* restore(Effect.gen(function*() {
            for (const [, puller] of options.pullers) {
              if (got.length >= granted) break
              got.push(...(yield* puller.pull(granted - got.length)))
            }
          })).pipe(Effect.exit)
          const unused = granted - got.length
          if (unused > 0) {
            yield* actorSlots.release(unused)
            yield* pool.slots.release(unused)
          }
          for (const d of got) {
            yield* FiberSet.run(options.inflight, options.dispatch(d).pipe(
              Effect.ensuring(Effect.andThen(actorSlots.release(1), pool.slots.release(1)))
            ), { startImmediately: true })
          }
          return exit
        })
      )
      if (pulled._tag === "Failure") return yield* Effect.failCause(pulled.cause)
      if (got.length > 0) disarm()
      else if (waker) {
        yield* waker.wait(pollInterval)
        disarm()
      } else waker = arm(options.nc, options.wakeSubjects)
    }
  }).pipe(Effect.scoped)
