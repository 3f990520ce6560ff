/**
 * The pipeline store in a NATS KV bucket, `<prefix>_pipelines`, with the results bucket's TTL:
 * `p.<id>` holds a pipeline's record, `j.<id>.<step>` the outputs a gather step collected (a JSON
 * object by task number). The bucket is declared on first use, so programs that run no pipeline
 * never touch it. Joins are compare-and-set on the key's revision (nats-server 2.9 has them).
 * @since 0.1.0
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import type { KV, KvEntry } from "@nats-io/kv"
import { Duration, Effect, Layer, Option, Random, Schema, Semaphore } from "effect"
import { BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import * as Topology from "../broker/Topology.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import { PipelineRecord } from "./PipelineRecord.ts"
import { complete, GatherTooLarge, type Joined, PipelineStore } from "./PipelineStore.ts"

/** The pipelines bucket, as data for `Topology.apply`. @category topology @since 0.1.0 */
export const topology = (names: Subjects.Names, ttl: Duration.Duration): Topology.Topology => ({
  streams: [],
  consumers: [],
  kv: [{ bucket: names.pipelinesBucket, ttl, history: 1, description: "msgsys pipelines: plans and gathered outputs" }]
})

const recordKey = (id: string) => `p.${id}`
// the step is the last token: ids have no dots, so keys of two pipelines never meet
const joinKey = (id: string, step: number) => `j.${id}.${step}`

const isConflict = (e: unknown): boolean =>
  e instanceof JetStreamApiError &&
  (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

const decodeRecord = Schema.decodeUnknownOption(PipelineRecord)
const encoder = new TextEncoder()

const json = (entry: KvEntry): unknown => {
  try {
    return entry.json()
  } catch {
    return undefined
  }
}

/** How many times a join reads and writes again after another writer came first. */
const joinAttempts = 200

/**
 * A store on the pipelines bucket of `names`, declared (with `ttl`) when first used.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("KvPipelineStore.make")(function*(names: Subjects.Names, ttl: Duration.Duration) {
  const nats = yield* Nats
  const bucket = names.pipelinesBucket
  let opened: KV | undefined
  // one declaration at a time: the first steps of many pipelines may arrive together
  const opening = yield* Semaphore.make(1)
  const declare = Effect.suspend(() =>
    opened !== undefined ? Effect.succeed(opened) : Topology.apply(topology(names, ttl)).pipe(
      Effect.catchTag("TopologyConflict", (e) => Effect.fail(new BrokerError({ operation: `declare bucket ${bucket}`, reason: e.message }))),
      Effect.andThen(Effect.tryPromise({ try: () => nats.kvm.open(bucket), catch: brokerFailure(`open bucket ${bucket}`) })),
      Effect.tap((kv) => Effect.sync(() => (opened = kv))),
      Effect.provideService(Nats, nats)
    )
  )
  const open: Effect.Effect<KV, BrokerError> = Effect.suspend(() =>
    opened !== undefined ? Effect.succeed(opened) : Semaphore.withPermits(opening, 1)(declare)
  )
  const call = <A>(operation: string, f: (kv: KV) => Promise<A>) =>
    Effect.flatMap(open, (kv) => Effect.tryPromise({ try: () => f(kv), catch: brokerFailure(operation) }))
  /** A compare-and-set write: false when another writer came first. */
  const cas = (operation: string, f: (kv: KV) => Promise<unknown>): Effect.Effect<boolean, BrokerError> =>
    call(operation, f).pipe(
      Effect.as(true),
      Effect.catch((e) => isConflict(e.cause) ? Effect.succeed(false) : Effect.fail(e))
    )

  const join = (id: string, step: number, child: number, count: number, output: Schema.Json) =>
    Effect.gen(function*() {
      const key = joinKey(id, step)
      for (let attempt = 1;; attempt++) {
        const entry = yield* call(`read gather step ${step} of pipeline ${id}`, (kv) => kv.get(key))
        const live = entry !== null && entry.operation === "PUT" ? entry : undefined
        const current = (live !== undefined ? json(live) ?? {} : {}) as Joined
        // recorded already (a redelivery of this task): the first output stays
        if (Object.hasOwn(current, String(child))) return complete(current, count)
        const next: Joined = { ...current, [child]: output }
        const bytes = encoder.encode(JSON.stringify(next))
        const maxSize = nats.server.maxPayload - 1024
        if (bytes.length > maxSize) return yield* new GatherTooLarge({ pipelineId: id, step, size: bytes.length, maxSize })
        const written = yield* cas(
          `record an output of gather step ${step} of pipeline ${id}`,
          (kv) => live === undefined ? kv.create(key, bytes) : kv.update(key, bytes, live.revision)
        )
        if (written) return complete(next, count)
        if (attempt >= joinAttempts) {
          return yield* new BrokerError({
            operation: `record an output of gather step ${step} of pipeline ${id}`,
            reason: `${joinAttempts} other writers came first; it is tried again when the task is redelivered`
          })
        }
        // others are writing the same key: step aside a little, so they do not collide again
        yield* Effect.sleep(Duration.millis(yield* Random.nextBetween(1, Math.min(100, 5 * attempt))))
      }
    })

  return PipelineStore.of({
    create: (record) => cas(`store pipeline ${record.id}`, (kv) => kv.create(recordKey(record.id), JSON.stringify(record))),
    get: (id) =>
      call(`read pipeline ${id}`, (kv) => kv.get(recordKey(id))).pipe(
        Effect.map((entry) => entry !== null && entry.operation === "PUT" ? decodeRecord(json(entry)) : Option.none())
      ),
    join
  })
})

/** The store on the bucket of the config's stream prefix, with its results TTL. @category layers @since 0.1.0 */
export const layer: Layer.Layer<PipelineStore, never, Nats | MsgsysConfig> = Layer.effect(
  PipelineStore,
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    return yield* make(Subjects.make(config.streamPrefix), config.resultTtl)
  })
)
