/**
 * The chat handlers measured in-process, like the Go processor's handler benchmarks (seed 001):
 * per op, the event's JSON is parsed, checked against its schema and handed to its handler,
 * which writes a real per-tenant SQLite file (WAL, synchronous NORMAL) in a temp directory — the
 * seed mocked its repositories, so its figures leave the database out and ours do not.
 *
 *   bun actors/chat/bench.ts            the table (takes about a minute)
 *   bun actors/chat/bench.ts --quick    fewer rounds
 *
 * Time/op is the median of 5 rounds. Heap/op is the JavaScript heap one op allocates, measured
 * in a second process with the garbage collector off (`BUN_JSC_useGC=0`): the growth of the
 * heap's capacity over many ops, divided by their number. JavaScriptCore counts bytes, not
 * allocations, so there is no allocs/op column; SQLite's own memory is not in it.
 */
import { fullGC, heapStats } from "bun:jsc"
import { Schema } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { handle } from "./Chat.ts"
import * as Events from "./Events.ts"
import { Store } from "./TenantStore.ts"

type Subject = keyof typeof handle

interface Bench {
  readonly name: string
  readonly subject: Subject
  /** The JSON of op `i` (distinct ids, so inserts insert). */
  readonly body: (i: number) => string
  /** Runs before the timed ops (rows that updates find). */
  readonly setup?: (store: Store, n: number) => void
}

const chat = (i: number, updatedAt = 1) => ({ chatId: `c${i}`, name: `chat ${i}`, isGroup: i % 7 === 0, unreadCount: i % 5, updatedAt })
const message = (i: number, flow: "IN" | "OUT" = "OUT") =>
  ({ messageId: `m${i}`, chatId: `c${i % 100}`, fromPhone: `+1${i % 1000}`, flow, text: `hello number ${i}, how are you?`, status: "sent", sentAt: 1_700_000_000_000 + i })
const contact = (i: number, updatedAt = 1) => ({ phone: `+1${i}`, name: `contact ${i}`, updatedAt })

const history = (count: number, item: (i: number) => unknown) => (i: number) =>
  JSON.stringify({ items: Array.from({ length: count }, (_, k) => item(i * count + k)) })

const benches: ReadonlyArray<Bench> = [
  ...[1, 10, 100].map((n): Bench => ({ name: `HistoricalHandler_Chats/count=${n}`, subject: Events.HistoryChats.subject, body: history(n, chat) })),
  ...[1, 10, 100].map((n): Bench => ({ name: `HistoricalHandler_Messages/count=${n}`, subject: Events.HistoryMessages.subject, body: history(n, message) })),
  ...[1, 10, 100].map((n): Bench => ({ name: `HistoricalHandler_Contacts/count=${n}`, subject: Events.HistoryContacts.subject, body: history(n, contact) })),
  { name: "RealtimeHandler_ChatUpsert", subject: Events.ChatsUpsert.subject, body: (i) => JSON.stringify(chat(i)) },
  {
    name: "RealtimeHandler_ChatUpdate",
    subject: Events.ChatsUpsert.subject,
    body: (i) => JSON.stringify(chat(i % 1000, 2 + i)),
    setup: (s) => s.transaction(() => { for (let i = 0; i < 1000; i++) s.chat(chat(i)) })
  },
  { name: "RealtimeHandler_MessageUpsert", subject: Events.MessagesUpsert.subject, body: (i) => JSON.stringify(message(i)) },
  {
    name: "RealtimeHandler_MessageUpsert_Onboarding",
    subject: Events.MessagesUpsert.subject,
    body: (i) => JSON.stringify({ ...message(i, "IN"), fromPhone: `+9${i}` })
  },
  {
    name: "RealtimeHandler_MessageUpdate",
    subject: Events.MessagesUpdate.subject,
    body: (i) => JSON.stringify({ messageId: `m${i % 1000}`, chatId: `c${i % 100}`, status: i % 2 === 0 ? "delivered" : "read", updatedAt: i }),
    setup: (s) => s.transaction(() => { for (let i = 0; i < 1000; i++) s.message(message(i) as never, 0) })
  },
  { name: "RealtimeHandler_ContactUpsert", subject: Events.ContactsUpsert.subject, body: (i) => JSON.stringify(contact(i)) },
  {
    name: "RealtimeHandler_ContactUpdate",
    subject: Events.ContactsUpsert.subject,
    body: (i) => JSON.stringify(contact(i % 1000, 2 + i)),
    setup: (s) => s.transaction(() => { for (let i = 0; i < 1000; i++) s.contact(contact(i)) })
  }
]

