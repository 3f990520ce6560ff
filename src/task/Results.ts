/**
 * Task status and results in a NATS KV bucket with a TTL (default 7 days), so a client on any
 * host can read a task's status or wait for its result: one record per task, under its id. The
 * bucket also holds the enqueue key index (`EnqueueKeys`) and cancel requests (`CancelRequests`).
 * @since 0.1.0
 */
import type { KvEntry } from "@nats-io/kv"
import type { Subscription } from "@nats-io/transport-node"
import { Context, Data, Duration, Effect, Layer, Option, Schema } from "effect"
import { type BrokerError, brokerFailure, isTransient, retryTransient } from "../broker/BrokerError.ts"
import type { Nats } from "../broker/Nats.ts"
import type { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as ResultsBucket from "./internal/resultsBucket.ts"
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

/** There is no record of this task (unknown id, still queued, or older than the results TTL). @category errors @since 0.1.0 */
export class TaskNotFound extends Data.TaggedError("TaskNotFound")<{ readonly taskId: string }> {
  override get message() {
    return `no status for task ${this.taskId}: a task has one once a worker takes it (enqueue with \`track: true\` ` +
      "to have \"queued\" at once); check the id, and that it is younger than MSGSYS_RESULT_TTL (default 7 days)"
  }
}

/** @category services @since 0.1.0 */
export class Results extends Context.Service<Results, {
  readonly put: (record: TaskRecord) => Effect.Effect<void, BrokerError>
  /**
   * Stores a record without waiting in series: many are in flight at once on the connection's
   * pipelined publisher; `done` is called once with `undefined` when stored, or the error.
   */
  readonly submit: (record: TaskRecord, done: (error: BrokerError | undefined) => void) => void
  /** Writes only if there is no record yet; false when one exists. */
  readonly create: (record: TaskRecord) => Effect.Effect<boolean, BrokerError>
  readonly get: (taskId: string) => Effect.Effect<Option.Option<TaskRecord>, BrokerError>
  /** Waits for a final status (succeeded, dead or cancelled). */
  readonly awaitFinal: (taskId: string, timeout: Duration.Input) => Effect.Effect<TaskRecord, ResultTimeout | BrokerError>
}>()("msgsys/Results") {}

const decodeRecord = Schema.decodeUnknownOption(TaskRecord)
const encoder = new TextEncoder()
const decoder = new TextDecoder()

const parse = (value: Uint8Array): Option.Option<TaskRecord> => {
  try {
    return decodeRecord(JSON.parse(decoder.decode(value)))
  } catch {
    return Option.none()
  }
}

/** The record a KV entry holds: none for a missing key, a delete or a purge, or a value that is not one. */
const recordOf = (e: KvEntry | null): Option.Option<TaskRecord> => e && e.operation === "PUT" ? parse(e.value) : Option.none()

interface Waiter {
  last: TaskRecord | undefined
  readonly offer: (r: TaskRecord) => void
}

/** Opens (creating if missing) the results bucket. @category constructors @since 0.1.0 */
export const make = Effect.fn("Results.make")(function*(bucket: string, ttl: Duration.Duration) {
  const { nats, kv } = yield* ResultsBucket.open(bucket, ttl)
  const reads = yield* ResultsBucket.openForReads(nats, bucket)

  // a read that nobody answered (a cluster moving the bucket's leader) is asked again for a few seconds
  const get = (taskId: string) =>
    Effect.tryPromise({ try: () => reads.get(taskId), catch: brokerFailure(`read task ${taskId}`) }).pipe(
      retryTransient,
      Effect.map(recordOf)
    )

  // a KV put is a publish on the key's subject, stored by the bucket's stream
  const subjectPrefix = `$KV.${bucket}.`
  const submit = (record: TaskRecord, done: (error: BrokerError | undefined) => void) =>
    nats.publisher.submit(
      // a final record is a task's last write, so after a lost connection it is sent again at once
      // (a record that is not final could land after the next one and hide it)
      { subject: subjectPrefix + record.id, data: encoder.encode(JSON.stringify(record)), repeatable: isFinal(record.status) },
      (o) => done(o.ok ? undefined : o.error._tag === "BrokerError" ? o.error : brokerFailure(`store status of task ${record.id}`)(o.error))
    )

  // Every wait of this client shares one subscription to the bucket's subjects (every put is
  // published there), demultiplexed by key: no subscription or consumer per wait. It exists
  // while someone waits.
  const waiters = new Map<string, Set<Waiter>>()
  let subscription: Subscription | undefined
  const subscribe = () => {
    subscription ??= nats.connection.subscribe(`${subjectPrefix}>`, {
      callback: (_err, m) => {
        const set = waiters.get(m.subject.slice(subjectPrefix.length))
        if (set === undefined) return
        const record = parse(m.data)
        if (Option.isSome(record)) for (const w of set) w.offer(record.value)
      }
    })
  }
  const unregister = (taskId: string, w: Waiter) => {
    const set = waiters.get(taskId)
    set?.delete(w)
    if (set !== undefined && set.size === 0) waiters.delete(taskId)
    if (waiters.size === 0 && subscription !== undefined) {
      subscription.unsubscribe()
      subscription = undefined
    }
  }

  // A put made while the connection was away never reached the subscription (a core subscription
  // has no replay): after each reconnect every key someone waits on is read once more, so a result
  // stored meanwhile ends its wait at once instead of at its timeout.
  const readAgain = (taskId: string) =>
    reads.get(taskId).then((e) => {
      const record = recordOf(e)
      if (Option.isSome(record)) for (const w of waiters.get(taskId) ?? []) w.offer(record.value)
    }, () => {
      // the wait's own timeout reads once more
    })
  yield* nats.onReconnect(() => {
    // at most 64 reads in flight: a client may wait on many thousands of tasks at once
    const keys = [...waiters.keys()]
    const next = async (): Promise<void> => {
      const taskId = keys.pop()
      if (taskId === undefined) return
      await readAgain(taskId)
      return next()
    }
    for (let i = 0; i < Math.min(64, keys.length); i++) void next()
  })

  const awaitFinal = (taskId: string, timeout: Duration.Input) =>
    Effect.callback<TaskRecord, ResultTimeout | BrokerError>((resume) => {
      let settled = false
      const w: Waiter = {
        last: undefined,
        offer: (r) => {
          if (!w.last || r.updatedAt >= w.last.updatedAt) w.last = r
          if (isFinal(r.status)) done(Effect.succeed(r))
        }
      }
      const timeoutMs = Duration.toMillis(Duration.fromInputUnsafe(timeout))
      const done = (effect: Effect.Effect<TaskRecord, ResultTimeout | BrokerError>) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        unregister(taskId, w)
        resume(effect)
      }
      const set = waiters.get(taskId)
      if (set === undefined) waiters.set(taskId, new Set([w]))
      else set.add(w)
      subscribe()
      // read after subscribing, so a put between the two is never missed; a read nobody answered
      // (a cluster moving the bucket's leader) is asked again while the wait lasts
      let retryMs = 100
      const read = () =>
        reads.get(taskId).then(
          (e) => {
            const r = recordOf(e)
            if (Option.isSome(r)) w.offer(r.value)
          },
          (cause) => {
            if (settled) return
            if (!isTransient(cause)) return done(Effect.fail(brokerFailure(`read task ${taskId}`)(cause)))
            setTimeout(read, retryMs)
            retryMs = Math.min(retryMs * 2, 2_000)
          }
        )
      read()
      const timer = setTimeout(() => {
        // a put made while this connection was reconnecting never reached the subscription: look once more
        reads.get(taskId).then(
          (e) => {
            const r = recordOf(e)
            if (Option.isSome(r)) w.offer(r.value)
            done(Effect.fail(new ResultTimeout({ taskId, timeoutMs, last: w.last })))
          },
          () => done(Effect.fail(new ResultTimeout({ taskId, timeoutMs, last: w.last })))
        )
      }, Math.min(timeoutMs, 2 ** 31 - 1))
      return Effect.sync(() => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        unregister(taskId, w)
      })
    })

  return Results.of({
    put: (record) =>
      Effect.callback<void, BrokerError>((resume) => {
        submit(record, (error) => resume(error === undefined ? Effect.void : Effect.fail(error)))
      }),
    submit,
    create: (record) =>
      Effect.tryPromise({
        try: () => kv.create(record.id, encoder.encode(JSON.stringify(record))).then(() => true),
        catch: (e) => e
      }).pipe(
        Effect.catch((e) =>
          ResultsBucket.isConflict(e) ? Effect.succeed(false) : Effect.fail(brokerFailure(`store status of task ${record.id}`)(e))
        )
      ),
    get,
    awaitFinal
  })
})

