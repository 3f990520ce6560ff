/**
 * The chat ingestion processor on a real nats-server: per-tenant files, upserts that make every
 * handler idempotent, historical batches in one transaction, the onboarding log, and a status
 * update that never finds its message going through dead letters and the DLQ worker to exhausted.
 */
import { Database } from "bun:sqlite"
import { describe, expect, test } from "bun:test"
import { Context, Effect } from "effect"
import { Client, MsgsysConfig, Retry } from "msgsys"
import { DeadLetters, ExhaustedStore, Subjects } from "msgsys/admin"
import { existsSync } from "node:fs"
import { join } from "node:path"
import * as DataDir from "../shared/DataDir.ts"
import { eventually, natsServer, quietLogs } from "../support/TestRuntime.ts"
import { app, handle } from "./Chat.ts"
import * as TenantStore from "./TenantStore.ts"
import * as Events from "./Events.ts"

const nats = natsServer()

const query = <T>(file: string, sql: string): Array<T> => {
  if (!existsSync(file)) return []
  const db = new Database(file, { readonly: true })
  try {
    return db.query(sql).all() as Array<T>
  } catch {
    return []
  } finally {
    db.close()
  }
}

const count = (file: string, table: string) => query<{ n: number }>(file, `SELECT count(*) AS n FROM ${table}`)[0]?.n ?? 0

const msg = (id: string, chatId: string, fromPhone: string, flow: "IN" | "OUT", sentAt: number) =>
  ({ messageId: id, chatId, fromPhone, flow, text: `text of ${id}`, status: "sent" as const, sentAt })

