/**
 * The demo `msgsys dev --once` runs: one round of every system against the running workers, each
 * outcome checked (files written, rows loaded, reports present, events handled, and nothing in
 * dead letters but the two messages the round poisons on purpose), then a summary. It fails,
 * naming every check that did not hold, so `msgsys dev --once` exits non-zero.
 */
import { Database } from "bun:sqlite"
import { Clock, Config, Console, Context, Data, Duration, Effect, Layer } from "effect"
import { type App, Client, MsgsysConfig, Schedules } from "msgsys"
import { DeadLetters, ExhaustedStore, Subjects } from "msgsys/admin"
import { existsSync, readdirSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { AssignmentTasks, CourseTasks, Notes, NotesLive } from "../academic/Academic.ts"
import { DocumentUploaded, TaxLedger, TaxLedgerLive } from "../bus/TaxAgent.ts"
import * as EventBus from "../bus/EventBus.ts"
import * as ChatEvents from "../chat/Events.ts"
import { runJob } from "../etl/Etl.ts"
import { generate } from "../etl/Sales.ts"
import * as Warehouse from "../etl/Warehouse.ts"
import { OrderPlaced, Shop, ShopLive, UserRegistered } from "../events/Events.ts"
import { Sales, schedules as reportSchedules } from "../reports/Reports.ts"
import { DataDir } from "../shared/DataDir.ts"
import { Backend, BackendLive, EventLogLive } from "../taskq/TaskQueue.ts"
import { makeUpload, SendEmail, Thumbnail } from "../webapp/Webapp.ts"

/** One check of the round. */
interface Check {
  readonly system: string
  readonly what: string
  readonly ok: boolean
  readonly detail: string
}

/** Some checks of the demo round did not hold. */
export class DemoFailed extends Data.TaggedError("DemoFailed")<{ readonly failed: ReadonlyArray<Check> }> {
  override get message() {
    return `the demo round failed ${this.failed.length} check(s):\n` +
      this.failed.map((c) => `  ${c.system}: ${c.what}${c.detail ? ` (${c.detail})` : ""}`).join("\n") +
      "\nsee the worker's log above, `bun run msgsys dlq list` and `bun run msgsys audit tail`"
  }
}

/** The source the demo's ETL job reads, and the warehouse it loads. */
export const salesSource = "sales-2026h1"
export const warehouse = "warehouse"

const count = (file: string, sql: string): number => {
  if (!existsSync(file)) return 0
  const db = new Database(file, { readonly: true })
  try {
    return (db.query(sql).get() as { n: number } | null)?.n ?? 0
  } catch {
    return 0
  } finally {
    db.close()
  }
}

/** Polls until `f` holds, at most `timeout`; the last value either way. */
const until = <A>(f: () => A, ok: (a: A) => boolean, timeout: Duration.Input = "60 seconds") =>
  Effect.gen(function*() {
    const end = (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.fromInputUnsafe(timeout))
    let value = f()
    while (!ok(value) && (yield* Clock.currentTimeMillis) < end) {
      yield* Effect.sleep("100 millis")
      value = f()
    }
    return value
  })

/** The sales data set: generated once (seeded), `DEMO_SALES_ROWS` orders (default 250,000). */
export const ensureSales = Effect.gen(function*() {
  const data = yield* DataDir
  const rows = yield* Effect.orDie(Config.Int("DEMO_SALES_ROWS").pipe(Config.withDefault(250_000)))
  const file = join(data.dir("etl", "sources"), `${salesSource}.csv`)
  if (!existsSync(file)) {
    const set = generate({ rows, seed: 17 })
    writeFileSync(`${file}.tmp`, set.csv)
    renameSync(`${file}.tmp`, file)
    yield* Console.log(`  generated ${file}: ${rows} orders, ${set.duplicates} duplicate and ${set.invalid} invalid lines`)
  }
  return file
})

/** One round of every system, checked. */
export const round = Effect.gen(function*() {
  const client = yield* Client.Client
  const data = yield* DataDir
  const checks: Array<Check> = []
  const lines: Array<string> = []
  const check = (system: string, what: string, ok: boolean, detail = "") => {
    checks.push({ system, what, ok, detail })
  }
  const started = yield* Clock.currentTimeMillis
  const r = `r${started.toString(36)}`
  const timed = <A, E, R>(system: string, body: Effect.Effect<A, E, R>) =>
    body.pipe(
      Effect.timeout("3 minutes"),
      Effect.catchCause((cause) => Effect.sync(() => check(system, "ran to the end", false, String(cause).split("\n")[0]!)))
    )

  // ------------------------------------------------------------------------------------------
  // 1. the design guide's domains
  yield* timed("guide", Effect.gen(function*() {
    yield* ensureSales
    const store = Context.get(yield* Layer.build(Warehouse.layer.pipe(Layer.provide(Layer.succeed(DataDir, data)))), Warehouse.Warehouse)
    const job = yield* runJob({ source: salesSource, destination: warehouse, batchSize: 5000 })
    check("guide", "etl: every valid row is in the warehouse", job.inserted + job.unchanged === job.valid, JSON.stringify(job))
    check("guide", "etl: duplicates and invalid rows were dropped", job.duplicates > 0 && job.invalid > 0)
    const before = yield* store.fingerprint(warehouse)
    // the same job again: nothing changes
    const second = yield* runJob({ source: salesSource, destination: warehouse, batchSize: 5000 })
    const after = yield* store.fingerprint(warehouse)
    check("guide", "etl: running the same load twice changes nothing", second.inserted === 0 && after.checksum === before.checksum,
      `inserted ${second.inserted}`)
    lines.push(`guide     etl: pipeline ${job.pipelineId} (extract -> transform -> load): ${job.extracted} rows extracted, ` +
      `${job.duplicates} duplicates and ${job.invalid} invalid dropped, ` +
      `${job.inserted} loaded now (${after.rows} in the warehouse, in ${job.batches} batches); the second load changed nothing`)

    const reports = yield* Effect.forEach(["daily", "weekly", "monthly"] as const, (period) =>
      Effect.flatMap(client.enqueue(Sales, { period, destination: warehouse }, { priority: "high" }), (h) => client.result(h, "2 minutes")))
    for (const rep of reports) {
      check("guide", `reports: the ${rep.period} CSV and HTML files exist`,
        existsSync(join(data.root, rep.csv)) && existsSync(join(data.root, rep.html)) && rep.orders > 0, rep.html)
    }
    const schedules = yield* Schedules.Schedules
    for (const s of reportSchedules(warehouse)) {
      yield* schedules.add({ name: s.name, cron: s.cron, task: Sales, payload: s.input }, { replace: true })
    }
    const views = yield* schedules.list
    check("guide", "reports: daily, weekly and monthly cron schedules are in place",
      ["sales-daily", "sales-weekly", "sales-monthly"].every((n) => views.some((v) => v.schedule.name === n)))
    lines.push(`guide     reports: ${reports.map((x) => `${x.period} ${x.from}..${x.to} (${x.orders} orders) -> ${x.html}`).join("; ")}`)

    const shop = Context.get(yield* Layer.build(ShopLive.pipe(Layer.provide(Layer.succeed(DataDir, data)))), Shop)
    const outbox = data.dir("webapp", "outbox")
    yield* client.publish(UserRegistered, { userId: `u-${r}`, email: `user-${r}@example.com`, name: "Demo User" })
    yield* client.publish(OrderPlaced, { orderId: `o-${r}`, userId: `u-${r}`, email: `user-${r}@example.com`, amountCents: 12_999, currency: "EUR" })
    // poisoned on purpose: the gateway declines it, a permanent failure kept for a person
    yield* client.publish(OrderPlaced, { orderId: `declined-${r}`, userId: `u-${r}`, email: `user-${r}@example.com`, amountCents: 2_000_000, currency: "EUR" }, { id: `declined-${r}` })
    const mails = yield* until(() => ["welcome", "receipt"].map((k) => existsSync(join(outbox, `${k}-${k === "welcome" ? "u" : "o"}-${r}.eml`))), (xs) => xs.every(Boolean))
    check("guide", "events: the welcome email and the receipt are in the outbox", mails.every(Boolean))
    const paid = yield* until(() => shop.counts(), (c) => c.paid > 0)
    check("guide", "events: the profile exists and the order is paid", paid.profiles > 0 && paid.paid > 0)
    lines.push(`guide     events: user u-${r} welcomed and given a profile, order o-${r} charged once and receipted; order declined-${r} declined (dead letter, on purpose)`)

    yield* Effect.promise(() => makeUpload(data.dir("webapp", "uploads"), `demo-${r}.png`, 800, 600, started % 97))
    const thumb = yield* Effect.flatMap(client.enqueue(Thumbnail, { image: `demo-${r}.png`, width: 200 }), (h) => client.result(h, "1 minute"))
    check("guide", "webapp: the thumbnail is 200x150", thumb.width === 200 && thumb.height === 150 && existsSync(join(data.root, thumb.file)))
    const mail = { to: "ops@example.com", subject: "Demo round", text: `Round ${r} ran.`, messageId: `round-${r}` }
    const first = yield* Effect.flatMap(client.enqueue(SendEmail, mail), (h) => client.result(h, "1 minute"))
    const second2 = yield* Effect.flatMap(client.enqueue(SendEmail, mail), (h) => client.result(h, "1 minute"))
    check("guide", "webapp: an email with one message id is sent once", !first.alreadySent && second2.alreadySent)
    lines.push(`guide     webapp: ${thumb.file} (${thumb.width}x${thumb.height}, ${thumb.bytes} B); ${readdirSync(outbox).length} emails in the outbox`)
  }))

  // ------------------------------------------------------------------------------------------
  // 2. chat ingestion
  yield* timed("chat", Effect.gen(function*() {
    const tenants = data.dir("chat", "tenants")
    const now = yield* Clock.currentTimeMillis
    for (const tenant of ["acme", "globex"]) {
      yield* client.publish(ChatEvents.ContactsUpsert, { phone: "+15550001", name: "Known Contact", updatedAt: now }, { tenant })
      yield* client.publish(ChatEvents.ChatsUpsert, { chatId: `chat-${r}`, name: "Support", isGroup: false, unreadCount: 1, updatedAt: now }, { tenant })
      yield* client.publishMany(ChatEvents.MessagesUpsert, [
        { messageId: `${r}-1`, chatId: `chat-${r}`, fromPhone: "+15550001", flow: "IN", text: "hi", status: "delivered", sentAt: now },
        { messageId: `${r}-2`, chatId: `chat-${r}`, fromPhone: `+1999${started % 100000}`, flow: "IN", text: "who is this?", status: "delivered", sentAt: now + 1 }
      ], { tenant })
      yield* client.publish(ChatEvents.HistoryMessages, {
        items: Array.from({ length: 250 }, (_, i) => ({
          messageId: `${r}-h${i}`, chatId: `chat-${r}`, fromPhone: "+15550001", flow: i % 2 === 0 ? "IN" as const : "OUT" as const,
          text: `history ${i}`, status: "read" as const, sentAt: now - 86_400_000 + i
        }))
      }, { tenant })
    }
    // poisoned on purpose: a message without its chat, from a client that skipped the schema
    yield* client.publishJson(ChatEvents.MessagesUpsert.subject, { messageId: `poison-${r}` }, { id: `poison-${r}`, tenant: "acme" })
    const rows = yield* until(
      () => ["acme", "globex"].map((t) => count(join(tenants, `${t}.sqlite`), `SELECT count(*) AS n FROM messages WHERE message_id LIKE '${r}-%'`)),
      (ns) => ns.every((n) => n === 252)
    )
    check("chat", "each tenant's file holds its 2 realtime and 250 historical messages", rows.every((n) => n === 252), rows.join(", "))
    const onboarded = count(join(tenants, "acme.sqlite"), `SELECT count(*) AS n FROM onboarding_log WHERE first_message_id = '${r}-2'`)
    check("chat", "the unknown sender is in the onboarding log", onboarded === 1)
    lines.push(`chat      2 tenants (acme, globex), ${rows.reduce((a, b) => a + b, 0)} messages stored in their own files, 1 sender onboarded; poison-${r} dead-lettered (on purpose)`)
  }))

  // ------------------------------------------------------------------------------------------
  // 3. the task-queue backend
  yield* timed("taskq", Effect.gen(function*() {
    const backend = Context.get(
      yield* Layer.build(BackendLive.pipe(Layer.provide(EventLogLive), Layer.provide(Layer.succeed(DataDir, data)))),
      Backend
    )
    const ids = yield* Effect.all([
      backend.enqueue("fibonacci", [40], { priority: "high" }),
      backend.enqueue("word_count", ["the quick brown fox jumps over the lazy dog the end"]),
      backend.enqueue("flaky", ["second time lucky"], { priority: "low" })
    ])
    const results = yield* Effect.forEach(ids, (id) => backend.waitResult(id, "1 minute"))
    check("taskq", "three tasks of three priorities completed", results.every((x) => x.state === "completed"), JSON.stringify(results))
    const events = yield* until(() => Effect.runSync(backend.events(ids[2])), (es) => es.length >= 5, "30 seconds")
    check("taskq", "the flaky task's lifecycle has a failed attempt and a completion",
      events.some((e) => e.type === "failed") && events.some((e) => e.type === "completed"))
    yield* backend.schedule("omniq-digest", { every: "1 minute" }, "word_count", ["digest of the day"])
    const ready = yield* backend.ready("1 minute")
    check("taskq", "the interval schedule is listed as ready within a minute", ready.some((s) => s.name === "omniq-digest"))
    lines.push(`taskq     fibonacci(40) = ${(results[0] as { value: unknown }).value}, word_count and a flaky task done; ` +
      `${events.length} lifecycle events for the flaky one; schedule omniq-digest ready`)
  }))

  // ------------------------------------------------------------------------------------------
  // 4. academic CRUD events
  yield* timed("academic", Effect.gen(function*() {
    const notes = Context.get(yield* Layer.build(NotesLive.pipe(Layer.provide(Layer.succeed(DataDir, data)))), Notes)
    const code = `D${started.toString(36).slice(-5).toUpperCase()}`
    const saved = yield* Effect.flatMap(client.enqueue(CourseTasks.save, {
      items: [{ courseCode: code, courseName: "Demo Course", semester: "Spring 2027", credits: 3, instructor: "Dr. Demo" }],
      userId: "demo"
    }, { correlationId: `demo-${r}` }), (h) => client.result(h, "1 minute"))
    yield* Effect.flatMap(client.enqueue(AssignmentTasks.save, {
      items: [{ assignmentId: `${code}-hw1`, courseCode: code, title: "First homework", dueDate: "2027-02-01", maxPoints: 10 }]
    }), (h) => client.result(h, "1 minute"))
    const seen = yield* until(() => ({ book: notes.notebooks().find((b) => b.courseCode === code), todo: notes.todos().find((t) => t.courseCode === code) }),
      (x) => x.book !== undefined && x.todo !== undefined)
    check("academic", "the course's created event made a notebook, with its source and correlation",
      saved.created === 1 && seen.book?.source === "schedule-service" && seen.book?.correlationId === `demo-${r}`)
    check("academic", "the assignment's created event made a to-do", seen.todo !== undefined)
    lines.push(`academic  course ${code} created and its assignment added by the registrar; the notes service made a notebook and a to-do`)
  }))

  // ------------------------------------------------------------------------------------------
  // 5. the event bus
  yield* timed("bus", Effect.gen(function*() {
    const bus = Context.get(yield* Layer.build(EventBus.layer), EventBus.EventBus)
    const ledger = Context.get(yield* Layer.build(TaxLedgerLive.pipe(Layer.provide(Layer.succeed(DataDir, data)))), TaxLedger)
    yield* bus.publishMany(DocumentUploaded, [
      { documentId: `p60-${r}`, kind: "p60", amountPence: 4_200_000 },
      { documentId: `rcpt-${r}`, kind: "receipt", amountPence: 12_345 }
    ], { actor: "svc-ingestion", tenantId: "acme", traceId: `trace-${r}` })
    const rows = yield* until(() => Effect.runSync(ledger.rows("acme")).filter((x) => x.traceId === `trace-${r}`), (xs) => xs.length === 2)
    check("bus", "both uploads were extracted and recorded in the ledger, in their trace", rows.length === 2)
    lines.push(`bus       2 documents uploaded for tenant acme -> extracted -> ledger (${rows.map((x) => `${x.documentId}: income ${x.income}, tax ${x.taxPaid}`).join("; ")})`)
  }))

  // ------------------------------------------------------------------------------------------
  // dead letters: the two poisoned on purpose, and nothing else from this round
  yield* timed("dead letters", Effect.gen(function*() {
    const settings = yield* MsgsysConfig.MsgsysConfig
    const names = Subjects.make(settings.streamPrefix)
    const exhausted = yield* ExhaustedStore.ExhaustedStore
    const expected = [`declined-${r}`, `poison-${r}`]
    const letterIds = () =>
      Effect.gen(function*() {
        const page = yield* DeadLetters.list(names, { limit: 10_000 })
        const kept = yield* exhausted.list({ limit: 10_000 })
        return [
          ...page.letters.filter((l) => l.letter.deadLetteredAt >= started).map((l) => l.letter.taskId),
          ...kept.filter((e) => e.deadLetteredAt >= started).map((e) => e.id)
        ]
      })
    let ids = yield* letterIds()
    const end = started + 240_000
    while (!expected.every((id) => ids.includes(id)) && (yield* Clock.currentTimeMillis) < end) {
      yield* Effect.sleep("200 millis")
      ids = yield* letterIds()
    }
    check("dead letters", "the two messages poisoned on purpose are kept", expected.every((id) => ids.includes(id)), ids.join(", "))
    const unexpected = [...new Set(ids)].filter((id) => !expected.includes(id))
    check("dead letters", "nothing else of this round was dead-lettered", unexpected.length === 0, unexpected.join(", "))
    lines.push(`dead      ${[...new Set(ids)].length} letters from this round, all on purpose (${expected.join(", ")})`)
  }))

  const failed = checks.filter((c) => !c.ok)
  const took = ((yield* Clock.currentTimeMillis) - started) / 1000
  yield* Console.log([
    "",
    `demo round ${r}: ${checks.length - failed.length} of ${checks.length} checks passed in ${took.toFixed(1)} s`,
    ...lines.map((l) => `  ${l}`),
    `  files under ${data.root}`,
    ""
  ].join("\n"))
  if (failed.length > 0) return yield* new DemoFailed({ failed })
})

/** What `App.make({ demo })` takes: the round, with the data directory from the config. */
export const demo = (data: Layer.Layer<DataDir>): Effect.Effect<void, unknown, App.DemoServices> =>
  Effect.scoped(round).pipe(Effect.provide(data))

