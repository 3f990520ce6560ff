/**
 * `msgsys dlq replay|purge|exhausted` as a person runs them, against a real nats-server: letters
 * made in this process (DeadLetters.move, the one way letters are written), the CLI spawned with a
 * clean MSGSYS_* environment, the task stream read back to count what was enqueued.
 */
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { join } from "node:path"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as Topology from "../../../src/broker/Topology.ts"
import { MsgsysConfig } from "../../../src/config/MsgsysConfig.ts"
import * as DeadLetter from "../../../src/dlq/DeadLetter.ts"
import * as DeadLetters from "../../../src/dlq/DeadLetters.ts"
import type { ExhaustedInput } from "../../../src/dlq/ExhaustedStore.ts"
import * as SqliteExhaustedStore from "../../../src/dlq/SqliteExhaustedStore.ts"
import * as ActorTopology from "../../../src/actor/ActorTopology.ts"
import * as Services from "../../../src/app/Services.ts"
import * as Database from "../../../src/sqlite/Database.ts"
import { natsHarness, tempDir, uniqueName } from "../../support/harness.ts"

const h = natsHarness()

/** Runs the CLI with a clean MSGSYS_* environment plus `env`; stdin is not a terminal. */
const msgsys = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MSGSYS_")))
  const proc = Bun.spawn(["bun", "src/cli/main.ts", ...args], {
    env: { ...base, MSGSYS_DATA_DIR: tempDir(), ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe"
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { stdout, stderr, code }
}

interface LetterSpec {
  readonly actor: string
  readonly subject: string
  readonly tenant: string
  readonly deadLetteredAt: number
  readonly body?: Uint8Array
  readonly headers?: Record<string, string>
}

/**
 * A prefix of its own with a task stream per actor (limits retention, so every enqueued message
 * stays countable) and the given letters; returns the letters' sequences, in order.
 */
const setup = (prefix: string, actors: ReadonlyArray<string>, specs: ReadonlyArray<LetterSpec>) =>
  h.run(Effect.gen(function*() {
    const config = yield* MsgsysConfig
    const nats = yield* Nats
    const names = Subjects.make(prefix)
    yield* Topology.apply(ActorTopology.shared(names, config))
    for (const actor of actors) {
      yield* Effect.promise(() => nats.manager.streams.add({ name: names.taskStream(actor), subjects: [`${actor}.>`] }))
    }
    return yield* Effect.forEach(specs, (s, i) =>
      Effect.map(DeadLetters.move(nats, names, {
        stream: names.taskStream(s.actor),
        sequence: 1000 + i,
        storedSubject: s.subject,
        headers: { "Msgsys-Id": `task-${i}`, ...s.headers },
        body: s.body ?? new TextEncoder().encode(JSON.stringify({ n: i })),
        storedAt: s.deadLetteredAt - 1
      }, {
        taskId: `task-${i}`,
        subject: s.subject,
        actor: s.actor,
        tenant: s.tenant,
        reason: "exhausted",
        error: { tag: "Error", message: `failed #${i}` },
        attempts: 3,
        history: [],
        deadLetteredAt: s.deadLetteredAt
      }), (m) => m.sequence))
  }), { streamPrefix: prefix })

/** What the task stream of `actor` holds: each message's task id and headers. */
const enqueued = (prefix: string, actor: string) =>
  h.run(Effect.gen(function*() {
    const nats = yield* Nats
    const stream = Subjects.make(prefix).taskStream(actor)
    const info = yield* Effect.promise(() => nats.manager.streams.info(stream))
    const out: Array<{ id: string; headers: Record<string, string> }> = []
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const m = yield* Effect.promise(() => nats.manager.streams.getMessage(stream, { seq }))
      if (m === null) continue
      const headers: Record<string, string> = {}
      for (const k of m.header?.keys() ?? []) headers[k] = m.header.get(k)
      out.push({ id: headers["Msgsys-Id"] ?? "", headers })
    }
    return out
  }), { streamPrefix: prefix })

/** The sequences of the letters left, and how many messages (letters and body parts) the dead-letter stream holds. */
const left = (prefix: string) =>
  h.run(Effect.gen(function*() {
    const nats = yield* Nats
    const names = Subjects.make(prefix)
    const page = yield* DeadLetters.list(names, { limit: 10_000 })
    const info = yield* Effect.promise(() => nats.manager.streams.info(names.deadLetterStream))
    return { sequences: page.letters.map((l) => l.sequence), messages: info.state.messages }
  }), { streamPrefix: prefix })

const hour = 3_600_000

describe("msgsys dlq replay", () => {
  test("replay --all with filters replays exactly the matching letters once; running it again replays none", async () => {
    const prefix = uniqueName("RPL")
    const [a, b] = [uniqueName("ra"), uniqueName("rb")]
    const now = Date.now()
    const seqs = await setup(prefix, [a, b], [
      // 0 matches every filter below; it carries a retry count from the DLQ worker, which a manual replay drops
      { actor: a, subject: `${a}.charge`, tenant: "acme", deadLetteredAt: now - 0.5 * hour, headers: { [DeadLetter.RetriesHeader]: "3" } },
      { actor: a, subject: `${a}.charge`, tenant: "acme", deadLetteredAt: now - 2 * hour }, // too old
      { actor: a, subject: `${a}.refund`, tenant: "acme", deadLetteredAt: now - 0.1 * hour }, // other subject
      { actor: a, subject: `${a}.charge.eu`, tenant: "globex", deadLetteredAt: now - 0.2 * hour }, // other tenant
      { actor: a, subject: `${a}.charge.eu`, tenant: "acme", deadLetteredAt: now - 0.3 * hour }, // matches the pattern
      { actor: b, subject: `${b}.charge`, tenant: "acme", deadLetteredAt: now - 0.1 * hour } // other actor
    ])
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: prefix }
    const args = ["dlq", "replay", "--all", "--actor", a, "--tenant", "acme", "--subject", `${a}.charge.>`, "--since", "1h"]

    // `etl.charge.>` does not match `etl.charge` itself: a second run with the bare subject takes #0
    const first = await msgsys(args, env)
    expect(first.stderr).toContain("dead letters replayed: 1/1 (100%)")
    expect([first.code, first.stdout.trim()]).toEqual([0, "replayed 1 dead letter"])
    const second = await msgsys([...args.slice(0, -4), "--subject", `${a}.charge`, "--since", "1h"], env)
    expect([second.code, second.stdout.trim()]).toEqual([0, "replayed 1 dead letter"])

    const ids = (await enqueued(prefix, a)).map((m) => m.id).sort()
    expect(ids).toEqual(["task-0", "task-4"])
    expect(await enqueued(prefix, b)).toEqual([])
    // a manual replay starts the DLQ worker's count afresh
    expect((await enqueued(prefix, a)).find((m) => m.id === "task-0")!.headers[DeadLetter.RetriesHeader]).toBeUndefined()
    expect((await left(prefix)).sequences).toEqual([seqs[1]!, seqs[2]!, seqs[3]!, seqs[5]!])

    // the same commands again: nothing matches any more, nothing is enqueued
    for (const again of [args, [...args.slice(0, -4), "--subject", `${a}.charge`, "--since", "1h"]]) {
      const r = await msgsys(again, env)
      expect([r.code, r.stdout.trim()]).toEqual([0, "replayed 0 dead letters"])
    }
    expect((await enqueued(prefix, a)).map((m) => m.id).sort()).toEqual(["task-0", "task-4"])
  }, 60_000)

  test("a letter replayed by number is enqueued once; a second replay of it enqueues nothing and says it is gone", async () => {
    const prefix = uniqueName("RPL")
    const a = uniqueName("ra")
    const [seq] = await setup(prefix, [a], [{ actor: a, subject: `${a}.charge`, tenant: "acme", deadLetteredAt: Date.now() }])
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: prefix }
    const first = await msgsys(["dlq", "replay", String(seq)], env)
    expect([first.code, first.stdout.trim()]).toEqual([0, `replayed #${seq} as task task-0`])
    const second = await msgsys(["dlq", "replay", String(seq)], env)
    expect(second.code).toBe(1)
    expect(second.stderr).toContain(`no dead letter #${seq}`)
    expect((await enqueued(prefix, a)).map((m) => m.id)).toEqual(["task-0"])
  }, 60_000)

  test("two replays of one letter at once (two people, or a crash before the delete) enqueue it once", async () => {
    const prefix = uniqueName("RPL")
    const a = uniqueName("ra")
    const [seq] = await setup(prefix, [a], [{ actor: a, subject: `${a}.charge`, tenant: "acme", deadLetteredAt: Date.now() }])
    const names = Subjects.make(prefix)
    // both read the letter before either deletes it
    const ids = await h.run(
      Effect.flatMap(DeadLetters.read(names, seq!), (full) =>
        Effect.all([DeadLetters.replayRead(names, full), DeadLetters.replayRead(names, full)], { concurrency: 2 })).pipe(
          Effect.provide(Services.broker)
        ),
      { streamPrefix: prefix }
    )
    expect(ids).toEqual(["task-0", "task-0"])
    expect((await enqueued(prefix, a)).map((m) => m.id)).toEqual(["task-0"])
    expect((await left(prefix)).sequences).toEqual([])
  }, 60_000)

  test("replay needs a letter number or --all, not both, and filters only with --all; nothing is replayed", async () => {
    const prefix = uniqueName("RPL")
    const a = uniqueName("ra")
    const [seq] = await setup(prefix, [a], [{ actor: a, subject: `${a}.charge`, tenant: "acme", deadLetteredAt: Date.now() }])
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: prefix }
    // 2: the command line is wrong; 1: the subject was refused where letters are selected
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string, number]> = [
      [["dlq", "replay"], "no letter given: give the number of a dead letter", 2],
      [["dlq", "replay", String(seq), "--all"], "a letter number and --all were both given", 2],
      [["dlq", "replay", "--actor", a], "--actor select letters for --all, which was not given", 2],
      [["dlq", "replay", "--all", "--since", "soon"], `--since "soon" is not a duration`, 2],
      [["dlq", "replay", "--all", "--subject", "a..b"], `invalid subject "a..b"`, 1]
    ]
    for (const [args, message, code] of cases) {
      const r = await msgsys(args, env)
      expect({ args, code: r.code }).toEqual({ args, code })
      expect(r.stderr).toContain(message)
    }
    expect(await enqueued(prefix, a)).toEqual([])
    expect((await left(prefix)).sequences).toEqual([seq!])
  }, 60_000)
})

