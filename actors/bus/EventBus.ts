/**
 * An event bus in the shape of the tax agent's (seed 004): topics under one bus name, `publish`
 * with a payload carrying data, actor, tenant id and trace id, and a durable consumer per topic
 * and consumer group that tries an event at most 3 times. Built on msgsys events only, so it has
 * one implementation and two brokers: NATS JetStream (`App.layer`) and the in-memory broker of
 * `msgsys/testing`; the same test suite runs on both (EventBus.test.ts).
 *
 * ```ts
 * const Tax = EventBus.bus("tax")
 * const Uploaded = Tax.topic("document.uploaded", Schema.Struct({ documentId: Schema.String }))
 * const OnUpload = Tax.subscribe("extract", Uploaded, (event) => Effect.log(event.data.documentId))
 * // publisher side
 * yield* EventBus.EventBus.use((bus) => bus.publish(Uploaded, { data, actor: "svc-ingestion", tenantId: "acme" }))
 * ```
 */
import { Clock, Context, type Duration, Effect, Layer, Schema } from "effect"
import { Client, Envelope, Event, Retry, Subscriber } from "msgsys"
import type { Actor } from "msgsys"

/** A schema with no service requirements: what a topic's data is checked against. */
export type DataSchema = Schema.Codec<any, any, never, never>

/** The payload of every bus event, as it travels (JSON): the seed's EventPayload. */
export const payloadOf = <D extends DataSchema>(data: D) =>
  Schema.Struct({ data, actor: Schema.String, tenantId: Schema.String, traceId: Schema.String })

/** A topic: an event definition whose payload is data plus who, for which tenant, in which trace. */
export type Topic<Name extends string = string, D extends DataSchema = DataSchema> = Event.Event<
  Name,
  ReturnType<typeof payloadOf<D>>
>

/** Any topic. */
export type AnyTopic = Topic<string, any>

/** The data type of a topic. */
export type DataOf<T extends AnyTopic> = Event.Payload<T>["data"]

/** What a publisher gives: the data, the service that acts, the tenant, and optionally the trace it belongs to. */
export interface Publication<D> {
  readonly data: D
  /** The service or user that caused the event, e.g. "svc-ingestion". */
  readonly actor: string
  /** Letters, digits, `_` and `-`, up to 64: it is also the msgsys tenant (dead letters are kept per tenant). */
  readonly tenantId: string
  /** Default: the parent event's trace, else the event id. */
  readonly traceId?: string
  /** The event id; publishing one id twice within two minutes stores it once. Default: a new id. */
  readonly eventId?: string
  /** The event being handled when this one is published: trace, tenant and causation follow it. */
  readonly parent?: ReceivedEvent<unknown>
}

/** What a subscriber receives. */
export interface ReceivedEvent<D> {
  readonly eventId: string
  readonly topic: string
  readonly data: D
  readonly actor: string
  readonly tenantId: string
  readonly traceId: string
  /** 1 on the first delivery; at most 3. */
  readonly attempt: number
  readonly publishedAt: Date
  /** The msgsys envelope, for publishing follow-ups with `parent`. */
  readonly envelope: Envelope.Envelope
}

/** A subscription: a durable group reading one topic, and the layer of its handler. */
export interface Subscription<R = never> {
  readonly group: Subscriber.Any
  readonly layer: Layer.Layer<Actor.HandlersOf<string>, never, R>
}

/** The tenant id cannot be a msgsys tenant. */
export class InvalidTenantId extends Schema.TaggedError<InvalidTenantId>()("InvalidTenantId", {
  tenantId: Schema.String
}) {
  override get message() {
    return `tenant id ${JSON.stringify(this.tenantId)} is not usable: use 1 to 64 letters, digits, _ or - ` +
      "(map other ids to such a key before publishing)"
  }
}

/** Tries per event and group, the first included: the seed's `max_deliver` of 3. */
export const maxDeliveries = 3