const decoders = new Map(Events.all.map((e) => [e.subject, Schema.decodeUnknownSync(e.payload as Schema.Codec<any, any, never, never>)]))

/** One op: parse, check, handle. */
const op = (store: Store, subject: Subject, body: string) => {
  const input = decoders.get(subject)!(JSON.parse(body))
  ;(handle[subject] as (s: Store, i: unknown, now: number) => void)(store, input, 0)
}

/** A fresh store per bench, with its bodies made before the clock starts. */
const prepare = (dir: string, b: Bench, n: number) => {
  const store = new Store(b.name.replace(/[^A-Za-z0-9_-]/g, "_"), join(dir, `${b.name.replace(/[^A-Za-z0-9_-]/g, "_")}.sqlite`))
  b.setup?.(store, n)
  const bodies = Array.from({ length: n }, (_, i) => b.body(i))
  return { store, bodies }
}

/** Ops per round: about the same number of rows for every bench. */
const opsFor = (b: Bench, quick: boolean) => {
  const count = Number(/count=(\d+)/.exec(b.name)?.[1] ?? 1)
  return Math.max(20, Math.round((quick ? 2_000 : 10_000) / count))
}

const timeNs = (dir: string, b: Bench, quick: boolean) => {
  const n = opsFor(b, quick)
  const rounds: Array<number> = []
  const { store, bodies } = prepare(dir, b, n * 6)
  // a warm-up round, then 5 measured ones, each on new ids
  for (let r = 0; r < 6; r++) {
    const slice = bodies.slice(r * n, (r + 1) * n)
    const start = Bun.nanoseconds()
    for (const body of slice) op(store, b.subject, body)
    if (r > 0) rounds.push((Bun.nanoseconds() - start) / n)
  }
  store.close()
  rounds.sort((x, y) => x - y)
  return rounds[2]!
}

const heapBytes = (dir: string, b: Bench, quick: boolean) => {
  const n = Math.max(20, Math.round(opsFor(b, quick) / 2))
  const { store, bodies } = prepare(dir, b, n * 2)
  for (const body of bodies.slice(0, n)) op(store, b.subject, body)
  fullGC()
  const before = heapStats().heapCapacity
  for (const body of bodies.slice(n)) op(store, b.subject, body)
  const after = heapStats().heapCapacity
  store.close()
  return (after - before) / n
}

const quick = process.argv.includes("--quick")
const dir = mkdtempSync(join(tmpdir(), "chat-bench-"))
try {
  if (process.argv.includes("--heap")) {
    // the child: GC off, heap bytes per op as JSON
    const out: Record<string, number> = {}
    for (const b of benches) out[b.name] = heapBytes(dir, b, quick)
    console.log(JSON.stringify(out))
  } else {
    const child = Bun.spawnSync([process.execPath, import.meta.path, "--heap", ...(quick ? ["--quick"] : [])], {
      env: { ...process.env, BUN_JSC_useGC: "0" },
      stderr: "inherit"
    })
    const heap: Record<string, number> = child.exitCode === 0 ? JSON.parse(child.stdout.toString()) : {}
    const rows = benches.map((b) => [b.name, Math.round(timeNs(dir, b, quick)), heap[b.name] === undefined ? NaN : Math.round(heap[b.name]!)] as const)
    const w = Math.max(...rows.map((r) => r[0].length), 14)
    console.log(`| ${"Benchmark Name".padEnd(w)} | Time/Op (ns) | Heap/Op (B) |`)
    console.log(`| :${"-".repeat(w - 1)} | -----------: | ----------: |`)
    for (const [name, ns, bytes] of rows) {
      console.log(`| ${name.padEnd(w)} | ${String(ns).padStart(12)} | ${(Number.isNaN(bytes) ? "n/a" : String(bytes)).padStart(11)} |`)
    }
    console.log(`\nBun ${Bun.version}, ${process.arch}; parse + schema check + handler + SQLite write per op, files in ${tmpdir()}`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