/**
 * Results in memory (one process), for unit tests and the in-memory broker: the same behaviour,
 * timed by the `Clock` (a TestClock moves `awaitFinal`'s timeout).
 * @category constructors @since 0.1.0
 */
export const makeMemory: Effect.Effect<Results["Service"]> = Effect.sync(() => {
  const records = new Map<string, TaskRecord>()
  const waiters = new Map<string, Set<(r: TaskRecord) => void>>()
  const store = (record: TaskRecord) => {
    // what the bucket would hand back: JSON, round-tripped
    const copy = JSON.parse(JSON.stringify(record)) as TaskRecord
    records.set(record.id, copy)
    for (const w of waiters.get(record.id) ?? []) w(copy)
  }
  const get = (taskId: string) => Effect.sync(() => Option.fromUndefinedOr(records.get(taskId)))
  return Results.of({
    put: (record) => Effect.sync(() => store(record)),
    submit: (record, done) => {
      store(record)
      done(undefined)
    },
    create: (record) =>
      Effect.sync(() => {
        if (records.has(record.id)) return false
        store(record)
        return true
      }),
    get,
    awaitFinal: (taskId, timeout) =>
      Effect.gen(function*() {
        let last = records.get(taskId)
        if (last && isFinal(last.status)) return last
        const final = yield* Effect.callback<TaskRecord>((resume) => {
          const w = (r: TaskRecord) => {
            last = r
            if (isFinal(r.status)) resume(Effect.succeed(r))
          }
          const set = waiters.get(taskId) ?? new Set()
          set.add(w)
          waiters.set(taskId, set)
          return Effect.sync(() => {
            set.delete(w)
            if (set.size === 0) waiters.delete(taskId)
          })
        }).pipe(Effect.timeoutOption(timeout))
        if (Option.isSome(final)) return final.value
        return yield* new ResultTimeout({ taskId, timeoutMs: Duration.toMillis(Duration.fromInputUnsafe(timeout)), last })
      })
  })
})

/** Results in memory, a fresh store per layer. @category layers @since 0.1.0 */
export const layerMemory = (): Layer.Layer<Results> => Layer.effect(Results, makeMemory)

/** The results bucket named by the config. @category layers @since 0.1.0 */
export const layer: Layer.Layer<Results, BrokerError, Nats | MsgsysConfig> = Layer.effect(
  Results,
  Effect.flatMap(ResultsBucket.fromConfig, ({ bucket, ttl }) => make(bucket, ttl))
)
