/**
 * The events domain of the design guide: reactions to what happened, in the fast pool.
 *
 * - `events.user.registered` → the `welcome` group sends the welcome email (a `webapp.email.send`
 *   task keyed by the user, so a redelivery sends one email) and the `profiles` group creates the
 *   user's profile.
 * - `events.order.placed` → the `payments` group charges the order through the payment gateway
 *   (keyed by the order: a retry never charges twice) and publishes `events.payment.completed`.
 * - `events.payment.completed` → the `receipts` group marks the order paid and sends the receipt.
 *
 * Each group is a durable consumer of its own: a slow mail server delays receipts, never payments.
 */
import { Database } from "bun:sqlite"
import { Context, Effect, Layer, Schema } from "effect"
import { Client, Event, Retry, Subscriber, TaskError } from "msgsys"
import { DataDir } from "../shared/DataDir.ts"
import { SendEmail } from "../webapp/Webapp.ts"

export const UserRegistered = Event.make("events.user.registered", {
  payload: { userId: Schema.String, email: Schema.String, name: Schema.String },
  version: 1
})

export const OrderPlaced = Event.make("events.order.placed", {
  payload: {
    orderId: Schema.String,
    userId: Schema.String,
    email: Schema.String,
    amountCents: Schema.Int.check(Schema.isGreaterThan(0)),
    currency: Schema.Literals(["EUR", "USD", "GBP"])
  },
  version: 1
})

export const PaymentCompleted = Event.make("events.payment.completed", {
  payload: { orderId: Schema.String, paymentId: Schema.String, email: Schema.String, amountCents: Schema.Int, currency: Schema.String },
  version: 1
})

export const events = [UserRegistered, OrderPlaced, PaymentCompleted] as const

/** The card was declined: retrying the same charge cannot help. */
export class CardDeclined extends Schema.TaggedError<CardDeclined>()("CardDeclined", { orderId: Schema.String, reason: Schema.String }) {
  override get message() {
    return `payment for order ${this.orderId} declined: ${this.reason}`
  }
}

// ---------------------------------------------------------------------------------------------
// the shop's store: profiles, charges (the payment gateway's side) and orders

export class Shop extends Context.Service<Shop, {
  readonly createProfile: (userId: string, email: string, name: string, at: number) => void
  /** Charges once per idempotency key: a second call with the key returns the first charge. */
  readonly charge: (key: string, orderId: string, amountCents: number, currency: string, at: number) => { readonly paymentId: string; readonly replayed: boolean }
  readonly markPaid: (orderId: string, paymentId: string, at: number) => void
  readonly counts: () => { readonly profiles: number; readonly charges: number; readonly paid: number }
}>()("actors/events/Shop") {}

export const ShopLive: Layer.Layer<Shop, never, DataDir> = Layer.effect(
  Shop,
  Effect.gen(function*() {
    const path = (yield* DataDir).file("events", "shop.sqlite")
    const db = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const db = new Database(path, { create: true })
        db.exec(`PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;
          CREATE TABLE IF NOT EXISTS profiles (user_id TEXT PRIMARY KEY, email TEXT NOT NULL, name TEXT NOT NULL, created_at INTEGER NOT NULL);
          CREATE TABLE IF NOT EXISTS charges (idempotency_key TEXT PRIMARY KEY, payment_id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL,
            amount_cents INTEGER NOT NULL, currency TEXT NOT NULL, at INTEGER NOT NULL);
          CREATE TABLE IF NOT EXISTS paid_orders (order_id TEXT PRIMARY KEY, payment_id TEXT NOT NULL, paid_at INTEGER NOT NULL)`)
        return db
      }),
      (db) => Effect.sync(() => db.close())
    )
    const find = db.prepare<{ payment_id: string }, [string]>("SELECT payment_id FROM charges WHERE idempotency_key = ?")
    return Shop.of({
      createProfile: (userId, email, name, at) =>
        void db.run("INSERT INTO profiles VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET email = excluded.email, name = excluded.name", [userId, email, name, at]),
      charge: (key, orderId, amountCents, currency, at) =>
        db.transaction(() => {
          const prior = find.get(key)
          if (prior !== null) return { paymentId: prior.payment_id, replayed: true }
          const paymentId = `pay_${new Bun.CryptoHasher("sha256").update(key).digest("hex").slice(0, 20)}`
          db.run("INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?)", [key, paymentId, orderId, amountCents, currency, at])
          return { paymentId, replayed: false }
        })(),
      markPaid: (orderId, paymentId, at) => void db.run("INSERT OR IGNORE INTO paid_orders VALUES (?, ?, ?)", [orderId, paymentId, at]),
      counts: () => ({
        profiles: (db.query("SELECT count(*) AS n FROM profiles").get() as { n: number }).n,
        charges: (db.query("SELECT count(*) AS n FROM charges").get() as { n: number }).n,
        paid: (db.query("SELECT count(*) AS n FROM paid_orders").get() as { n: number }).n
      })
    })
  })
)

