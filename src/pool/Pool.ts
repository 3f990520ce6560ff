/**
 * Pools: named concurrency budgets (`fast`, `slow`, or user-defined). Each pool has its own slots
 * and its own pause gate; actors in one pool never take slots of another, so a saturated slow
 * pool cannot delay the fast one.
 * @since 0.1.0
 */
import { Data, Effect, Latch } from "effect"
import * as Slots from "./Slots.ts"

/** An actor names a pool that is not configured. @category errors @since 0.1.0 */
export class UnknownPool extends Data.TaggedError("UnknownPool")<{
  readonly pool: string
  readonly actor: string
  readonly configured: ReadonlyArray<string>
}> {
  override get message() {
    return `actor ${this.actor} runs in pool "${this.pool}", which is not configured (configured: ` +
      `${this.configured.join(", ")}): add it to MSGSYS_POOLS, e.g. MSGSYS_POOLS="${this.pool}=4"`
  }
}

/** @category models @since 0.1.0 */
export interface Pool {
  readonly name: string
  readonly slots: Slots.Slots
  /** Open while the pool runs; closed while it is paused. */
  readonly running: Latch.Latch
}

/** @category constructors @since 0.1.0 */
export const make = (name: string, concurrency: number): Effect.Effect<Pool> =>
  Effect.map(Latch.make(true), (running) => ({ name, slots: Slots.make(concurrency), running }))

/**
 * The pools the given actors need, from the configured budgets.
 * @category constructors @since 0.1.0
 */
export const makeAll = (
  configured: ReadonlyArray<{ readonly name: string; readonly concurrency: number }>,
  actors: ReadonlyArray<{ readonly name: string; readonly pool: string }>
): Effect.Effect<ReadonlyMap<string, Pool>, UnknownPool> =>
  Effect.gen(function*() {
    const budgets = new Map(configured.map((p) => [p.name, p.concurrency]))
    const pools = new Map<string, Pool>()
    for (const actor of actors) {
      if (pools.has(actor.pool)) continue
      const concurrency = budgets.get(actor.pool)
      if (concurrency === undefined) {
        return yield* new UnknownPool({ pool: actor.pool, actor: actor.name, configured: [...budgets.keys()] })
      }
      pools.set(actor.pool, yield* make(actor.pool, concurrency))
    }
    return pools
  })