/** A bus: its name is the first token of every topic's subject (one events stream per bus). */
export const bus = <const Name extends string>(name: Name) => ({
  name,
  /** A topic `<bus>.<name>` whose data has the given schema. */
  topic: <const T extends string, D extends DataSchema>(topic: T, data: D): Topic<`${Name}.${T}`, D> =>
    Event.make(`${name}.${topic}`, { payload: payloadOf(data) }),
  /**
   * A durable consumer `<group>-<topic>` of one topic: every group gets every event, the instances
   * of one group share them; a handler that fails is retried (after 50 ms, then 100 ms) and after
   * the third try the event goes to dead letters for its tenant.
   */
  subscribe: <T extends AnyTopic, R = never>(
    group: string,
    topic: T,
    handler: (event: ReceivedEvent<DataOf<T>>) => Effect.Effect<void, unknown, R>,
    options: { readonly concurrency?: number; readonly retryBase?: Duration.Input } = {}
  ): Subscription<R> => {
    const name = `${group}-${topic.subject.slice(topic.subject.indexOf(".") + 1).replaceAll(".", "-")}`
    const subscriber = Subscriber.make(name, {
      events: [topic],
      concurrency: options.concurrency ?? 8,
      retry: Retry.exponential({ base: options.retryBase ?? "50 millis", maxAttempts: maxDeliveries, cap: "5 seconds" })
    })
    const layer = subscriber.toLayer({
      [topic.subject]: (request: Actor.Request<any>) =>
        handler({
          eventId: request.envelope.id,
          topic: topic.subject,
          data: request.input.data,
          actor: request.input.actor,
          tenantId: request.input.tenantId,
          traceId: request.input.traceId,
          attempt: request.attempt,
          publishedAt: new Date(request.envelope.createdAt),
          envelope: request.envelope
        })
    } as never)
    return { group: subscriber, layer: layer as unknown as Layer.Layer<Actor.HandlersOf<string>, never, R> }
  }
})

/** Publishes events on the bus. */
export class EventBus extends Context.Service<EventBus, {
  readonly publish: <T extends AnyTopic>(
    topic: T,
    publication: Publication<DataOf<T>>
  ) => Effect.Effect<Client.Published, Client.EnqueueError | Envelope.InvalidTaskId | InvalidTenantId>
  /** Many events of one topic and tenant in one call, pipelined; one answer per item, in order. */
  readonly publishMany: <T extends AnyTopic>(
    topic: T,
    items: ReadonlyArray<DataOf<T>>,
    meta: Omit<Publication<unknown>, "data" | "eventId">
  ) => Effect.Effect<ReadonlyArray<Client.Published>, Client.EnqueueError | Envelope.InvalidTaskId | Client.EnqueueManyFailed | InvalidTenantId>
}>()("actors/EventBus") {}

const checkTenant = (tenantId: string) =>
  Envelope.isValidTenant(tenantId) ? Effect.void : Effect.fail(new InvalidTenantId({ tenantId }))

/** The bus on a msgsys client: NATS in a worker or program, the in-memory broker in tests. */
export const layer: Layer.Layer<EventBus, never, Client.Client> = Layer.effect(
  EventBus,
  Effect.gen(function*() {
    const client = yield* Client.Client
    return EventBus.of({
      publish: (topic, p) =>
        Effect.gen(function*() {
          yield* checkTenant(p.tenantId)
          const eventId = p.eventId ?? Envelope.newId(yield* Clock.currentTimeMillis)
          const traceId = p.traceId ?? p.parent?.traceId ?? eventId
          return yield* client.publish(topic, { data: p.data, actor: p.actor, tenantId: p.tenantId, traceId } as never, {
            id: eventId,
            tenant: p.tenantId,
            correlationId: traceId,
            ...(p.parent !== undefined ? { parent: p.parent.envelope } : {})
          })
        }),
      publishMany: (topic, items, meta) =>
        Effect.gen(function*() {
          yield* checkTenant(meta.tenantId)
          const now = yield* Clock.currentTimeMillis
          const ids = items.map(() => Envelope.newId(now))
          const traceOf = (i: number) => meta.traceId ?? meta.parent?.traceId ?? ids[i]!
          return yield* client.publishMany(
            topic,
            items.map((data, i) => ({ data, actor: meta.actor, tenantId: meta.tenantId, traceId: traceOf(i) })) as never,
            {
              id: (_, i) => ids[i]!,
              tenant: meta.tenantId,
              ...(meta.traceId !== undefined ? { correlationId: meta.traceId } : {}),
              ...(meta.parent !== undefined ? { parent: meta.parent.envelope } : {})
            }
          )
        })
    })
  })
)
