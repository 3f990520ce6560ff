/**
 * Task status and results in a NATS KV bucket with a TTL (default 7 days), so a client on any
 * host can read a task's status or wait for its result. Cancel requests live in the same bucket
 * under `cancel.<task id>`, so a worker that starts later still skips a cancelled task.
 * @since 0.1.0
 */
import type { KV } from "@nats-io/kv"
import { Context, Data, Deferred, Duration, Effect, Layer, Option, Schema, Scope } from "effect"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import * as KvWatch from "../broker/KvWatch.ts"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import { isFinal, TaskRecord } from "./TaskRecord.ts"

/** No final result arrived in time. @category errors @since 0.1.0 */
export class ResultTimeout extends Data.TaggedError("ResultTimeout")<{
  readonly taskId: string
  readonly timeoutMs: number
  readonly last: TaskRecord | undefined
}> {
  override get message() {
    return `task ${this.taskId} has no result after ${this.timeoutMs} ms (status: ${this.last?.status ?? "unknown"}): ` +
      "wait longer, or check that a worker runs its actor (`msgsys status`)"
  }
}

/** There is no record of this task (unknown id, or older than the results TTL). @category errors @since 0.1.0 */
export class TaskNotFound extends Data.TaggedError("TaskNotFound")<{ readonly taskId: string }> {
  override get message() {
    return `no task ${this.taskId}: check the id; results are kept for MSGSYS_RESULT_TTL (default 7 days)`
  }
}

/** @category services @since 0.1.0 */
export class Results extends Context.Service<Results, {
  readonly put: (record: TaskRecord) => Effect.Effect<void, BrokerError>
  /** Writes only if there is no record yet; false when one exists. */
  readonly create: (record: TaskRecord) => Effect.Effect<boolean, BrokerError>
  readonly get: (taskId: string) => Effect.Effect<Option.Option<TaskRecord>, BrokerError>
  /** Waits for a final status (succeeded, dead or cancelled). */
  readonly awaitFinal: (taskId: string, timeout: Duration.Input) => Effect.Effect<TaskRecord, ResultTimeout | BrokerError>
  /** Records `taskId` under `key` unless a task holds it already; returns the task that does. */
  readonly reserve: (key: string, taskId: string) => Effect.Effect<string, BrokerError>
  /** Drops `key` if `taskId` holds it (its publish failed, so the next enqueue must not point at it). */
  readonly unreserve: (key: string, taskId: string) => Effect.Effect<void, BrokerError>
  readonly requestCancel: (taskId: string) => Effect.Effect<void, BrokerError>
  /** Calls `onCancel` for every cancel request, past (within the TTL) and future, while the scope lives. */
  readonly watchCancels: (onCancel: (taskId: string) => void) => Effect.Effect<void, BrokerError, Scope.Scope>
}>()("msgsys/Results") {}

const decodeRecord = Schema.decodeUnknownOption(TaskRecord)
const encoder = new TextEncoder()
const cancelKey = (taskId: string) => `cancel.${taskId}`


const parse = (value: Uint8Array): Option.Option<TaskRecord> => {
  try {
    return decodeRecord(JSON.parse(new TextDecoder().decode(value)))
  } catch {
    return Option.none()
  }
}

/** Opens (creating if missing) the results bucket. @category constructors @since 0.1.0 */
export const make = Effect.fn("Results.make")(function*(bucket: string, ttl: Duration.Duration) {
  const nats = yield* Nats
  const kv: KV = yield* Effect.tryPromise({
    try: () => nats.kvm.create(bucket, { ttl: Duration.toMillis(ttl), history: 1 }),
    catch: brokerFailure(`open results bucket ${bucket}`)
  })

  const get = (taskId: string) =>
    Effect.tryPromise({ try: () => kv.get(taskId), catch: brokerFailure(`read task ${taskId}`) }).pipe(
      Effect.map((e) => e && e.operation === "PUT" ? parse(e.value) : Option.none())
    )

  // Waiting costs one core subscription to the key's subject (every KV put is published there),
  // not a JetStream consumer per wait: a client can wait on thousands of tasks at once.
  const awaitFinal = (taskId: string, timeout: Duration.Input) =>
    Effect.gen(function*() {
      let last: TaskRecord | undefined
      const final = yield* Deferred.make<TaskRecord>()
      const offer = (r: Option.Option<TaskRecord>) => {
        if (Option.isNone(r)) return
        if (!last || r.value.updatedAt >= last.updatedAt) last = r.value
        if (isFinal(r.value.status)) Deferred.doneUnsafe(final, Effect.succeed(r.value))
      }
      const sub = nats.connection.subscribe(`$KV.${bucket}.${taskId}`, {
        callback: (_err, m) => offer(parse(m.data))
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => sub.unsubscribe()))
      // read after subscribing, so a put between the two is never missed
      offer(yield* get(taskId))
      const done = yield* Deferred.await(final).pipe(Effect.timeoutOption(timeout))
      if (Option.isSome(done)) return done.value
      // a put made while this connection was reconnecting never reached the subscription: look once more
      offer(yield* get(taskId))
      if (last && isFinal(last.status)) return last
      return yield* new ResultTimeout({ taskId, timeoutMs: Duration.toMillis(Duration.fromInputUnsafe(timeout)), last })
    }).pipe(Effect.scoped)

  return Results.of({
    put: (record) =>
      Effect.tryPromise({
        try: () => kv.put(record.id, encoder.encode(JSON.stringify(record))),
        catch: brokerFailure(`store status of task ${record.id}`)
      }).pipe(Effect.asVoid),
    create: (record) =>
      Effect.tryPromise({
        try: () => kv.create(record.id, encoder.encode(JSON.stringify(record))).then(() => true),
        catch: (e) => e
      }).pipe(
        Effect.catch((e) =>
          /wrong last sequence|10071|exists/i.test(String((e as Error)?.message ?? e))
            ? Effect.succeed(false)
            : Effect.fail(brokerFailure(`store status of task ${record.id}`)(e))
        )
      ),
    get,
    awaitFinal,
    reserve: (key, taskId) =>
      Effect.tryPromise({
        try: async () => {
          try {
            await kv.create(key, taskId)
            return taskId
          } catch (e) {
            if (!/wrong last sequence|10071|exists/i.test(String((e as Error)?.message ?? e))) throw e
            const held = await kv.get(key)
            return held && held.operation === "PUT" ? held.string() : taskId
          }
        },
        catch: brokerFailure(`reserve key ${key}`)
      }),
    unreserve: (key, taskId) =>
      Effect.tryPromise({
        try: async () => {
          const held = await kv.get(key)
          if (held && held.operation === "PUT" && held.string() === taskId) {
            await kv.delete(key, { previousSeq: held.revision })
          }
        },
        catch: brokerFailure(`release key ${key}`)
      }),
    requestCancel: (taskId) =>
      Effect.tryPromise({ try: () => kv.put(cancelKey(taskId), "1"), catch: brokerFailure(`cancel task ${taskId}`) }).pipe(
        Effect.asVoid
      ),
    watchCancels: (onCancel) =>
      KvWatch.follow("cancel requests", () => kv.watch({ key: "cancel.>" }), (e) => {
        if (e.operation === "PUT") onCancel(e.key.slice("cancel.".length))
      })
  })
})

/** The results bucket named by the config. @category layers @since 0.1.0 */
export const layer: Layer.Layer<Results, BrokerError, Nats | MsgsysConfig> = Layer.effect(
  Results,
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    return yield* make(Subjects.make(config.streamPrefix).resultsBucket, config.resultTtl)
  })
)
