/**
 * A worker's side of the registry (`WorkerRegistry`): it announces itself now and every few
 * seconds, and deletes its entry when it shuts down gracefully.
 * @since 0.1.0
 */
import { Clock, Effect, Layer, Schedule } from "effect"
import { hostname } from "node:os"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import { version } from "../config/Version.ts"
import { Worker } from "./Worker.ts"
import { type Announcement, heartbeatEvery } from "../registry/WorkerRegistry.ts"

/** What the worker says about itself now. @category constructors @since 0.1.0 */
export const describe = (worker: Worker["Service"], options: { readonly httpPort?: number | undefined } = {}) =>
  Effect.gen(function*() {
    const actors = yield* worker.state
    const pools = yield* worker.pools
    return {
      id: worker.id,
      host: hostname(),
      pid: process.pid,
      version,
      actors: actors.map((a) => ({
        name: a.name,
        pool: a.pool,
        concurrency: a.concurrency,
        inFlight: a.inFlight,
        held: a.held,
        paused: a.paused,
        consuming: a.consuming,
        restarts: a.restarts
      })),
      pools,
      inFlight: actors.reduce((n, a) => n + a.inFlight, 0),
      since: worker.startedAt,
      heartbeatAt: yield* Clock.currentTimeMillis,
      ...(options.httpPort !== undefined && options.httpPort > 0 ? { httpPort: options.httpPort } : {})
    } satisfies Announcement
  })

/**
 * Announces the worker now and every `heartbeatEvery` while the layer lives; deletes its entry
 * when the layer is released (a graceful shutdown). A failed announcement is logged and tried
 * again at the next heartbeat: the registry is for people, never a reason to stop working.
 * @category layers @since 0.1.0
 */
export const layer: Layer.Layer<never, never, Worker | Nats | MsgsysConfig> = Layer.effectDiscard(
  Effect.gen(function*() {
    const worker = yield* Worker
    const nats = yield* Nats
    const config = yield* MsgsysConfig
    const names = Subjects.make(config.streamPrefix)
    const kv = yield* Effect.promise(() => nats.kvm.open(names.workersBucket))
    let warned = false
    const announce = describe(worker, { httpPort: config.httpPort }).pipe(
      Effect.flatMap((a) => Effect.tryPromise(() => kv.put(worker.id, JSON.stringify(a)))),
      Effect.tap(() => Effect.sync(() => (warned = false))),
      Effect.catchCause((cause) =>
        warned ? Effect.void : Effect.andThen(
          Effect.sync(() => (warned = true)),
          Effect.logWarning(`could not announce worker ${worker.id} in ${names.workersBucket}; trying again`, cause)
        )
      )
    )
    yield* announce
    yield* Effect.forkScoped(announce.pipe(Effect.repeat(Schedule.spaced(heartbeatEvery)), Effect.andThen(Effect.never)))
    yield* Effect.addFinalizer(() =>
      Effect.ignore(Effect.tryPromise(() => kv.delete(worker.id)).pipe(Effect.timeoutOption("2 seconds")))
    )
  })
)
