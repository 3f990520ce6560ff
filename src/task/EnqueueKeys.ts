/**
 * The index of enqueue keys: which task an idempotency key given to `enqueue` created, stored in
 * the results bucket under `key.<hash of tenant, subject and key>`, so a second enqueue with the
 * key, from any client on any host, answers the first task instead of making another. A key is
 * reserved before its task is published and confirmed once the stream acked it: a reservation
 * left unconfirmed (its enqueue crashed) is completed by the next enqueue with the key.
 * @since 0.1.0
 */
import { Context, type Duration, Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import { type BrokerError, brokerFailure } from "../broker/BrokerError.ts"
import type { Nats } from "../broker/Nats.ts"
import type { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as ResultsBucket from "./internal/resultsBucket.ts"

/** Who holds an enqueue key. @category models @since 0.1.0 */
export interface Reservation {
  /** The task the key belongs to. */
  readonly taskId: string
  /** Its publish was acknowledged by the stream (false: the enqueue that reserved it may have failed). */
  readonly confirmed: boolean
}

/** @category services @since 0.1.0 */
export class EnqueueKeys extends Context.Service<EnqueueKeys, {
  /** Reserves `index` for `taskId` unless a task holds it already; returns who holds it. */
  readonly reserve: (index: string, taskId: string) => Effect.Effect<Reservation, BrokerError>
  /** Marks `taskId`'s reservation of `index` as published. */
  readonly confirm: (index: string, taskId: string) => Effect.Effect<void, BrokerError>
  /** Drops `index` if `taskId` holds it (its publish failed, so the next enqueue must not point at it). */
  readonly unreserve: (index: string, taskId: string) => Effect.Effect<void, BrokerError>
}>()("msgsys/EnqueueKeys") {}

/**
 * The index entry of an enqueue key: keys are scoped by tenant and subject.
 * @category utils @since 0.1.0
 */
export const indexOf = (tenant: string, subject: string, key: string): string =>
  `key.${createHash("sha256").update(`${tenant}\u0000${subject}\u0000${key}`).digest("hex")}`

// A reservation's value: JSON; a plain task id (written by an older version) counts as confirmed.
const readReservation = (text: string): Reservation => {
  try {
    const v = JSON.parse(text) as Partial<Reservation>
    if (typeof v?.taskId === "string") return { taskId: v.taskId, confirmed: v.confirmed === true }
  } catch {
    // not JSON: the older form
  }
  return { taskId: text, confirmed: true }
}

/** The index in the results bucket (created if missing). @category constructors @since 0.1.0 */
export const make = Effect.fn("EnqueueKeys.make")(function*(bucket: string, ttl: Duration.Duration) {
  const { kv } = yield* ResultsBucket.open(bucket, ttl)
  return EnqueueKeys.of({
    reserve: (index, taskId) =>
      Effect.tryPromise({
        try: async (): Promise<Reservation> => {
          try {
            await kv.create(index, JSON.stringify({ taskId, confirmed: false }))
            return { taskId, confirmed: false }
          } catch (e) {
            if (!ResultsBucket.isConflict(e)) throw e
            const held = await kv.get(index)
            // deleted meanwhile: this enqueue may take it on its next try
            if (!held || held.operation !== "PUT") throw new Error(`the reservation of ${index} changed; try again`)
            return readReservation(held.string())
          }
        },
        catch: brokerFailure(`reserve key ${index}`)
      }),
    confirm: (index, taskId) =>
      Effect.tryPromise({
        try: async () => {
          const held = await kv.get(index)
          if (held && held.operation === "PUT" && readReservation(held.string()).taskId === taskId) {
            await kv.update(index, JSON.stringify({ taskId, confirmed: true }), held.revision)
          }
        },
        catch: brokerFailure(`confirm key ${index}`)
      }).pipe(Effect.catch((e) => ResultsBucket.isConflict(e.cause) ? Effect.void : Effect.fail(e))),
    unreserve: (index, taskId) =>
      Effect.tryPromise({
        try: async () => {
          const held = await kv.get(index)
          if (held && held.operation === "PUT" && readReservation(held.string()).taskId === taskId) {
            await kv.delete(index, { previousSeq: held.revision })
          }
        },
        catch: brokerFailure(`release key ${index}`)
      })
  })
})


/** The index in memory (one process), for unit tests and the in-memory broker. @category constructors @since 0.1.0 */
export const makeMemory: Effect.Effect<EnqueueKeys["Service"]> = Effect.sync(() => {
  const keys = new Map<string, Reservation>()
  return EnqueueKeys.of({
    reserve: (index, taskId) =>
      Effect.sync(() => {
        const held = keys.get(index)
        if (held) return held
        const mine = { taskId, confirmed: false }
        keys.set(index, mine)
        return mine
      }),
    confirm: (index, taskId) =>
      Effect.sync(() => {
        if (keys.get(index)?.taskId === taskId) keys.set(index, { taskId, confirmed: true })
      }),
    unreserve: (index, taskId) =>
      Effect.sync(() => {
        if (keys.get(index)?.taskId === taskId) keys.delete(index)
      })
  })
})

/** The index in the results bucket named by the config. @category layers @since 0.1.0 */
export const layer: Layer.Layer<EnqueueKeys, BrokerError, Nats | MsgsysConfig> = Layer.effect(
  EnqueueKeys,
  Effect.flatMap(ResultsBucket.fromConfig, ({ bucket, ttl }) => make(bucket, ttl))
)
