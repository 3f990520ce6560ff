/**
 * Audit at scale (issue 18): builds a SQLite file of N tasks through the real write path
 * (`AuditRows.prepare(...).write`, the calls the hot path makes: a claim with "enqueued" and
 * "started", then the outcome), spread over 30 days, then times what an operator runs against it:
 * the original design's three task_audit queries, `audit stats --since 24h`, `audit show`, and a
 * prune of the oldest day while another process keeps committing to the same file (its longest
 * commit is the stall a worker would see). Reports bytes per task and the file size before and
 * after the prune and vacuum. Targets: the queries and stats under 100 ms each, show under 10 ms,
 * no writer stall over 50 ms.
 *
 *   ./scripts/bench --audit-scale [--tasks 10000000] [--payload off|redacted|full] [--json]
 *                                 [--file PATH] [--keep] [--no-prune]
 *   (or bun scripts/lib/bench/audit-scale.ts with the same arguments)
 *
 * --tasks    how many tasks (default 10,000,000; takes a while and ~5 GB: scale down for a quick look)
 * --payload  the audit payload mode while generating (default off)
 * --file     the SQLite file to build, or to reuse if it already holds the tasks (then kept)
 * --keep     keep the generated file (its path is printed)
 * --no-prune skip the prune (to time the queries again on a kept file)
 * --json     one JSON object on stdout (progress and notes go to stderr)
 *
 * With `--writer-child FILE` it is the other process:
 * it commits a few tasks every 2 ms until SIGTERM, then prints its commit times as JSON.
 */
import { Effect } from "effect"
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import type { AuditRecord, PayloadMode } from "../../../src/audit/AuditLog.ts"
import * as AuditQueries from "../../../src/audit/AuditQueries.ts"
import * as AuditRows from "../../../src/audit/AuditRows.ts"
import * as Progress from "../../../src/cli/Progress.ts"
import * as MessageId from "../../../src/envelope/MessageId.ts"
import * as Database from "../../../src/sqlite/Database.ts"
import { migrations } from "../../../src/sqlite/internal/migrations.ts"
import * as SqliteFile from "../../../src/sqlite/SqliteFile.ts"

const DAY = 86_400_000
const SPAN_DAYS = 30
const names = ["etl.extract.salesforce", "etl.load.warehouse", "reports.render.pdf", "webapp.email.send", "webapp.thumbnail"]
const tenants = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell"]

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const flag = (name: string) => process.argv.includes(name)
const log = (line: string) => process.stderr.write(`${line}\n`)
const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

const open = (path: string, busyTimeoutMs = 20) =>
  SqliteFile.open({ path, synchronous: "normal", busyTimeoutMs, migrations, now: Date.now() })

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!

// ---------------------------------------------------------------------------------------------
// the other process: commits a few tasks every 2 ms, timing each transaction (lock wait included)

const writerChild = async (path: string) => {
  const db = open(path, 30_000)
  const rows = AuditRows.prepare(db, { payload: "off", redactFields: [] })
  const begin = db.prepare("BEGIN IMMEDIATE")
  const commit = db.prepare("COMMIT")
  // [epoch ms at BEGIN, ms waiting for the lock, ms for the whole transaction]
  const times: Array<[number, number, number]> = []
  let n = 0
  let stop = false
  process.on("SIGTERM", () => {
    stop = true
  })
  while (!stop) {
    const at0 = Date.now()
    const started = performance.now()
    begin.run()
    const locked = performance.now()
    for (let i = 0; i < 5; i++, n++) {
      const at = Date.now()
      const base = {
        messageId: `CHILD${process.pid}-${n}`,
        subject: "bench.other",
        actor: "bench",
        pool: "fast",
        tenant: "other",
        correlationId: `CHILD${process.pid}-${n}`
      }
      rows.write([{ ...base, attempt: 1, step: "started", at }])
      rows.write([{ ...base, attempt: 1, step: "succeeded", at, durationMs: 1 }])
    }
    commit.run()
    times.push([at0, locked - started, performance.now() - started])
    await Bun.sleep(2)
  }
  db.close()
  process.stdout.write(JSON.stringify({ times }) + "\n")
}

// ---------------------------------------------------------------------------------------------
// generation

interface Generated {
  readonly seconds: number
  readonly cpuSeconds: number
  readonly steps: number
}

