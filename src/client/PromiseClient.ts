/**
 * The client for code that does not use Effect: the same calls as `Client`, returning Promises.
 *
 * ```ts
 * const client = await PromiseClient.connect({ nats: { servers: ["nats://127.0.0.1:4222"] } })
 * const handle = await client.enqueue(Extract, { tenant: "acme", source: "salesforce" })
 * const { rows } = await client.result(handle, "30 seconds")
 * await client.close()
 * ```
 * A failed call rejects with the tagged error itself (`TaskFailed`, `ResultTimeout`, ...).
 * @since 0.1.0
 */
import type { Duration, Effect } from "effect"
import { Layer, ManagedRuntime } from "effect"
import * as Nats from "../broker/Nats.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import type * as Event from "../event/Event.ts"
import * as CancelRequests from "../task/CancelRequests.ts"
import * as EnqueueKeys from "../task/EnqueueKeys.ts"
import * as Results from "../task/Results.ts"
import type * as Task from "../task/Task.ts"
import type { TaskRecord } from "../task/TaskRecord.ts"
import * as Logging from "../trace/Logging.ts"
import * as Tracing from "../trace/Tracing.ts"
import * as Client from "./Client.ts"

/** @category models @since 0.1.0 */
export interface PromiseClient {
  readonly enqueue: <T extends Task.Any>(
    task: T,
    input: Task.Input<T>,
    options?: Client.EnqueueOptions
  ) => Promise<Client.Handle<T>>
  readonly enqueueMany: <T extends Task.Any>(
    task: T,
    inputs: ReadonlyArray<Task.Input<T>>,
    options?: Client.EnqueueManyOptions
  ) => Promise<ReadonlyArray<Client.Handle<T>>>
  readonly enqueueJson: (subject: string, json: unknown, options?: Client.EnqueueOptions) => Promise<{ readonly id: string; readonly duplicate: boolean }>
  readonly publish: <E extends Event.Any>(event: E, payload: Event.Payload<E>, options?: Client.PublishOptions) => Promise<Client.Published>
  readonly publishMany: <E extends Event.Any>(
    event: E,
    payloads: ReadonlyArray<Event.Payload<E>>,
    options?: Client.PublishManyOptions
  ) => Promise<ReadonlyArray<Client.Published>>
  readonly publishJson: (subject: string, json: unknown, options?: Client.PublishJsonOptions) => Promise<Client.Published>
  readonly result: <T extends Task.Any>(handle: Client.Handle<T>, timeout: Duration.Input) => Promise<Task.Output<T>>
  readonly status: (taskId: string) => Promise<TaskRecord>
  readonly wait: (taskId: string, timeout: Duration.Input) => Promise<TaskRecord>
  readonly cancel: (taskId: string) => Promise<void>
  /** Drains the connection. */
  readonly close: () => Promise<void>
}

/**
 * Connects with the given settings (defaults, plus `MSGSYS_*` from the environment when no
 * overrides are given).
 * @category constructors @since 0.1.0
 */
export const connect = async (overrides?: MsgsysConfig.Overrides): Promise<PromiseClient> => {
  const config = overrides === undefined ? MsgsysConfig.layer : MsgsysConfig.layerFrom(overrides)
  // logs go to stderr at the configured level, like every msgsys program's
  const runtime = ManagedRuntime.make(Client.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(Results.layer, EnqueueKeys.layer, CancelRequests.layer)),
    Layer.provideMerge(Nats.layer),
    // publishes are spans when an OTLP endpoint is configured
    Layer.provideMerge(Tracing.layer),
    Layer.provideMerge(Logging.loggingFromConfig),
    Layer.provide(config)
  ))
  const client = await runtime.runPromise(Client.Client)
  const run = <A, E>(effect: Effect.Effect<A, E>) => runtime.runPromise(effect)
  return {
    enqueue: (task, input, options) => run(client.enqueue(task, input, options)),
    enqueueMany: (task, inputs, options) => run(client.enqueueMany(task, inputs, options)),
    enqueueJson: (subject, json, options) => run(client.enqueueJson(subject, json, options)),
    publish: (event, payload, options) => run(client.publish(event, payload, options)),
    publishMany: (event, payloads, options) => run(client.publishMany(event, payloads, options)),
    publishJson: (subject, json, options) => run(client.publishJson(subject, json, options)),
    result: (handle, timeout) => run(client.result(handle, timeout)),
    status: (taskId) => run(client.status(taskId)),
    wait: (taskId, timeout) => run(client.wait(taskId, timeout)),
    cancel: (taskId) => run(client.cancel(taskId)),
    close: () => runtime.dispose()
  }
}