describe("msgsys dlq purge", () => {
  test("purge deletes exactly the letters it counts (and their body parts), and off a terminal only with --yes", async () => {
    const prefix = uniqueName("PRG")
    const [a, b] = [uniqueName("pa"), uniqueName("pb")]
    const now = Date.now()
    const big = new Uint8Array(1024 * 1024 - 256).fill(7) // with its metadata over max_payload: stored apart
    const seqs = await setup(prefix, [a, b], [
      { actor: a, subject: `${a}.x`, tenant: "acme", deadLetteredAt: now - 10 * 24 * hour },
      { actor: a, subject: `${a}.x`, tenant: "acme", deadLetteredAt: now - 9 * 24 * hour, body: big },
      { actor: a, subject: `${a}.x`, tenant: "acme", deadLetteredAt: now - 1 * hour },
      { actor: b, subject: `${b}.x`, tenant: "acme", deadLetteredAt: now - 10 * 24 * hour }
    ])
    const before = await left(prefix)
    expect(before.messages).toBe(5) // four letters and one body part
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: prefix }
    const args = ["dlq", "purge", "--actor", a, "--older-than", "7d"]

    const refused = await msgsys(args, env)
    expect(refused.code).toBe(2) // the command line lacks --yes
    expect(refused.stderr).toContain(
      `purge would delete 2 dead letters (of actor ${a}, older than 7d) for good, and stdin is not a terminal to ask on: pass --yes`
    )
    expect(await left(prefix)).toEqual(before)

    const done = await msgsys([...args, "--yes"], env)
    expect([done.code, done.stdout.trim()]).toEqual([0, "deleted 2 dead letters"])
    expect(await left(prefix)).toEqual({ sequences: [seqs[2]!, seqs[3]!], messages: 2 })
    const again = await msgsys([...args, "--yes"], env)
    expect([again.code, again.stdout.trim()]).toEqual([0, "no dead letters match: nothing deleted"])
  }, 60_000)
})

