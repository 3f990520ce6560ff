/**
 * Demo traffic for `./scripts/dev`: every 2 seconds a little work for one system after another
 * (a registration and an order, chat messages, a course change, a tax upload, queue tasks, a
 * thumbnail), the ETL job now and then; reports come from their cron schedules. Nothing it sends
 * is poisoned, so the dead letters stay empty while it runs.
 */
import { Clock, Effect, Layer, Schedule } from "effect"
import { type App, Client } from "msgsys"
import { CourseTasks } from "../academic/Academic.ts"
import * as EventBus from "../bus/EventBus.ts"
import { DocumentUploaded } from "../bus/TaxAgent.ts"
import * as ChatEvents from "../chat/Events.ts"
import { runJob } from "../etl/Etl.ts"
import { OrderPlaced, UserRegistered } from "../events/Events.ts"
import { DataDir } from "../shared/DataDir.ts"
import { Run } from "../taskq/TaskQueue.ts"
import { makeUpload, Thumbnail } from "../webapp/Webapp.ts"
import { ensureSales, salesSource, warehouse } from "./Demo.ts"

const names = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Donald"]

/** One step of traffic; `n` counts the steps. */
const step = (n: number) =>
  Effect.gen(function*() {
    const client = yield* Client.Client
    const now = yield* Clock.currentTimeMillis
    const id = `${now.toString(36)}${n}`
    switch (n % 6) {
      case 0: {
        const name = names[n % names.length]!
        yield* client.publish(UserRegistered, { userId: `user-${id}`, email: `${name.toLowerCase()}-${id}@example.com`, name })
        yield* client.publish(OrderPlaced, {
          orderId: `order-${id}`, userId: `user-${id}`, email: `${name.toLowerCase()}-${id}@example.com`,
          amountCents: 500 + (n * 7919) % 20_000, currency: "EUR"
        })
        break
      }
      case 1:
        yield* client.publishMany(ChatEvents.MessagesUpsert, [0, 1, 2].map((i) => ({
          messageId: `live-${id}-${i}`, chatId: `chat-${n % 5}`, fromPhone: `+1555${(n + i) % 40}`,
          flow: i === 1 ? "OUT" as const : "IN" as const, text: `message ${i} of step ${n}`, status: "sent" as const, sentAt: now + i
        })), { tenant: n % 12 === 1 ? "globex" : "acme" })
        break
      case 2:
        yield* client.enqueue(CourseTasks.save, {
          items: [{ courseCode: `LIVE${n % 7}`, courseName: `Live course ${n % 7}`, semester: "Spring 2027", credits: 1 + (n % 5), instructor: names[n % names.length]! }],
          userId: "producer"
        })
        break
      case 3: {
        const bus = yield* EventBus.EventBus
        yield* bus.publish(DocumentUploaded, {
          data: { documentId: `doc-${id}`, kind: n % 2 === 0 ? "receipt" : "invoice", amountPence: 1_000 + (n * 31) % 90_000 },
          actor: "svc-ingestion",
          tenantId: "acme"
        })
        break
      }
      case 4:
        yield* client.enqueue(Run, { func: "fibonacci", args: [20 + (n % 20)] }, { priority: n % 3 === 0 ? "high" : "normal" })
        yield* client.enqueue(Run, { func: "slugify", args: [`Live Task ${n}`] }, { priority: "low" })
        break
      case 5: {
        const data = yield* DataDir
        const image = `live-${n % 10}.png`
        yield* Effect.promise(() => makeUpload(data.dir("webapp", "uploads"), image, 640, 400, n))
        yield* client.enqueue(Thumbnail, { image, width: 96 + (n % 4) * 32 })
        break
      }
    }
    // the ETL job every ~10 minutes (its load changes nothing after the first)
    if (n % 300 === 7) yield* Effect.forkDetach(Effect.ignore(runJob({ source: salesSource, destination: warehouse, batchSize: 5000 })))
  })

/** What `App.make({ producer })` takes. */
export const producer = (data: Layer.Layer<DataDir>): Effect.Effect<void, unknown, App.DemoServices> =>
  Effect.gen(function*() {
    yield* ensureSales
    let n = 0
    yield* Effect.repeat(
      Effect.suspend(() => step(n++)).pipe(Effect.catchCause((cause) => Effect.logWarning("demo producer step failed", cause))),
      Schedule.spaced("2 seconds")
    )
  }).pipe(Effect.provide(Layer.mergeAll(EventBus.layer, data)))
