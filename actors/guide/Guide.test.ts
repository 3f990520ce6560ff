/**
 * The design guide's four domains on a real nats-server: an ETL job over a generated data set
 * (dedupe, schema validation, batched idempotent load), reports written as files, the event
 * flows (welcome email and profile, payment and receipt), and the web-app jobs.
 */
import { describe, expect, test } from "bun:test"
import { Context, Effect, Layer } from "effect"
import { Client, MsgsysConfig, Pipelines, Schedules } from "msgsys"
import { DeadLetters, Subjects } from "msgsys/admin"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Extract, runJob } from "../etl/Etl.ts"
import { generate } from "../etl/Sales.ts"
import * as Warehouse from "../etl/Warehouse.ts"
import { OrderPlaced, Shop, ShopLive, UserRegistered } from "../events/Events.ts"
import { Sales, schedules } from "../reports/Reports.ts"
import * as DataDir from "../shared/DataDir.ts"
import { eventually, natsServer, quietLogs } from "../support/TestRuntime.ts"
import { makeUpload, SendEmail, Thumbnail } from "../webapp/Webapp.ts"
import { app } from "./Guide.ts"

const nats = natsServer()

describe("the design guide's domains", () => {
  test("an ETL job dedupes, validates and loads in batches, and loading it again changes nothing; reports, event flows and web-app jobs write their files", () =>
    Effect.runPromise(Effect.gen(function*() {
      const dir = nats.dir()
      const data = DataDir.layer(dir)
      const ctx = yield* nats.start(app(data), nats.settings(dir), { scheduler: true })
      const client = Context.get(ctx, Client.Client)
      const names = Subjects.make(Context.get(ctx, MsgsysConfig.MsgsysConfig).streamPrefix)
      const letters = (group: string) =>
        DeadLetters.list(names, { actor: group, limit: 100 }).pipe(Effect.provideContext(ctx), Effect.orDie)
      const warehouse = Context.get(yield* Layer.build(Layer.provide(Warehouse.layer, data)), Warehouse.Warehouse)

      // ETL: 20,000 orders with duplicates and invalid rows
      const set = generate({ rows: 20_000, seed: 5 })
      mkdirSync(join(dir, "etl", "sources"), { recursive: true })
      writeFileSync(join(dir, "etl", "sources", "sales.csv"), set.csv)
      const first = yield* runJob({ source: "sales", destination: "warehouse", batchSize: 750 }, { timeout: "1 minute" }).pipe(Effect.provideContext(ctx))
      expect(first).toMatchObject({ extracted: 20_000 + set.duplicates, duplicates: set.duplicates, invalid: set.invalid })
      expect(first.valid).toBe(20_000 - set.invalid)
      expect(first.inserted).toBe(first.valid)
      expect(first.batches).toBe(Math.ceil(first.valid / 750))
      expect(readFileSync(first.rejects, "utf8").split("\n").length).toBe(set.invalid)
      // a pipeline of three steps, each a task of the etl actor
      const status = yield* Context.get(ctx, Pipelines.Pipelines).status(first.pipelineId)
      expect([status.status, status.length]).toEqual(["succeeded", 3])
      const before = yield* warehouse.fingerprint("warehouse")
      expect(before.rows).toBe(first.valid)
      const again = yield* runJob({ source: "sales", destination: "warehouse", batchSize: 750 }).pipe(Effect.provideContext(ctx))
      expect([again.inserted, again.unchanged]).toEqual([0, first.valid])
      expect(yield* warehouse.fingerprint("warehouse")).toEqual(before)
      // a date window into another warehouse, and a config the schema refuses
      const march = yield* runJob({ source: "sales", destination: "march", startDate: "2026-03-01", endDate: "2026-03-31" }).pipe(Effect.provideContext(ctx))
      expect(march.inserted).toBeGreaterThan(0)
      expect((yield* warehouse.totals("march", "day", "2026-01-01", "2026-12-31")).every((d) => d.key.startsWith("2026-03"))).toBe(true)
      const tooBig = yield* Effect.flip(client.enqueue(Extract, { source: "sales", destination: "warehouse", batchSize: 20_000 }))
      expect(tooBig.message).toContain("Expected a value between 1 and 10000")

      // reports: on demand, the three periods of the latest day with sales; files named in the result
      const results = yield* Effect.forEach(["daily", "weekly", "monthly"] as const, (period) =>
        Effect.flatMap(client.enqueue(Sales, { period, destination: "warehouse" }), (h) => client.result(h, "30 seconds")))
      expect(results.map((r) => [r.period, r.from, r.to])).toEqual([
        ["daily", "2026-06-30", "2026-06-30"],
        ["weekly", "2026-06-29", "2026-07-05"],
        ["monthly", "2026-06-01", "2026-06-30"]
      ])
      const june = (yield* warehouse.totals("warehouse", "day", "2026-06-01", "2026-06-30")).reduce((n, d) => n + d.orders, 0)
      expect(results[2]!.orders).toBe(june)
      for (const r of results) {
        expect(readFileSync(join(dir, r.csv), "utf8").startsWith("day,orders,units,revenue\n")).toBe(true)
        const html = readFileSync(join(dir, r.html), "utf8")
        expect(html).toContain("<svg")
        // self-contained: nothing loaded from elsewhere, nothing run
        expect(html).not.toMatch(/<script|\s(src|href)=/)
      }
      // and by cron: the three schedules, each due at 06:00 UTC
      const sched = Context.get(ctx, Schedules.Schedules)
      for (const s of schedules("warehouse")) yield* sched.add({ name: s.name, cron: s.cron, task: Sales, payload: s.input })
      expect((yield* sched.list).map((v) => v.schedule.name)).toEqual(["sales-daily", "sales-monthly", "sales-weekly"])

      // events: two registrations of one user send one welcome email; an order is charged once and gets a receipt
      yield* client.publish(UserRegistered, { userId: "u1", email: "ada@example.com", name: "Ada" })
      yield* client.publish(UserRegistered, { userId: "u1", email: "ada@example.com", name: "Ada" })
      yield* client.publish(OrderPlaced, { orderId: "o1", userId: "u1", email: "ada@example.com", amountCents: 4_250, currency: "EUR" })
      // a card the gateway declines: a permanent failure, straight to the payments group's dead letters
      yield* client.publish(OrderPlaced, { orderId: "o2", userId: "u1", email: "ada@example.com", amountCents: 5_000_000, currency: "EUR" })
      const outbox = join(dir, "webapp", "outbox")
      yield* eventually("the welcome and receipt emails", Effect.sync(() =>
        existsSync(join(outbox, "welcome-u1.eml")) && existsSync(join(outbox, "receipt-o1.eml"))))
      const shop = Context.get(yield* Layer.build(Layer.provide(ShopLive, data)), Shop)
      yield* eventually("the profile and the paid order", Effect.sync(() => {
        const c = shop.counts()
        return c.profiles === 1 && c.paid === 1
      }))
      expect(shop.counts()).toEqual({ profiles: 1, charges: 1, paid: 1 })
      expect(readFileSync(join(outbox, "receipt-o1.eml"), "utf8")).toContain("Paid 42.50 EUR")
      yield* eventually("the declined order's dead letter", Effect.map(letters("payments"), (p) => p.letters.length === 1))
      expect((yield* letters("payments")).letters[0]!.letter.reason).toBe("permanent")
      yield* Effect.sleep("300 millis")
      expect(readdirSync(outbox).filter((f) => f.endsWith(".eml")).sort()).toEqual(["receipt-o1.eml", "welcome-u1.eml"])

      // web app: a thumbnail keeps the aspect ratio; an email with a message id is sent once
      yield* Effect.promise(() => makeUpload(join(dir, "webapp", "uploads"), "photo.png", 640, 480, 3))
      const thumb = yield* Effect.flatMap(client.enqueue(Thumbnail, { image: "photo.png", width: 160 }), (h) => client.result(h, "30 seconds"))
      expect([thumb.file, thumb.width, thumb.height]).toEqual([join("webapp", "thumbnails", "photo-160.png"), 160, 120])
      expect(readFileSync(join(dir, thumb.file)).subarray(1, 4).toString()).toBe("PNG")
      const mail = { to: "bob@example.com", subject: "Your export", text: "It is ready.", messageId: "export-42" }
      const sent = yield* Effect.flatMap(client.enqueue(SendEmail, mail), (h) => client.result(h, "30 seconds"))
      const resent = yield* Effect.flatMap(client.enqueue(SendEmail, mail), (h) => client.result(h, "30 seconds"))
      expect([sent.alreadySent, resent.alreadySent, resent.file]).toEqual([false, true, sent.file])
      const missing = yield* Effect.flatMap(client.enqueue(Thumbnail, { image: "nope.png", width: 64 }), (h) => Effect.flip(client.result(h, "30 seconds")))
      expect(missing._tag).toBe("TaskFailed")
    }).pipe(Effect.scoped, Effect.provide(quietLogs))), 120_000)
})
