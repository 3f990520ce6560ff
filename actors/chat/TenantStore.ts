/**
 * Per-tenant storage: one SQLite file per company, `chat/tenants/<tenant>.sqlite`, opened on
 * first use and kept open. Every write is an upsert keyed by the source's ids that keeps the
 * newest version (by the source's timestamp), so a redelivered or reordered event changes nothing
 * it should not. Inbound messages from a phone with no contact leave a row in `onboarding_log`.
 */
import { Database } from "bun:sqlite"
import { Context, Data, Effect, Layer } from "effect"
import { DataDir } from "../shared/DataDir.ts"
import type { Chat, Contact, Message, MessageUpdate } from "./Events.ts"

type Chat = typeof Chat.Type
type Message = typeof Message.Type
type MessageUpdate = typeof MessageUpdate.Type
type Contact = typeof Contact.Type

/** A status update for a message this tenant does not have (yet): retried, its upsert may be on the way. */
export class MessageNotFound extends Data.TaggedError("MessageNotFound")<{ readonly tenant: string; readonly messageId: string }> {
  override get message() {
    return `tenant ${this.tenant} has no message ${this.messageId} to update: publish its v1.messages.upsert first ` +
      "(the update is retried meanwhile, then kept as a dead letter)"
  }
}

const schema = `
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = NORMAL;
  PRAGMA busy_timeout = 5000;
  CREATE TABLE IF NOT EXISTS chats (chat_id TEXT PRIMARY KEY, name TEXT NOT NULL, is_group INTEGER NOT NULL,
    unread_count INTEGER NOT NULL, updated_at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS messages (message_id TEXT PRIMARY KEY, chat_id TEXT NOT NULL, from_phone TEXT NOT NULL,
    flow TEXT NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL, sent_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS messages_chat ON messages (chat_id, sent_at);
  CREATE TABLE IF NOT EXISTS contacts (phone TEXT PRIMARY KEY, name TEXT NOT NULL, updated_at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS onboarding_log (phone TEXT PRIMARY KEY, first_message_id TEXT NOT NULL,
    chat_id TEXT NOT NULL, created_at INTEGER NOT NULL);
`

/** The statuses in the order a message moves through them: an update never moves one back. */
const statusRank: Record<string, number> = { pending: 0, sent: 1, delivered: 2, read: 3, failed: 4 }

/** One tenant's database and its prepared statements. */
export class Store {
  readonly db: Database
  private readonly upsertChat
  private readonly upsertMessage
  private readonly updateMessage
  private readonly upsertContact
  private readonly hasContact
  private readonly logOnboarding
  private readonly messageTx: (m: Message, now: number) => void

  constructor(readonly tenant: string, path: string) {
    this.db = new Database(path, { create: true })
    this.db.exec(schema)
    this.upsertChat = this.db.prepare(
      `INSERT INTO chats VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id) DO UPDATE SET name = excluded.name,
         is_group = excluded.is_group, unread_count = excluded.unread_count, updated_at = excluded.updated_at
       WHERE excluded.updated_at >= chats.updated_at`
    )
    this.upsertMessage = this.db.prepare(
      `INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO UPDATE SET text = excluded.text,
         chat_id = excluded.chat_id, from_phone = excluded.from_phone, flow = excluded.flow, sent_at = excluded.sent_at`
    )
    this.updateMessage = this.db.prepare<{ status: string; updated_at: number }, [string]>(
      "SELECT status, updated_at FROM messages WHERE message_id = ?"
    )
    this.upsertContact = this.db.prepare(
      `INSERT INTO contacts VALUES (?, ?, ?) ON CONFLICT (phone) DO UPDATE SET name = excluded.name,
         updated_at = excluded.updated_at WHERE excluded.updated_at >= contacts.updated_at`
    )
    this.hasContact = this.db.prepare<{ one: number }, [string]>("SELECT 1 AS one FROM contacts WHERE phone = ?")
    this.logOnboarding = this.db.prepare("INSERT OR IGNORE INTO onboarding_log VALUES (?, ?, ?, ?)")
    this.messageTx = this.db.transaction((m: Message, now: number) => this.writeMessage(m, now))
  }

  chat(c: Chat) {
    this.upsertChat.run(c.chatId, c.name, c.isGroup ? 1 : 0, c.unreadCount, c.updatedAt)
  }

  /** A message, and its sender's onboarding entry when it is inbound from an unknown phone: both or neither. */
  message(m: Message, now: number) {
    if (this.db.inTransaction) this.writeMessage(m, now)
    else this.messageTx(m, now)
  }

  private writeMessage(m: Message, now: number) {
    this.upsertMessage.run(m.messageId, m.chatId, m.fromPhone, m.flow, m.text, m.status, m.sentAt, m.sentAt)
    if (m.flow === "IN" && this.hasContact.get(m.fromPhone) === null) {
      this.logOnboarding.run(m.fromPhone, m.messageId, m.chatId, now)
    }
  }

  /** A status change; false when the message is not there. A status never moves back. */
  update(u: MessageUpdate): boolean {
    const row = this.updateMessage.get(u.messageId)
    if (row === null) return false
    if ((statusRank[u.status] ?? 0) > (statusRank[row.status] ?? 0)) {
      this.db.run("UPDATE messages SET status = ?, updated_at = ? WHERE message_id = ?", [u.status, u.updatedAt, u.messageId])
    }
    return true
  }

  contact(c: Contact) {
    this.upsertContact.run(c.phone, c.name, c.updatedAt)
  }

  /** Runs `f` in one transaction (or in the one already open): a historical batch is all written or not at all. */
  transaction<A>(f: () => A): A {
    return this.db.inTransaction ? f() : this.db.transaction(f)()
  }

  close() {
    this.db.close()
  }
}

export class TenantStores extends Context.Service<TenantStores, {
  /** The store of one tenant, opened on first use. */
  readonly of: (tenant: string) => Store
  /** Tenants with a file. */
  readonly dir: string
}>()("actors/chat/TenantStores") {}

/** Stores under `<dir>`, one file per tenant. */
export const make = (dir: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const open = new Map<string, Store>()
      return {
        open,
        service: TenantStores.of({
          dir,
          of: (tenant) => {
            let store = open.get(tenant)
            if (store === undefined) {
              // msgsys tenants are [A-Za-z0-9_-]{1,64}: safe as a file name
              store = new Store(tenant, `${dir}/${tenant}.sqlite`)
              open.set(tenant, store)
            }
            return store
          }
        })
      }
    }),
    ({ open }) => Effect.sync(() => {
      for (const s of open.values()) s.close()
    })
  ).pipe(Effect.map((r) => r.service))

export const layer: Layer.Layer<TenantStores, never, DataDir> = Layer.effect(
  TenantStores,
  Effect.gen(function*() {
    const data = yield* DataDir
    return yield* make(data.dir("chat", "tenants"))
  })
)