describe("chat ingestion", () => {
  test("each company's events land in its own file, as upserts, with onboarding for unknown senders, batches of 1,000, and undeliverable updates kept as exhausted", () =>
    Effect.runPromise(Effect.gen(function*() {
      const dir = nats.dir()
      const settings = nats.settings(dir, {
        dlqWorker: true,
        dlqRetryAttempts: 2,
        dlqRetryBase: "200 millis",
        dlqRetryCap: "300 millis"
      })
      const ctx = yield* nats.start(
        app(DataDir.layer(dir), { retry: Retry.exponential({ base: "50 millis", maxAttempts: 3, cap: "200 millis" }) }),
        settings
      )
      const client = Context.get(ctx, Client.Client)
      const tenants = join(dir, "chat", "tenants")
      const acme = join(tenants, "acme.sqlite")
      const globex = join(tenants, "globex.sqlite")
      const acmeOnly = { tenant: "acme" }

      // realtime: a known contact, a chat, messages in and out
      yield* client.publish(Events.ContactsUpsert, { phone: "+100", name: "Ada", updatedAt: 1 }, acmeOnly)
      yield* client.publish(Events.ChatsUpsert, { chatId: "c1", name: "Ada", isGroup: false, unreadCount: 2, updatedAt: 10 }, acmeOnly)
      // an older version of the chat, arriving late: ignored
      yield* client.publish(Events.ChatsUpsert, { chatId: "c1", name: "stale", isGroup: false, unreadCount: 9, updatedAt: 5 }, acmeOnly)
      yield* client.publishMany(Events.MessagesUpsert, [
        msg("m1", "c1", "+100", "IN", 100), // from a known contact
        msg("m2", "c1", "+999", "IN", 101), // from an unknown phone: onboarding
        msg("m3", "c1", "+555", "OUT", 102), // outbound: never onboarding
        msg("m2", "c1", "+999", "IN", 101) // the same message again (a producer's retry): one row
      ], acmeOnly)
      yield* client.publish(Events.MessagesUpsert, msg("g1", "c9", "+777", "IN", 100), { tenant: "globex" })
      yield* eventually("the messages", Effect.sync(() => count(acme, "messages") === 3 && count(globex, "messages") === 1))
      yield* client.publish(Events.MessagesUpdate, { messageId: "m1", chatId: "c1", status: "read", updatedAt: 200 }, acmeOnly)
      // a late "delivered" after "read": a status never moves back
      yield* client.publish(Events.MessagesUpdate, { messageId: "m1", chatId: "c1", status: "delivered", updatedAt: 150 }, acmeOnly)
      // an update that arrives before its message: retried until the message is there
      yield* client.publish(Events.MessagesUpdate, { messageId: "m4", chatId: "c1", status: "delivered", updatedAt: 300 }, acmeOnly)
      yield* Effect.sleep("30 millis")
      yield* client.publish(Events.MessagesUpsert, msg("m4", "c1", "+100", "IN", 103), acmeOnly)

      // history: 1,000 messages and their contacts in one event each, one transaction each
      const items = Array.from({ length: 1000 }, (_, i) => msg(`h${i}`, `hc${i % 20}`, `+2${i % 50}`, i % 2 === 0 ? "IN" : "OUT", 1000 + i))
      yield* client.publish(Events.HistoryContacts, {
        items: Array.from({ length: 50 }, (_, i) => ({ phone: `+2${i}`, name: `history contact ${i}`, updatedAt: 1 }))
      }, acmeOnly)
      yield* Effect.sleep("50 millis")
      yield* client.publish(Events.HistoryMessages, { items }, acmeOnly)
      // more than 1,000 items is refused at publish: the schema bounds a batch
      const tooMany = yield* Effect.flip(client.publish(Events.HistoryMessages, { items: [...items, msg("x", "c", "+1", "IN", 1)] }, acmeOnly))
      expect(tooMany._tag).toBe("PayloadEncodeError")

      // an update whose message never comes: dead letter for globex, retried by the DLQ worker, exhausted
      yield* client.publish(Events.MessagesUpdate, { messageId: "ghost", chatId: "c9", status: "read", updatedAt: 1 }, { tenant: "globex" })

      yield* eventually("the history", Effect.sync(() => count(acme, "messages") === 1004))
      yield* eventually("the late update", Effect.sync(() =>
        query<{ status: string }>(acme, "SELECT status FROM messages WHERE message_id = 'm4'")[0]?.status === "delivered"))
      expect(query(acme, "SELECT message_id, status FROM messages WHERE message_id IN ('m1','m2','m3') ORDER BY message_id")).toEqual([
        { message_id: "m1", status: "read" },
        { message_id: "m2", status: "sent" },
        { message_id: "m3", status: "sent" }
      ])
      expect(query(acme, "SELECT name, unread_count FROM chats")).toEqual([{ name: "Ada", unread_count: 2 }])
      // onboarding: m2's sender only (the history's senders had contacts first)
      expect(query(acme, "SELECT phone, first_message_id FROM onboarding_log")).toEqual([{ phone: "+999", first_message_id: "m2" }])
      expect(query(globex, "SELECT phone FROM onboarding_log")).toEqual([{ phone: "+777" }])
      // tenants never mix
      expect(count(globex, "messages")).toBe(1)
      expect(count(acme, "contacts")).toBe(51)

      const exhausted = Context.get(ctx, ExhaustedStore.ExhaustedStore)
      yield* eventually("the exhausted update", Effect.map(exhausted.list({ tenant: "globex" }), (rows) => rows.length === 1), 20_000)
      const [row] = yield* exhausted.list({ tenant: "globex" })
      expect([row!.actor, row!.tenant, row!.retries]).toEqual(["chat-ingest", "globex", 2])
      expect(JSON.stringify(row!.error)).toContain("has no message ghost")
      // nothing else went to dead letters, and the letter left the stream once kept as exhausted
      const names = Subjects.make(Context.get(ctx, MsgsysConfig.MsgsysConfig).streamPrefix)
      const letters = yield* DeadLetters.list(names, { limit: 100 }).pipe(Effect.provideContext(ctx))
      expect(letters.letters.length).toBe(0)
      expect(yield* exhausted.list({ tenant: "acme" })).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(quietLogs))), 60_000)

  test("a historical batch is written in one transaction: an item the database refuses leaves none of the batch", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const stores = yield* TenantStore.make(nats.dir())
      const store = stores.of("acme")
      const items = Array.from({ length: 100 }, (_, i) => msg(`h${i}`, "c", "+1", "OUT", i))
      // item 50 breaks a NOT NULL column (the schema would refuse it on the wire; here we bypass it)
      const broken = items.map((m, i) => i === 50 ? { ...m, text: null as unknown as string } : m)
      expect(() => handle[Events.HistoryMessages.subject](store, { items: broken }, 0)).toThrow()
      expect(store.db.query("SELECT count(*) AS n FROM messages").get()).toEqual({ n: 0 })
      handle[Events.HistoryMessages.subject](store, { items }, 0)
      expect(store.db.query("SELECT count(*) AS n FROM messages").get()).toEqual({ n: 100 })
    }))))
})