/** Writes `tasks` lifecycles over the 30 days before `end`, in transactions of 20,000 tasks. */
const generate = (path: string, tasks: number, end: number, payload: PayloadMode): Generated => {
  const db = open(path)
  const rows = AuditRows.prepare(db, { payload, redactFields: ["password"] })
  const ids = MessageId.makeGenerator()
  const progress = Progress.make({ label: "tasks written" })
  const start = end - SPAN_DAYS * DAY
  const step = (SPAN_DAYS * DAY) / tasks
  const perTransaction = 20_000
  const wave = 256
  let steps = 0
  const t0 = performance.now()
  const c0 = cpuMs()
  // the hot path's shape: each transaction holds the claims of one wave of tasks and the outcomes
  // of the wave before
  type Task = { readonly base: Omit<AuditRecord, "step" | "at" | "attempt">; readonly created: number; readonly i: number }
  let pending: Array<Task> = []
  const claim = (t: Task) => {
    const input = payload === "off" ? undefined : { tenant: t.base.tenant, since: "2026-01-01", password: "secret" }
    rows.write([
      { ...t.base, attempt: 1, step: "enqueued", at: t.created, payload: input },
      { ...t.base, attempt: 1, step: "started", at: t.created + 5, payload: input }
    ])
    steps += 2
  }
  const outcome = (t: Task) => {
    const fate = t.i % 100
    const ran = 20 + (t.i % 97) + (t.i % 7) / 10
    if (fate < 92) {
      rows.write([{ ...t.base, attempt: 1, step: "succeeded", at: t.created + 5 + ran, durationMs: ran }])
      steps += 1
    } else if (fate < 97) {
      const failedAt = t.created + 5 + ran
      rows.write([
        { ...t.base, attempt: 1, step: "failed", at: failedAt, durationMs: ran, error: "upstream timed out" },
        { ...t.base, attempt: 1, step: "retry_scheduled", at: failedAt, delayMs: 1000, error: "upstream timed out" }
      ])
      rows.write([{ ...t.base, attempt: 2, step: "started", at: failedAt + 1000 }])
      rows.write([{ ...t.base, attempt: 2, step: "succeeded", at: failedAt + 1000 + ran, durationMs: ran }])
      steps += 4
    } else {
      const failedAt = t.created + 5 + ran
      rows.write([
        { ...t.base, attempt: 1, step: "failed", at: failedAt, durationMs: ran, error: "invalid input: missing field" },
        { ...t.base, attempt: 1, step: "dead_lettered", at: failedAt + 1, error: "invalid input: missing field" }
      ])
      steps += 2
    }
  }
  for (let from = 0; from < tasks; from += perTransaction) {
    const to = Math.min(tasks, from + perTransaction)
    db.transaction(() => {
      for (let w = from; w < to; w += wave) {
        const claimed: Array<Task> = []
        for (let i = w; i < Math.min(to, w + wave); i++) {
          const created = Math.floor(start + i * step)
          const name = names[i % names.length]!
          const id = ids(created)
          const t: Task = {
            base: {
              messageId: id,
              subject: name,
              actor: name.slice(0, name.indexOf(".")),
              pool: i % 3 === 0 ? "slow" : "fast",
              tenant: tenants[(i >> 4) % tenants.length]!,
              correlationId: i % 10 === 0 ? `corr-${i - (i % 50)}` : id
            },
            created,
            i
          }
          claim(t)
          claimed.push(t)
        }
        for (const t of pending) outcome(t)
        pending = claimed
      }
    }).immediate()
    progress.update(to, tasks)
  }
  db.transaction(() => pending.forEach(outcome)).immediate()
  progress.finish()
  const seconds = (performance.now() - t0) / 1000
  const cpuSeconds = (cpuMs() - c0) / 1000
  db.run("PRAGMA wal_checkpoint(TRUNCATE)")
  db.close()
  return { seconds, cpuSeconds, steps }
}

/** The write path alone on a fresh file: a claim ("started") and an outcome ("succeeded") per task, 500 tasks per transaction. */
const pairRate = (dir: string, tasks: number) => {
  const path = join(dir, "pair.db")
  const db = open(path)
  const rows = AuditRows.prepare(db, { payload: "off", redactFields: [] })
  const ids = MessageId.makeGenerator()
  const base = Date.now() - DAY
  const records = Array.from({ length: tasks }, (_, i) => {
    const id = ids(base + i)
    const r = { messageId: id, subject: names[i % 5]!, actor: "etl", pool: "fast", tenant: tenants[i % 8]!, correlationId: id, attempt: 1 }
    return {
      claim: [{ ...r, step: "started" as const, at: base + i }],
      outcome: [{ ...r, step: "succeeded" as const, at: base + i + 10, durationMs: 10 }]
    }
  })
  const t0 = performance.now()
  const c0 = cpuMs()
  for (let from = 0; from < tasks; from += 500) {
    const batch = records.slice(from, from + 500)
    db.transaction(() => batch.forEach((r) => rows.write(r.claim))).immediate()
    db.transaction(() => batch.forEach((r) => rows.write(r.outcome))).immediate()
  }
  const seconds = (performance.now() - t0) / 1000
  const cpuSeconds = (cpuMs() - c0) / 1000
  db.close()
  rmSync(path, { force: true })
  rmSync(`${path}-wal`, { force: true })
  rmSync(`${path}-shm`, { force: true })
  return {
    tasks,
    tasksPerSecond: Math.round(tasks / seconds),
    rowsPerSecond: Math.round((tasks * 2) / seconds),
    cpuMicrosPerTask: Number(((cpuSeconds * 1e6) / tasks).toFixed(1))
  }
}

