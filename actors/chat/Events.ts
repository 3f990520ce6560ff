/**
 * The chat ingestion processor's versioned events (seed 001): realtime single events on
 * `v1.<entity>.upsert|update`, historical imports on `v1.history.<entity>` carrying up to 1,000
 * items each. The company (tenant) travels in the msgsys envelope, not in the payload.
 */
import { Schema } from "effect"
import { Event } from "msgsys"

/** Epoch milliseconds of the source system: upserts keep the newest version of a row. */
const Millis = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

export const Chat = Schema.Struct({
  chatId: Schema.String,
  name: Schema.String,
  isGroup: Schema.Boolean,
  unreadCount: Schema.Int,
  updatedAt: Millis
})

export const Flow = Schema.Literals(["IN", "OUT"])
export const Status = Schema.Literals(["pending", "sent", "delivered", "read", "failed"])

export const Message = Schema.Struct({
  messageId: Schema.String,
  chatId: Schema.String,
  /** The other party's phone for IN, ours for OUT. */
  fromPhone: Schema.String,
  flow: Flow,
  text: Schema.String,
  status: Status,
  sentAt: Millis
})

export const MessageUpdate = Schema.Struct({
  messageId: Schema.String,
  chatId: Schema.String,
  status: Status,
  updatedAt: Millis
})

export const Contact = Schema.Struct({
  phone: Schema.String,
  name: Schema.String,
  updatedAt: Millis
})

/** At most this many items in one historical event: they are written in one transaction. */
export const maxHistoryItems = 1_000

const history = <S extends Schema.Codec<any, any, never, never>>(item: S) =>
  Schema.Struct({ items: Schema.Array(item).check(Schema.isMaxLength(maxHistoryItems)) })

export const ChatsUpsert = Event.make("v1.chats.upsert", { payload: Chat, version: 1 })
export const MessagesUpsert = Event.make("v1.messages.upsert", { payload: Message, version: 1 })
export const MessagesUpdate = Event.make("v1.messages.update", { payload: MessageUpdate, version: 1 })
export const ContactsUpsert = Event.make("v1.contacts.upsert", { payload: Contact, version: 1 })
export const HistoryChats = Event.make("v1.history.chats", { payload: history(Chat), version: 1 })
export const HistoryMessages = Event.make("v1.history.messages", { payload: history(Message), version: 1 })
export const HistoryContacts = Event.make("v1.history.contacts", { payload: history(Contact), version: 1 })

export const realtime = [ChatsUpsert, MessagesUpsert, MessagesUpdate, ContactsUpsert] as const
export const historical = [HistoryChats, HistoryMessages, HistoryContacts] as const
export const all = [...realtime, ...historical] as const
