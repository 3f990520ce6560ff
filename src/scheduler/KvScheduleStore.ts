/**
 * The schedule store in a NATS KV bucket, `<prefix>_schedules`: `def.<name>` holds a schedule,
 * `tick.<name>` the last tick enqueued for it. Writes are compare-and-set on the key's revision
 * (`create` and `update` fail with JetStream's "wrong last sequence" when another writer came
 * first), so replicas on any host agree on each schedule's last tick.
 * @since 0.1.0
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import type { KV, KvEntry } from "@nats-io/kv"
import { Effect, Layer, Option, Schema } from "effect"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import * as KvWatch from "../broker/KvWatch.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import * as Topology from "../broker/Topology.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import { ScheduleRecord, TickRecord } from "./ScheduleRecord.ts"
import { ScheduleStore, type Versioned } from "./ScheduleStore.ts"

/** The schedules bucket, as data for `Topology.apply`. @category topology @since 0.1.0 */
export const topology = (names: Subjects.Names): Topology.Topology => ({
  streams: [],
  consumers: [],
  kv: [{ bucket: names.schedulesBucket, history: 1, description: "msgsys schedules and the last tick each enqueued" }]
})

const defKey = (name: string) => `def.${name}`
const tickKey = (name: string) => `tick.${name}`
const defPrefix = "def."

const isConflict = (e: unknown): boolean =>
  e instanceof JetStreamApiError &&
  (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

const decodeSchedule = Schema.decodeUnknownExit(ScheduleRecord)
const decodeTick = Schema.decodeUnknownOption(TickRecord)

const json = (entry: KvEntry): unknown => {
  try {
    return entry.json()
  } catch {
    return undefined
  }
}

/** Opens the bucket (declaring it first) and serves the store from it. @category constructors @since 0.1.0 */
export const make = Effect.fn("KvScheduleStore.make")(function*(names: Subjects.Names) {
  const nats = yield* Nats
  yield* Topology.apply(topology(names))
  const kv: KV = yield* Effect.tryPromise({
    try: () => nats.kvm.open(names.schedulesBucket),
    catch: brokerFailure(`open schedules bucket ${names.schedulesBucket}`)
  })
  const context = yield* Effect.context<never>()
  const warn = (message: string) => Effect.runForkWith(context)(Effect.logWarning(message))

  /** A schedule entry as a record; an unreadable one is logged and counts as absent. */
  const readSchedule = (entry: KvEntry | null): Option.Option<Versioned<ScheduleRecord>> => {
    if (entry === null || entry.operation !== "PUT") return Option.none()
    const exit = decodeSchedule(json(entry))
    if (exit._tag === "Success") return Option.some({ value: exit.value, revision: entry.revision })
    warn(`${names.schedulesBucket} key ${entry.key} holds no valid schedule (${String(exit.cause)}); ` +
      `remove it with \`msgsys schedule remove ${entry.key.slice(defPrefix.length)}\` and add it again`)
    return Option.none()
  }

  const call = <A>(operation: string, f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: brokerFailure(operation) })

  /** A compare-and-set write: false when another writer came first. */
  const cas = (operation: string, f: () => Promise<unknown>): Effect.Effect<boolean, BrokerError> =>
    call(operation, f).pipe(
      Effect.as(true),
      Effect.catch((e) => isConflict(e.cause) ? Effect.succeed(false) : Effect.fail(e))
    )

  const get = (name: string) => call(`read schedule ${name}`, () => kv.get(defKey(name))).pipe(Effect.map(readSchedule))

  return ScheduleStore.of({
    get,
    list: call("list schedules", async () => {
      const keys: Array<string> = []
      for await (const key of await kv.keys(`${defPrefix}>`)) keys.push(key)
      return keys.sort()
    }).pipe(
      Effect.flatMap((keys) => Effect.forEach(keys, (key) => get(key.slice(defPrefix.length)), { concurrency: 16 })),
      Effect.map((found) => found.flatMap(Option.toArray))
    ),
    create: (record) => cas(`add schedule ${record.name}`, () => kv.create(defKey(record.name), JSON.stringify(record))),
    update: (record, revision) =>
      cas(`change schedule ${record.name}`, () => kv.update(defKey(record.name), JSON.stringify(record), revision)),
    remove: (name) =>
      call(`remove schedule ${name}`, async () => {
        const entry = await kv.get(defKey(name))
        if (entry === null || entry.operation !== "PUT") return false
        await kv.delete(defKey(name))
        await kv.delete(tickKey(name))
        return true
      }),
    lastTick: (name) =>
      call(`read the last tick of schedule ${name}`, () => kv.get(tickKey(name))).pipe(Effect.map((entry) => {
        if (entry === null || entry.operation !== "PUT") return Option.none()
        // an unreadable record still holds its revision: it is overwritten, not trusted
        return Option.some(Option.match(decodeTick(json(entry)), {
          onNone: () => ({ value: { at: Number.NEGATIVE_INFINITY, by: "unreadable", recordedAt: 0 }, revision: entry.revision }),
          onSome: (value) => ({ value, revision: entry.revision })
        }))
      })),
    recordTick: (name, tick, revision) =>
      cas(`record tick of schedule ${name}`, () =>
        Option.match(revision, {
          onNone: () => kv.create(tickKey(name), JSON.stringify(tick)),
          onSome: (r) => kv.update(tickKey(name), JSON.stringify(tick), r)
        })),
    watch: (onChange) =>
      KvWatch.follow("schedules", () => kv.watch({ key: `${defPrefix}>` }), (entry) => {
        const name = entry.key.slice(defPrefix.length)
        onChange(name, Option.map(readSchedule(entry), (v) => v.value))
      })
  })
})

/** The store in the bucket the config's stream prefix names. @category layers @since 0.1.0 */
export const layer: Layer.Layer<ScheduleStore, BrokerError | Topology.TopologyConflict, Nats | MsgsysConfig> = Layer.effect(
  ScheduleStore,
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    return yield* make(Subjects.make(config.streamPrefix))
  })
)