// ---------------------------------------------------------------------------------------------
// measurements

// The three queries of the original design, verbatim.
const guideQueries = {
  tasksByStatus24h: `SELECT status, COUNT(*) 
FROM task_audit 
WHERE started_at > datetime('now', '-1 day')
GROUP BY status;`,
  avgDurationByTask: `SELECT task_name, AVG(duration_ms) as avg_ms
FROM task_audit
WHERE status='completed'
GROUP BY task_name
ORDER BY avg_ms DESC;`,
  failureRateByTask: `SELECT 
    task_name,
    COUNT(*) as total,
    SUM(CASE WHEN status='failed' THEN 1 ELSE 0 END) as failures,
    ROUND(100.0 * SUM(CASE WHEN status='failed' THEN 1 ELSE 0 END) / COUNT(*), 2) as failure_rate
FROM task_audit
GROUP BY task_name
HAVING total > 10
ORDER BY failure_rate DESC;`
}

/** Median of `runs` timings (ms) of `f`, after one untimed warm-up run. */
const timeIt = async (runs: number, f: () => unknown): Promise<number> => {
  await f()
  const times: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    await f()
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  return Number(percentile(times, 0.5).toFixed(2))
}

const timeOf = AuditRows.timeText

const fileBytes = (path: string) =>
  [path, `${path}-wal`].reduce((n, p) => n + (existsSync(p) ? statSync(p).size : 0), 0)

const breakdown = (path: string, tasks: number) => {
  const db = open(path)
  try {
    const rows = db.query<{ name: string; bytes: number }, []>(
      "SELECT name, sum(pgsize) AS bytes FROM dbstat WHERE name IN " +
        "(SELECT name FROM sqlite_schema WHERE tbl_name IN ('task_audit', 'audit_steps')) GROUP BY name ORDER BY bytes DESC"
    ).all()
    return Object.fromEntries(rows.map((r) => [r.name, Number((r.bytes / tasks).toFixed(1))]))
  } catch (e) {
    return { unavailable: String(e) }
  } finally {
    db.close()
  }
}