describe("msgsys dlq exhausted", () => {
  const row = (id: string, subject: string, extra: Partial<ExhaustedInput> = {}): ExhaustedInput => ({
    id,
    originalSubject: subject,
    actor: subject.split(".")[0]!,
    tenant: "acme",
    headers: { "Msgsys-Id": id, [DeadLetter.RetriesHeader]: "5" },
    payload: new TextEncoder().encode(JSON.stringify({ account: id })),
    error: { tag: "Error", message: `gateway down for ${id}` },
    reason: "exhausted",
    retries: 5,
    attempts: [{ attempt: 1, at: 1, error: { tag: "Error", message: "gateway down" } }],
    deadLetteredAt: 1_000,
    exhaustedAt: 2_000,
    ...extra
  })

  test("list, show, replay (once, then only with --again) and delete an exhausted letter", async () => {
    const prefix = uniqueName("EXH")
    const a = uniqueName("ea")
    await setup(prefix, [a], [])
    const dir = tempDir()
    const sqlitePath = join(dir, "msgsys.sqlite")
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Database.make({ path: sqlitePath })
      const store = yield* SqliteExhaustedStore.make().pipe(Effect.provideService(Database.Database, db))
      yield* store.add(row("t-old", `${a}.charge`))
      yield* store.add(row("t-poison", `${a}.charge`, { reason: "poison", retries: 0, exhaustedAt: 3_000, payload: "bm90IGpzb24=" }))
    })))
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: prefix, MSGSYS_SQLITE_PATH: sqlitePath }

    const listed = await msgsys(["dlq", "exhausted", "list"], env)
    expect(listed.code).toBe(0)
    expect(listed.stdout.trim().split("\n")).toEqual([
      `t-poison  1970-01-01T00:00:03.000Z  ${a}.charge  tenant=acme  poison, 0 DLQ retries: gateway down for t-poison`,
      `t-old  1970-01-01T00:00:02.000Z  ${a}.charge  tenant=acme  exhausted, 5 DLQ retries: gateway down for t-old`
    ])
    const shown = await msgsys(["dlq", "exhausted", "show", "t-poison"], env)
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: "t-poison", reason: "poison", bodySize: 8, bodyPreview: "not json" })

    const replayed = await msgsys(["dlq", "exhausted", "replay", "t-old"], env)
    expect([replayed.code, replayed.stdout.trim()]).toEqual([0, "replayed exhausted letter t-old"])
    const twice = await msgsys(["dlq", "exhausted", "replay", "t-old"], env)
    expect(twice.code).toBe(1)
    expect(twice.stderr).toContain("exhausted letter t-old was replayed at")
    expect(twice.stderr).toContain("pass --again")
    const messages = await enqueued(prefix, a)
    expect(messages.map((m) => m.id)).toEqual(["t-old"])
    // a fresh attempt count, and the DLQ worker's count starts afresh too
    expect(messages[0]!.headers[DeadLetter.RetriesHeader]).toBeUndefined()
    expect((await msgsys(["dlq", "exhausted", "list", "--json"], env)).stdout).toContain('"replayedAt"')
    const again = await msgsys(["dlq", "exhausted", "replay", "t-old", "--again"], env)
    expect(again.code).toBe(0)
    expect((await enqueued(prefix, a)).map((m) => m.id)).toEqual(["t-old", "t-old"])

    const deleted = await msgsys(["dlq", "exhausted", "delete", "t-poison"], env)
    expect([deleted.code, deleted.stdout.trim()]).toEqual([0, "deleted exhausted letter t-poison"])
    const gone = await msgsys(["dlq", "exhausted", "delete", "t-poison"], env)
    expect(gone.code).toBe(1)
    expect(gone.stderr).toContain(`no exhausted letter "t-poison"`)
    expect((await msgsys(["dlq", "exhausted", "list"], env)).stdout.trim().split("\n")).toHaveLength(1)
  }, 60_000)
})
