/**
 * Follows a KV watch for as long as a scope lives. The first watch opens before this returns, so
 * a bad bucket fails at start; a watch that later ends or fails (a lost connection, a deleted
 * consumer) is logged and reopened, and reopening replays the current value of every key, so the
 * follower misses nothing it needs.
 * @since 0.1.0
 */
import type { KvWatchEntry } from "@nats-io/kv"
import type { QueuedIterator } from "@nats-io/transport-node"
import { Cause, Effect, Schedule, type Scope } from "effect"
import { type BrokerError, brokerFailure } from "./BrokerError.ts"

/** @category watching @since 0.1.0 */
export const follow = (
  what: string,
  open: () => Promise<QueuedIterator<KvWatchEntry>>,
  onEntry: (entry: KvWatchEntry) => void
): Effect.Effect<void, BrokerError, Scope.Scope> =>
  Effect.gen(function*() {
    const openWatch = Effect.tryPromise({
      try: open,
      catch: brokerFailure(`watch ${what}`)
    })
    let current = yield* openWatch
    yield* Effect.addFinalizer(() => Effect.sync(() => current.stop()))
    const drain = Effect.tryPromise(async () => {
      for await (const entry of current) onEntry(entry)
    })
    yield* Effect.gen(function*() {
      while (true) {
        const exit = yield* Effect.exit(drain)
        const why = exit._tag === "Failure" ? Cause.pretty(exit.cause) : "it ended"
        yield* Effect.logWarning(`the ${what} watch stopped (${why}); reopening it`)
        current.stop()
        current = yield* openWatch.pipe(Effect.retry(Schedule.spaced("1 second")))
      }
    }).pipe(Effect.forkScoped)
  })