// ---------------------------------------------------------------------------------------------
// the groups

const retry = Retry.exponential({ base: "500 millis", maxAttempts: 5, cap: "30 seconds" })

export const Welcome = Subscriber.make("welcome", { events: [UserRegistered], pool: "fast", retry })
export const Profiles = Subscriber.make("profiles", { events: [UserRegistered], pool: "fast", retry })
export const Payments = Subscriber.make("payments", { events: [OrderPlaced], pool: "fast", retry })
export const Receipts = Subscriber.make("receipts", { events: [PaymentCompleted], pool: "fast", retry })

export const groups = [Welcome, Profiles, Payments, Receipts] as const

/** Orders at or above this amount are declined by the (demo) gateway. */
export const declineAtCents = 1_000_000

export const WelcomeLive = Welcome.toLayer(Effect.gen(function*() {
  const client = yield* Client.Client
  return {
    [UserRegistered.subject]: ({ input, envelope }) =>
      Effect.asVoid(client.enqueue(SendEmail, {
        to: input.email,
        subject: `Welcome, ${input.name}!`,
        text: `Hello ${input.name},\n\nyour account ${input.userId} is ready.\n`,
        messageId: `welcome-${input.userId}`
      }, { parent: envelope, key: `welcome-${input.userId}` }))
  }
}))

export const ProfilesLive = Profiles.toLayer(Effect.gen(function*() {
  const shop = yield* Shop
  return {
    [UserRegistered.subject]: ({ input, envelope }) => Effect.sync(() => shop.createProfile(input.userId, input.email, input.name, envelope.createdAt))
  }
}))

export const PaymentsLive = Payments.toLayer(Effect.gen(function*() {
  const client = yield* Client.Client
  const shop = yield* Shop
  return {
    [OrderPlaced.subject]: ({ input, envelope }) =>
      Effect.gen(function*() {
        if (input.amountCents >= declineAtCents) {
          // permanent: straight to dead letters, where a person sees it
          return yield* Effect.fail(TaskError.permanent(new CardDeclined({ orderId: input.orderId, reason: "amount over the card's limit" })))
        }
        // the gateway's own idempotency key: a rerun after a crash returns the first charge
        const { paymentId } = shop.charge(`order-${input.orderId}`, input.orderId, input.amountCents, input.currency, envelope.createdAt)
        yield* client.publish(PaymentCompleted, {
          orderId: input.orderId,
          paymentId,
          email: input.email,
          amountCents: input.amountCents,
          currency: input.currency
        }, { parent: envelope, id: `paid-${input.orderId}` })
      })
  }
}))

export const ReceiptsLive = Receipts.toLayer(Effect.gen(function*() {
  const client = yield* Client.Client
  const shop = yield* Shop
  return {
    [PaymentCompleted.subject]: ({ input, envelope }) =>
      Effect.gen(function*() {
        shop.markPaid(input.orderId, input.paymentId, envelope.createdAt)
        yield* client.enqueue(SendEmail, {
          to: input.email,
          subject: `Receipt for order ${input.orderId}`,
          text: `Paid ${(input.amountCents / 100).toFixed(2)} ${input.currency} (payment ${input.paymentId}). Thank you!\n`,
          messageId: `receipt-${input.orderId}`
        }, { parent: envelope, key: `receipt-${input.orderId}` })
      })
  }
}))

/** The groups' handlers with the shop store (they need the data directory and the client). */
export const handlers = Layer.mergeAll(WelcomeLive, ProfilesLive, PaymentsLive, ReceiptsLive).pipe(Layer.provideMerge(ShopLive))
