/**
 * What the broker holds, for `msgsys status`: every stream (or those of one prefix) with its
 * counts, and every consumer with what it has pending.
 * @since 0.1.0
 */
import { Effect } from "effect"
import { brokerFailure } from "../broker/BrokerError.ts"
import type { Nats } from "../broker/Nats.ts"

/** One stream. @category models @since 0.1.0 */
export interface StreamOverview {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  readonly retention: string
  readonly storage: string
  readonly messages: number
  readonly bytes: number
  readonly consumers: number
}

/** One consumer. @category models @since 0.1.0 */
export interface ConsumerOverview {
  readonly name: string
  readonly stream: string
  /** `undefined`: every subject of the stream. */
  readonly filter: string | undefined
  /** Messages not yet delivered. */
  readonly pending: number
  /** Delivered, not yet acknowledged. */
  readonly ackPending: number
  readonly redelivered: number
  /** Pull requests waiting. */
  readonly waiting: number
  /** False for an ephemeral consumer (a KV watch, a listing): it goes away by itself. */
  readonly durable: boolean
}

/** @category models @since 0.1.0 */
export interface Overview {
  readonly streams: ReadonlyArray<StreamOverview>
  readonly consumers: ReadonlyArray<ConsumerOverview>
}

/**
 * Every stream on the server (or those whose name starts with `prefix`) and their consumers.
 * @category reading @since 0.1.0
 */
export const describe = Effect.fn("Overview.describe")(function*(nats: Nats["Service"], options: { readonly prefix?: string } = {}) {
  const infos = yield* Effect.tryPromise({
    try: () => Array.fromAsync(nats.manager.streams.list()),
    catch: brokerFailure("list streams")
  })
  const selected = infos
    .filter((i) => options.prefix === undefined || i.config.name.startsWith(options.prefix))
    .sort((a, b) => a.config.name.localeCompare(b.config.name))
  const perStream = yield* Effect.forEach(
    selected.filter((i) => i.state.consumer_count > 0),
    (i) =>
      Effect.tryPromise({
        try: () => Array.fromAsync(nats.manager.consumers.list(i.config.name)),
        catch: brokerFailure(`list consumers of ${i.config.name}`)
      }),
    { concurrency: 4 }
  )
  return {
    streams: selected.map((i) => ({
      name: i.config.name,
      subjects: [...(i.config.subjects ?? [])],
      retention: i.config.retention,
      storage: i.config.storage,
      messages: i.state.messages,
      bytes: i.state.bytes,
      consumers: i.state.consumer_count
    })),
    consumers: perStream.flat().map((c) => ({
      name: c.name,
      stream: c.stream_name,
      filter: c.config.filter_subject || undefined,
      pending: c.num_pending,
      ackPending: c.num_ack_pending,
      redelivered: c.num_redelivered,
      waiting: c.num_waiting,
      durable: c.config.durable_name !== undefined && c.config.durable_name !== ""
    })).sort((a, b) => a.stream.localeCompare(b.stream) || a.name.localeCompare(b.name))
  } satisfies Overview
})