const main = async () => {
  const tasks = Number(arg("--tasks") ?? 10_000_000)
  const payload = (arg("--payload") ?? "off") as PayloadMode
  const json = flag("--json")
  if (!Number.isInteger(tasks) || tasks < 1000) throw new Error("--tasks must be an integer of at least 1000")
  if (!["off", "redacted", "full"].includes(payload)) throw new Error("--payload must be off, redacted or full")
  const given = arg("--file")
  const dir = mkdtempSync(join(tmpdir(), "msgsys-audit-scale-"))
  const path = given ?? join(dir, "audit.db")
  const keep = flag("--keep") || given !== undefined

  log(`audit-scale: ${tasks} tasks, payload ${payload}, file ${path}`)
  const write = pairRate(dir, Math.min(tasks, 100_000))
  log(`write path: ${write.tasksPerSecond} tasks/s (${write.rowsPerSecond} rows/s, ${write.cpuMicrosPerTask} µs CPU per task)`)

  // a file already holding the tasks is reused (its end of time is its newest task)
  let end = Date.now()
  let generated: Generated | undefined
  const existing = existsSync(path) ? (() => {
    const db = open(path)
    const n = db.query<{ n: number; last: number | null }, []>("SELECT count(*) AS n, max(last_at) AS last FROM task_audit").get()!
    db.close()
    return n
  })() : { n: 0, last: null }
  if (existing.n >= tasks * 0.9 && existing.last !== null) {
    log(`reusing ${path}: ${existing.n} tasks`)
    end = existing.last
  } else {
    generated = generate(path, tasks, end, payload)
    log(`generated in ${generated.seconds.toFixed(0)} s: ${Math.round(tasks / generated.seconds)} tasks/s`)
  }
  const sizeBefore = fileBytes(path)
  const present = existing.n >= tasks * 0.9 ? existing.n : tasks
  const perObject = breakdown(path, present)

  // reads, on a connection of their own (like a dashboard), then through AuditQueries
  const reader = open(path)
  const queries: Record<string, number> = {}
  for (const [name, sql] of Object.entries(guideQueries)) {
    queries[name] = await timeIt(3, () => reader.query(sql).all())
    log(`${name}: ${queries[name]} ms`)
  }
  // the oldest day is pruned (a reused file has lost its oldest days already)
  const first = reader.query<{ started_at: string }, []>("SELECT started_at FROM task_audit ORDER BY id LIMIT 1").get()
  const oldest = Date.parse(`${(first?.started_at ?? timeOf(end - SPAN_DAYS * DAY)).replace(" ", "T")}Z`)
  const sample = reader.query<{ task_id: string }, [number]>(
    "SELECT task_id FROM task_audit WHERE id % ? = 0 LIMIT 50"
  ).all(Math.max(1, Math.floor(tasks / 50))).map((r) => r.task_id)
  reader.close()

  const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* Database.make({ path })
    const run = <A, E>(e: Effect.Effect<A, E, Database.Database>) =>
      Effect.runPromise(e.pipe(Effect.provideService(Database.Database, db)))
    const stats = yield* Effect.promise(() => timeIt(3, () => run(AuditQueries.stats({ since: end - DAY }))))
    log(`audit stats --since 24h: ${stats} ms`)
    let i = 0
    const show = yield* Effect.promise(() => timeIt(20, () => run(AuditQueries.show(sample[i++ % sample.length]!))))
    log(`audit show: ${show} ms`)

    if (flag("--no-prune")) {
      const none: Array<number> = []
      const pruned = { archived: 0, deleted: 0, tasks: 0, freedBytes: 0 }
      return { stats, show, pruned, pruneSeconds: 0, writer: { commits: 0, lockWaits: none, commitTimes: none, baseline: none } }
    }
    // prune the oldest day while another process commits every 2 ms
    const child = Bun.spawn([process.execPath, import.meta.path, "--writer-child", path], {
      stdout: "pipe",
      stderr: "inherit"
    })
    yield* Effect.sleep("1500 millis")
    const pruneFrom = Date.now()
    const t0 = performance.now()
    const pruned = yield* AuditQueries.prune({ olderThan: oldest + DAY }).pipe(
      Effect.provideService(Database.Database, db)
    )
    const pruneSeconds = (performance.now() - t0) / 1000
    const pruneTo = Date.now()
    yield* Effect.sleep("500 millis")
    child.kill("SIGTERM")
    const out = yield* Effect.promise(() => new Response(child.stdout).text())
    yield* Effect.promise(() => child.exited)
    const all = (JSON.parse(out.trim().split("\n").pop() ?? "{}") as { times?: Array<[number, number, number]> }).times ?? []
    // the commits that began while the prune (and its vacuum) ran, and those before it
    const during = all.filter(([at]) => at >= pruneFrom && at <= pruneTo)
    const before = all.filter(([at]) => at < pruneFrom)
    const sorted = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)
    const writer = {
      commits: during.length,
      lockWaits: sorted(during.map(([, wait]) => wait)),
      commitTimes: sorted(during.map(([, , ms]) => ms)),
      baseline: sorted(before.map(([, , ms]) => ms))
    }
    log(`prune: ${pruned.tasks} tasks in ${pruneSeconds.toFixed(1)} s; other writer: ${during.length} commits meanwhile, ` +
      `longest lock wait ${percentile(writer.lockWaits, 1).toFixed(1)} ms, longest commit ${percentile(writer.commitTimes, 1).toFixed(1)} ms`)
    return { stats, show, pruned, pruneSeconds, writer }
  })))
  const sizeAfter = fileBytes(path)
  if (keep) {
    // the other process's tasks are not part of the data set: a reused file stays comparable
    const db = open(path)
    db.run("DELETE FROM task_audit WHERE task_name = 'bench.other'")
    db.run("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
  }

  const report = {
    tasks,
    steps: generated?.steps ?? null,
    payload,
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? "?", bun: Bun.version, node: process.version },
    write: {
      pair: write,
      generate: generated === undefined ? null : {
        seconds: Number(generated.seconds.toFixed(1)),
        tasksPerSecond: Math.round(tasks / generated.seconds),
        stepsPerSecond: Math.round(generated.steps / generated.seconds),
        cpuMicrosPerTask: Number(((generated.cpuSeconds * 1e6) / tasks).toFixed(1))
      }
    },
    queriesMs: { ...queries, statsSince24h: result.stats, show: result.show },
    size: {
      fileBytes: sizeBefore,
      tasksInFile: present,
      bytesPerTask: Number((sizeBefore / present).toFixed(1)),
      bytesPerTaskByObject: perObject
    },
    prune: {
      tasks: result.pruned.tasks,
      steps: result.pruned.deleted,
      seconds: Number(result.pruneSeconds.toFixed(2)),
      freedBytes: result.pruned.freedBytes,
      fileBefore: sizeBefore,
      fileAfter: sizeAfter,
      // the other process's transactions that began during the prune: how long each waited for the
      // lock (what the prune holds), and each one's whole time (lock wait, its own work, any
      // checkpoint it ran, and the machine's scheduling); baseline: its transactions before the prune
      otherWriter: {
        commits: result.writer.commits,
        maxLockWaitMs: Number(percentile(result.writer.lockWaits, 1).toFixed(1)),
        p99LockWaitMs: Number(percentile(result.writer.lockWaits, 0.99).toFixed(1)),
        lockWaitsOver50ms: result.writer.lockWaits.filter((ms) => ms > 50).length,
        maxCommitMs: Number(percentile(result.writer.commitTimes, 1).toFixed(1)),
        p99CommitMs: Number(percentile(result.writer.commitTimes, 0.99).toFixed(1)),
        medianCommitMs: Number(percentile(result.writer.commitTimes, 0.5).toFixed(2)),
        baselineMaxCommitMs: Number(percentile(result.writer.baseline, 1).toFixed(1))
      }
    },
    targets: {
      queriesUnder100ms: Object.fromEntries(
        Object.entries({ ...queries, statsSince24h: result.stats }).map(([k, v]) => [k, v < 100])
      ),
      showUnder10ms: result.show < 10,
      stallUnder50ms: percentile(result.writer.lockWaits, 1) < 50
    },
    file: keep ? path : null
  }

  if (json) {
    process.stdout.write(JSON.stringify(report) + "\n")
  } else {
    const row = (k: string, v: string, target = "") => console.log(`${k.padEnd(40)} ${v.padStart(16)}  ${target}`)
    const ok = (b: boolean) => (b ? "ok" : "MISSED")
    console.log(`\naudit at scale: ${tasks} tasks (${report.steps ?? "?"} steps), payload ${payload}, ${report.machine.cpus} cpus, bun ${Bun.version}\n`)
    row("write path (started+succeeded per task)", `${write.tasksPerSecond} tasks/s`, `${write.rowsPerSecond} rows/s, ${write.cpuMicrosPerTask} µs CPU/task`)
    if (report.write.generate) row("generation at scale", `${report.write.generate.tasksPerSecond} tasks/s`, `${report.write.generate.seconds} s`)
    for (const [k, v] of Object.entries(queries)) row(`guide: ${k}`, `${v} ms`, ok(v < 100))
    row("audit stats --since 24h", `${result.stats} ms`, ok(result.stats < 100))
    row("audit show TASK_ID", `${result.show} ms`, ok(result.show < 10))
    row("bytes per task", `${report.size.bytesPerTask} B`, JSON.stringify(perObject))
    row("prune oldest day", `${result.pruned.tasks} tasks`, `${report.prune.seconds} s, ${result.pruned.deleted} steps`)
    const w = report.prune.otherWriter
    row("other writer's longest lock wait", `${w.maxLockWaitMs} ms`, `${ok(report.targets.stallUnder50ms)} (p99 ${w.p99LockWaitMs} ms; ${w.lockWaitsOver50ms} of ${w.commits} commits waited > 50 ms)`)
    row("other writer's longest commit", `${w.maxCommitMs} ms`, `p99 ${w.p99CommitMs} ms, median ${w.medianCommitMs} ms; before the prune: longest ${w.baselineMaxCommitMs} ms`)
    row("file before / after prune + vacuum", `${(sizeBefore / 1e6).toFixed(0)} MB`, `${(sizeAfter / 1e6).toFixed(0)} MB (freed ${(result.pruned.freedBytes / 1e6).toFixed(0)} MB)`)
    if (keep) console.log(`\nfile kept: ${path}`)
  }
  // the temp dir holds the generated file only when no --file was given
  if (!keep || given !== undefined) rmSync(dir, { recursive: true, force: true })
}

if (flag("--writer-child")) await writerChild(arg("--writer-child")!)
else await main()
