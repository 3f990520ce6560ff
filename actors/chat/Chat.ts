/**
 * The multi-tenant chat ingestion processor (seed 001) on msgsys: one durable group,
 * `chat-ingest`, reads every `v1.*.*` event and writes it to its company's own SQLite file.
 *
 * - Realtime events are one row each; historical ones carry up to 1,000 items, written in one
 *   transaction (all or nothing).
 * - Every write is an upsert, so every handler is idempotent: a redelivery changes nothing.
 * - The tenant (company) comes from the envelope and goes everywhere: its file, its dead letters
 *   (`<prefix>.dlq.chat-ingest.<tenant>`), its audit rows.
 * - A status update for a message not stored yet fails with `MessageNotFound` and is retried
 *   (its upsert may be in flight); after 5 attempts it is dead-lettered, and the DLQ worker
 *   retries it 5 more times from 1 to 15 minutes apart (`MSGSYS_DLQ_RETRY_*`, the defaults)
 *   before keeping it as exhausted in the msgsys SQLite file for a person.
 * - An inbound message from a phone the tenant has no contact for is logged in `onboarding_log`.
 */
import { Clock, Effect, Layer } from "effect"
import { App, type Envelope, Retry, Subscriber } from "msgsys"
import type { DataDir } from "../shared/DataDir.ts"
import * as Events from "./Events.ts"
import * as TenantStore from "./TenantStore.ts"

/**
 * The handlers as plain functions of a tenant's store: what the group runs, and what the
 * benchmark measures in-process.
 */
export const handle = {
  [Events.ChatsUpsert.subject]: (store: TenantStore.Store, c: typeof Events.Chat.Type) => store.chat(c),
  [Events.MessagesUpsert.subject]: (store: TenantStore.Store, m: typeof Events.Message.Type, now: number) => store.message(m, now),
  [Events.MessagesUpdate.subject]: (store: TenantStore.Store, u: typeof Events.MessageUpdate.Type) => {
    if (!store.update(u)) throw new TenantStore.MessageNotFound({ tenant: store.tenant, messageId: u.messageId })
  },
  [Events.ContactsUpsert.subject]: (store: TenantStore.Store, c: typeof Events.Contact.Type) => store.contact(c),
  [Events.HistoryChats.subject]: (store: TenantStore.Store, h: typeof Events.HistoryChats.payload.Type) =>
    store.transaction(() => {
      for (const c of h.items) store.chat(c)
    }),
  [Events.HistoryMessages.subject]: (store: TenantStore.Store, h: typeof Events.HistoryMessages.payload.Type, now: number) =>
    store.transaction(() => {
      for (const m of h.items) store.message(m, now)
    }),
  [Events.HistoryContacts.subject]: (store: TenantStore.Store, h: typeof Events.HistoryContacts.payload.Type) =>
    store.transaction(() => {
      for (const c of h.items) store.contact(c)
    })
} as const

/** Tries of an event before it is dead-lettered: the seed's JetStream `max_deliver` of 5. */
export const defaultRetry = Retry.exponential({ base: "1 second", maxAttempts: 5, cap: "30 seconds" })

/** The consumer group (tests give it a faster retry policy). */
export const ingestGroup = (retry: Retry.Policy = defaultRetry) => Subscriber.make("chat-ingest", {
  events: Events.all,
  pool: "fast",
  concurrency: 16,
  timeout: "1 minute",
  retry,
  // one chat's events in order (an update never overtakes its message in a worker); a tenant's
  // historical imports one at a time
  partitionBy: (payload: { chatId?: string; phone?: string }, envelope: Envelope.Envelope) =>
    `${envelope.tenant}/${payload.chatId ?? payload.phone ?? "history"}`
})

export const Ingest = ingestGroup()

type AnyRequest = { readonly input: any; readonly envelope: Envelope.Envelope }

export const IngestLive = Ingest.toLayer(Effect.gen(function*() {
  const stores = yield* TenantStore.TenantStores
  const run = (subject: keyof typeof handle) => (r: AnyRequest) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.try({
        try: () => (handle[subject] as (s: TenantStore.Store, input: unknown, now: number) => void)(stores.of(r.envelope.tenant), r.input, now),
        // a MessageNotFound is retried; anything else the store throws is a retryable failure too
        catch: (e) => e
      }))
  return Object.fromEntries(Events.all.map((e) => [e.subject, run(e.subject)])) as never
}))

/** The chat system's group, events and handlers (which need the data directory). */
export const parts = {
  actors: [],
  subscribers: [Ingest],
  events: Events.all,
  handlers: Layer.provide(IngestLive, TenantStore.layer)
}

/** The chat system as an app of its own. */
export const app = (data: Layer.Layer<DataDir>, options: { readonly retry?: Retry.Policy } = {}) =>
  App.make({
    actors: [],
    subscribers: [ingestGroup(options.retry)],
    events: parts.events,
    handlers: Layer.provide(parts.handlers, data)
  })
