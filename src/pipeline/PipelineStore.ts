/**
 * Where pipelines live besides their tasks: each pipeline's record (its plan, written once at
 * start) and, for each gather step, the outputs its tasks have delivered so far. Recording an
 * output is compare-and-set, so the tasks of a gather may finish at the same moment on different
 * workers and exactly the set of all of them is seen complete. `KvPipelineStore` keeps them in the
 * pipelines KV bucket; `makeMemory` here serves unit tests and the in-memory broker.
 * @since 0.1.0
 */
import { Context, Data, Effect, Layer, Option, type Schema } from "effect"
import type { BrokerError } from "../broker/BrokerError.ts"
import type { PipelineRecord } from "./PipelineRecord.ts"

/** The outputs of a gather step together are too large to store. @category errors @since 0.1.0 */
export class GatherTooLarge extends Data.TaggedError("GatherTooLarge")<{
  readonly pipelineId: string
  readonly step: number
  readonly size: number
  readonly maxSize: number
}> {
  override get message() {
    return `pipeline ${this.pipelineId}: the outputs of gather step ${this.step} take ${this.size} bytes together, ` +
      `over the ${this.maxSize} a stored value may take (the server's max_payload): have its tasks output ` +
      "references to their data (an object store key) instead of the data"
  }
}

/** @category services @since 0.1.0 */
export class PipelineStore extends Context.Service<PipelineStore, {
  /** Stores a new pipeline's record; false when one with its id exists. */
  readonly create: (record: PipelineRecord) => Effect.Effect<boolean, BrokerError>
  readonly get: (pipelineId: string) => Effect.Effect<Option.Option<PipelineRecord>, BrokerError>
  /**
   * Records the output of task `child` (from 1) of gather step `step`, unless one is recorded for
   * it already (the first is kept), and returns every output of the step in order once all
   * `count` are in — to this call and every later one — else `None`.
   */
  readonly join: (
    pipelineId: string,
    step: number,
    child: number,
    count: number,
    output: Schema.Json
  ) => Effect.Effect<Option.Option<ReadonlyArray<Schema.Json>>, BrokerError | GatherTooLarge>
}>()("msgsys/PipelineStore") {}

/** Outputs recorded so far, by child (from 1). @category models @since 0.1.0 */
export type Joined = Readonly<Record<string, Schema.Json>>

/** Every output in order when all `count` are in. @category joining @since 0.1.0 */
export const complete = (joined: Joined, count: number): Option.Option<ReadonlyArray<Schema.Json>> => {
  const out: Array<Schema.Json> = []
  for (let child = 1; child <= count; child++) {
    if (!Object.hasOwn(joined, String(child))) return Option.none()
    out.push(joined[String(child)]!)
  }
  return Option.some(out)
}

/** A store in memory (one process). @category constructors @since 0.1.0 */
export const makeMemory: Effect.Effect<PipelineStore["Service"]> = Effect.sync(() => {
  const records = new Map<string, PipelineRecord>()
  const joins = new Map<string, Joined>()
  return PipelineStore.of({
    create: (record) =>
      Effect.sync(() => {
        if (records.has(record.id)) return false
        records.set(record.id, record)
        return true
      }),
    get: (id) => Effect.sync(() => Option.fromUndefinedOr(records.get(id))),
    join: (id, step, child, count, output) =>
      Effect.sync(() => {
        const key = `${id}/${step}`
        const current = joins.get(key) ?? {}
        const next = Object.hasOwn(current, String(child)) ? current : { ...current, [child]: output }
        joins.set(key, next)
        return complete(next, count)
      })
  })
})

/** A store in memory, a fresh one per layer. @category layers @since 0.1.0 */
export const layerMemory = (): Layer.Layer<PipelineStore> => Layer.effect(PipelineStore, makeMemory)
