/**
 * Where schedules and their last ticks live, with compare-and-set writes: a change made from a
 * stale read fails instead of overwriting another's, so replicas can race on a schedule's last
 * tick and people on its definition. `KvScheduleStore` keeps them in the schedules KV bucket;
 * `layerMemory` here is for unit tests.
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, type Scope } from "effect"
import type { BrokerError } from "../broker/BrokerError.ts"
import type { ScheduleRecord, TickRecord } from "./ScheduleRecord.ts"

/** A value and the revision it was read at. @category models @since 0.1.0 */
export interface Versioned<A> {
  readonly value: A
  readonly revision: number
}

/** @category services @since 0.1.0 */
export class ScheduleStore extends Context.Service<ScheduleStore, {
  readonly get: (name: string) => Effect.Effect<Option.Option<Versioned<ScheduleRecord>>, BrokerError>
  /** Every schedule that reads; one that does not is logged and left out. */
  readonly list: Effect.Effect<ReadonlyArray<Versioned<ScheduleRecord>>, BrokerError>
  /** Stores a new schedule; false when one of that name exists. */
  readonly create: (record: ScheduleRecord) => Effect.Effect<boolean, BrokerError>
  /** Replaces the schedule read at `revision`; false when it changed (or went) since. */
  readonly update: (record: ScheduleRecord, revision: number) => Effect.Effect<boolean, BrokerError>
  /** Removes a schedule and its last tick; false when there was none. */
  readonly remove: (name: string) => Effect.Effect<boolean, BrokerError>
  readonly lastTick: (name: string) => Effect.Effect<Option.Option<Versioned<TickRecord>>, BrokerError>
  /**
   * Records `tick` as the schedule's last, if the last tick is still the one read at `revision`
   * (`None`: there was none); false when another replica recorded one since.
   */
  readonly recordTick: (name: string, tick: TickRecord, revision: Option.Option<number>) => Effect.Effect<boolean, BrokerError>
  /**
   * Calls `onChange` with every schedule (`None`: removed), the current ones first, then each
   * change, while the scope lives.
   */
  readonly watch: (onChange: (name: string, record: Option.Option<ScheduleRecord>) => void) => Effect.Effect<void, BrokerError, Scope.Scope>
}>()("msgsys/ScheduleStore") {}

/**
 * A store in memory, for unit tests: the same compare-and-set rules as the bucket.
 * @category layers @since 0.1.0
 */
export const layerMemory: Layer.Layer<ScheduleStore> = Layer.sync(ScheduleStore, () => {
  let revision = 0
  const schedules = new Map<string, Versioned<ScheduleRecord>>()
  const ticks = new Map<string, Versioned<TickRecord>>()
  const watchers = new Set<(name: string, record: Option.Option<ScheduleRecord>) => void>()
  const notify = (name: string, record: Option.Option<ScheduleRecord>) => {
    for (const w of watchers) w(name, record)
  }
  const put = (record: ScheduleRecord) => {
    schedules.set(record.name, { value: record, revision: ++revision })
    notify(record.name, Option.some(record))
    return true
  }
  return ScheduleStore.of({
    get: (name) => Effect.sync(() => Option.fromUndefinedOr(schedules.get(name))),
    list: Effect.sync(() => [...schedules.values()].sort((a, b) => a.value.name.localeCompare(b.value.name))),
    create: (record) => Effect.sync(() => !schedules.has(record.name) && put(record)),
    update: (record, at) => Effect.sync(() => schedules.get(record.name)?.revision === at && put(record)),
    remove: (name) =>
      Effect.sync(() => {
        ticks.delete(name)
        if (!schedules.delete(name)) return false
        notify(name, Option.none())
        return true
      }),
    lastTick: (name) => Effect.sync(() => Option.fromUndefinedOr(ticks.get(name))),
    recordTick: (name, tick, at) =>
      Effect.sync(() => {
        const current = ticks.get(name)?.revision
        if (Option.isNone(at) ? current !== undefined : current !== at.value) return false
        ticks.set(name, { value: tick, revision: ++revision })
        return true
      }),
    watch: (onChange) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          for (const s of schedules.values()) onChange(s.value.name, Option.some(s.value))
          watchers.add(onChange)
        }),
        () => Effect.sync(() => watchers.delete(onChange))
      )
  })
})
