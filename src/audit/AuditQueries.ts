/**
 * Read and maintenance queries over the audit tables: statistics, one task's history, a tail to
 * follow, pruning with an archive, and giving the space back (for the CLI, the dashboard and a
 * retention loop). Every query goes through an index: statistics read the tasks of the window
 * from `task_audit`'s indexes, a task's history is found through its task row, and pruning
 * deletes whole tasks in short transactions so the writers sharing the file keep committing.
 * @since 0.1.0
 */
import { Clock, Data, Duration, Effect } from "effect"
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, writeSync } from "node:fs"
import { dirname } from "node:path"
import type { AuditStep } from "./AuditLog.ts"
import { statusOf, stepCodes, timeText } from "./AuditRows.ts"
import { Database, type DatabaseError, type Handle } from "../sqlite/Database.ts"

/** One stored audit step, with its task's columns (a row of the `audit_log` view). @category models @since 0.1.0 */
export interface AuditRow {
  readonly id: number
  readonly messageId: string
  readonly subject: string
  readonly actor: string
  readonly pool: string
  readonly tenant: string
  readonly correlationId: string
  readonly attempt: number
  readonly step: AuditStep
  readonly at: number
  readonly durationMs: number | null
  readonly error: string | null
  readonly delayMs: number | null
  /** The stored payload, parsed; null when none was stored. */
  readonly payload: unknown
  readonly kind: "task" | "event"
}

interface RawRow {
  readonly id: number
  readonly message_id: string
  readonly subject: string
  readonly actor: string
  readonly pool: string
  readonly tenant: string
  readonly correlation_id: string
  readonly attempt: number
  readonly step: number
  readonly at: number
  readonly duration_ms: number | null
  readonly error: string | null
  readonly delay_ms: number | null
  readonly payload: string | null
  readonly kind: "task" | "event"
}

const stepNames = new Map<number, AuditStep>(
  Object.entries(stepCodes).map(([name, code]) => [code, name as AuditStep])
)

const parsePayload = (text: string | null): unknown => {
  if (text === null) return null
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const fromRaw = (r: RawRow): AuditRow => ({
  id: r.id,
  messageId: r.message_id,
  subject: r.subject,
  actor: r.actor,
  pool: r.pool,
  tenant: r.tenant,
  correlationId: r.correlation_id,
  attempt: r.attempt,
  step: stepNames.get(r.step) ?? (String(r.step) as AuditStep),
  at: r.at,
  durationMs: r.duration_ms,
  error: r.error,
  delayMs: r.delay_ms,
  payload: parsePayload(r.payload),
  kind: r.kind
})

// The audit_log view's columns with the step still a code. CROSS JOIN keeps the join order as
// written: `from` says which side the index search starts on.
const stepColumns = `s.id, t.task_id AS message_id, t.task_name AS subject, t.actor, t.pool, t.tenant,
  COALESCE(t.correlation_id, t.task_id) AS correlation_id, s.attempt, s.step, s.at, s.duration_ms, s.error,
  s.delay_ms, CASE WHEN s.payload_in_args THEN t.args ELSE s.payload END AS payload, t.kind`
const byTask = `SELECT ${stepColumns} FROM task_audit t CROSS JOIN audit_steps s ON s.task = t.id`
const byStep = `SELECT ${stepColumns} FROM audit_steps s CROSS JOIN task_audit t ON t.id = s.task`
// every status word task_audit can hold, once
const statusWords = [...new Set(Object.values(statusOf))]
const failureCodes = [stepCodes.failed, stepCodes.dead_lettered, stepCodes.exhausted].join(", ")

/** Audit statistics since a point in time. @category models @since 0.1.0 */
export interface Stats {
  readonly since: number
  /** Tasks by `task_audit` status (pending, started, completed, failed, retrying, cancelled, skipped). */
  readonly byStatus: ReadonlyArray<{ readonly status: string; readonly count: number }>
  /**
   * Completed tasks by name: count, mean duration, and the 95th percentile (nearest rank) of the
   * newest {@link percentileSample} runs (all of them when there are fewer).
   */
  readonly durations: ReadonlyArray<{
    readonly task: string
    readonly runs: number
    readonly avgMs: number
    readonly p95Ms: number
  }>
  /** Tasks by name: how many, how many ended failed, and that share (0..1). Highest rate first. */
  readonly failures: ReadonlyArray<{
    readonly task: string
    readonly total: number
    readonly failed: number
    readonly rate: number
  }>
}

/**
 * How many of a task's newest runs `stats` reads for its p95: enough for a stable percentile, few
 * enough that a busy day is read in milliseconds.
 * @category constants @since 0.1.0
 */
export const percentileSample = 10_000

/**
 * Counts by status, duration mean and p95 by task, and failure rate by task, over the tasks that
 * started (or were first recorded) at or after `since` (epoch ms). One pass over the window's
 * entries of the (task_name, status, started_at, duration_ms) index, then the newest runs of
 * each task for its p95.
 * @category queries @since 0.1.0
 */
export const stats = Effect.fn("AuditQueries.stats")(function*(options: { readonly since: number }) {
  const db = yield* Database
  return yield* db.use("reading audit statistics", (h): Stats => {
    const since = timeText(options.since)
    const groups = h.query<{ task: string; status: string; n: number; runs: number; avg_ms: number | null }, [string]>(
      `SELECT task_name AS task, status, count(*) AS n, count(duration_ms) AS runs, avg(duration_ms) AS avg_ms
       FROM task_audit WHERE started_at >= ? GROUP BY task_name, status`
    ).all(since)
    const statusCounts = new Map<string, number>()
    const totals = new Map<string, { total: number; failed: number }>()
    for (const g of groups) {
      statusCounts.set(g.status, (statusCounts.get(g.status) ?? 0) + g.n)
      const t = totals.get(g.task) ?? { total: 0, failed: 0 }
      totals.set(g.task, { total: t.total + g.n, failed: t.failed + (g.status === "failed" ? g.n : 0) })
    }
    // the p95 of the newest runs, sorted by SQLite: no row per run crosses into JavaScript
    const nearestRank = h.query<{ p95: number }, [string, string, number, number]>(
      `SELECT duration_ms AS p95 FROM (
         SELECT duration_ms FROM task_audit
         WHERE task_name = ? AND status = 'completed' AND started_at >= ? AND duration_ms IS NOT NULL
         ORDER BY started_at DESC LIMIT ?)
       ORDER BY duration_ms LIMIT 1 OFFSET ?`
    )
    const durations = groups
      .filter((g) => g.status === "completed" && g.runs > 0)
      .map((g) => {
        const sampled = Math.min(g.runs, percentileSample)
        const rank = Math.max(0, Math.ceil(0.95 * sampled) - 1)
        return {
          task: g.task,
          runs: g.runs,
          avgMs: g.avg_ms ?? 0,
          p95Ms: nearestRank.get(g.task, since, percentileSample, rank)?.p95 ?? 0
        }
      })
      .sort((a, b) => a.task.localeCompare(b.task))
    const failures = [...totals].map(([task, t]) => ({ task, ...t, rate: t.total === 0 ? 0 : t.failed / t.total }))
      .sort((a, b) => b.rate - a.rate || a.task.localeCompare(b.task))
    const byStatus = [...statusCounts].map(([status, count]) => ({ status, count }))
      .sort((a, b) => b.count - a.count || a.status.localeCompare(b.status))
    return { since: options.since, byStatus, durations, failures }
  })
})

/**
 * Every step of one task, in order, found through its task row.
 * @category queries @since 0.1.0
 */
export const show = Effect.fn("AuditQueries.show")(function*(messageId: string) {
  const db = yield* Database
  return yield* db.use("reading a task's audit trail", (h) =>
    h.query<RawRow, [string]>(`${byTask} WHERE t.task_id = ? ORDER BY s.at, s.id`).all(messageId).map(fromRaw))
})

/**
 * Steps after `afterId` (default 0), oldest first, at most `limit` (default 100): call again with
 * the last id to follow the log.
 * @category queries @since 0.1.0
 */
export const tail = Effect.fn("AuditQueries.tail")(function*(options: {
  readonly afterId?: number | undefined
  readonly limit?: number | undefined
} = {}) {
  const db = yield* Database
  return yield* db.use("tailing the audit log", (h) =>
    h.query<RawRow, [number, number]>(`${byStep} WHERE s.id > ? ORDER BY s.id LIMIT ?`)
      .all(options.afterId ?? 0, Math.max(1, options.limit ?? 100))
      .map(fromRaw))
})

/**
 * The id of the newest step (0 when there is none): where a tail of the last rows starts.
 * @category queries @since 0.1.0
 */
export const latestId = Effect.fn("AuditQueries.latestId")(function*() {
  const db = yield* Database
  return yield* db.use("finding the newest audit step", (h) =>
    h.query<{ m: number }, []>("SELECT coalesce(max(id), 0) AS m FROM audit_steps").get()?.m ?? 0)
})

/** The archive file could not be written; nothing of that batch was deleted. @category errors @since 0.1.0 */
export class ArchiveError extends Data.TaggedError("ArchiveError")<{
  readonly path: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `could not append to the audit archive ${this.path}: ${why}. Nothing that was not archived was deleted; ` +
      "make sure the directory is writable and the disk has space, then prune again."
  }
}

/** @category models @since 0.1.0 */
export interface PruneOptions {
  /** Deletes the tasks that started (or were first recorded) before this (epoch ms), with all their steps. */
  readonly olderThan: number
  /** A `.jsonl` file: each step of a batch is appended as one JSON line and fsynced before the batch is deleted. */
  readonly archive?: string | undefined
  /**
   * Most tasks per batch (one archive append and one delete transaction). Default 1000. Batches
   * start at 50 tasks and grow while a delete takes well under `batchMs`; one that takes longer
   * halves the next, so the write lock is never held for long.
   */
  readonly batchSize?: number | undefined
  /** How long one delete transaction should hold the write lock at most. Default 5 ms. */
  readonly batchMs?: number | undefined
  /** Called after each batch with tasks deleted so far and the total found at the start. */
  readonly onProgress?: ((done: number, total: number) => void) | undefined
  /**
   * Space reclaim after deleting: `"incremental"` (default; {@link vacuum}: frees pages in short
   * transactions on files created by msgsys, which use incremental auto-vacuum), `"full"`
   * (`VACUUM`: rewrites the file; slow, and blocks every writer meanwhile) or `"none"`.
   */
  readonly vacuum?: "incremental" | "full" | "none" | undefined
}

/** @category models @since 0.1.0 */
export interface PruneResult {
  /** Steps appended to the archive. */
  readonly archived: number
  /** Steps deleted (rows of the `audit_log` view). */
  readonly deleted: number
  /** Tasks deleted (rows of `task_audit`). */
  readonly tasks: number
  /** Bytes the file gave back to the file system. */
  readonly freedBytes: number
}

const appendLines = (path: string, lines: ReadonlyArray<string>): void => {
  mkdirSync(dirname(path), { recursive: true })
  const fd = openSync(path, "a")
  try {
    writeSync(fd, lines.join("\n") + "\n")
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Between two batches the file is left free for at least twice the last batch's time (10 ms at
 * least): another process's writer retries a locked file on a timer (SQLite's busy handler sleeps
 * 1, 2, 5, 10, 15, 20, 25 ms...), and back-to-back batches would keep missing it. On the real
 * clock, so a TestClock does not hold a prune up.
 */
const breather = (lastMs: number) =>
  Effect.sleep(Duration.millis(Math.max(10, 2 * lastMs))).pipe(
    Effect.provideService(Clock.Clock, Clock.Clock.defaultValue())
  )

// The pages a batch changed are copied from the WAL into the file here, a batch at a time (never
// waiting for a lock), rather than by whichever writer's commit next crosses the WAL's
// auto-checkpoint size: otherwise a worker's commit would pay for the prune's pages.
const checkpoint = (db: Database["Service"]) =>
  db.use("checkpointing the WAL", (h) => h.run("PRAGMA wal_checkpoint(PASSIVE)"))

/** Next batch size: halve after a slow batch, grow again after quick ones, within [min, max]. */
const adapt = (size: number, ms: number, targetMs: number, min: number, max: number): number =>
  ms > targetMs ? Math.max(min, Math.floor(size / 2)) : ms < targetMs / 3 ? Math.min(max, Math.ceil(size * 1.5)) : size

/**
 * Archives (optionally) and deletes the tasks that started before `olderThan` with their steps,
 * in batches: each batch's steps are appended to the archive and fsynced, THEN exactly those tasks
 * are deleted in one short writer transaction (a task that got a new step meanwhile waits for the
 * next batch), so the archive holds every deleted step. Then gives the space back.
 * @category maintenance @since 0.1.0
 */
export const prune = Effect.fn("AuditQueries.prune")(function*(options: PruneOptions) {
  const db = yield* Database
  const cutoff = timeText(options.olderThan)
  const maxBatch = Math.max(1, Math.floor(options.batchSize ?? 1000))
  const targetMs = options.batchMs ?? 5
  // counted only for a progress report: counting a large backlog holds the event loop for a while
  const total = options.onProgress === undefined ? 0 : yield* db.use("counting tasks to prune", (h) =>
    h.query<{ n: number }, [string]>("SELECT count(*) AS n FROM task_audit WHERE started_at < ?").get(cutoff)?.n ?? 0)
  // start small: the first batch's time tells how many fit in `batchMs` on this file and machine
  let batch = Math.min(maxBatch, 50)
  let archived = 0
  let deleted = 0
  let tasks = 0
  while (true) {
    const asked = batch
    const ids = yield* db.use("reading tasks to prune", (h) =>
      h.query<{ id: number }, [string, number]>("SELECT id FROM task_audit WHERE started_at < ? LIMIT ?")
        .all(cutoff, batch).map((r) => r.id))
    if (ids.length === 0) break
    const idList = JSON.stringify(ids)
    // with an archive, a task is deleted only if no step was added after the ones archived
    let lastArchived = Number.MAX_SAFE_INTEGER
    if (options.archive !== undefined) {
      const path = options.archive
      const rows = yield* db.use("reading steps to archive", (h) =>
        h.query<RawRow, [string]>(`${byStep} WHERE s.task IN (SELECT value FROM json_each(?)) ORDER BY s.id`).all(idList))
      if (rows.length > 0) {
        yield* Effect.try({
          try: () => appendLines(path, rows.map((r) => JSON.stringify(fromRaw(r)))),
          catch: (cause) => new ArchiveError({ path, cause })
        })
      }
      archived += rows.length
      lastArchived = rows.reduce((m, r) => Math.max(m, r.id), 0)
    }
    const submitted = performance.now()
    const done = yield* db.write("deleting pruned tasks", (h) => {
      const started = performance.now()
      const steps = h.query<{ n: number }, [string, number]>(
        `SELECT count(*) AS n FROM audit_steps WHERE task IN (SELECT value FROM json_each(?1))
         AND NOT EXISTS (SELECT 1 FROM audit_steps x WHERE x.task = audit_steps.task AND x.id > ?2)`
      ).get(idList, lastArchived)?.n ?? 0
      // the trigger task_audit_delete_steps deletes each task's steps with it
      const removed = h.query<never, [string, number]>(
        `DELETE FROM task_audit WHERE id IN (SELECT value FROM json_each(?1))
         AND NOT EXISTS (SELECT 1 FROM audit_steps x WHERE x.task = task_audit.id AND x.id > ?2)`
      ).run(idList, lastArchived).changes
      return { steps, removed, ms: performance.now() - started }
    })
    // the lock is held from the delete to the commit: time both
    const held = Math.max(done.ms, performance.now() - submitted)
    deleted += done.steps
    tasks += done.removed
    batch = adapt(batch, held, targetMs, 10, maxBatch)
    options.onProgress?.(tasks, Math.max(total, tasks))
    // a short batch was the last one (no wait for nothing); one that deleted nothing (each task got
    // a new step while it was archived) leaves them for the next prune
    if (done.removed === 0 || ids.length < asked) break
    yield* checkpoint(db)
    yield* breather(held)
  }
  const mode = options.vacuum ?? "incremental"
  const freedBytes = mode === "none" ? 0 : yield* vacuum({ full: mode === "full", batchMs: targetMs })
  return { archived, deleted, tasks, freedBytes } satisfies PruneResult
})

// An incremental vacuum step moves the file's last pages into free slots, under the write lock;
// reading them first (outside it) puts them in the OS cache, so the step does not wait for the disk.
const warmTail = (h: Handle, path: string, pages: number) => {
  if (path === ":memory:" || path === "") return
  const pageSize = h.query<{ page_size: number }, []>("PRAGMA page_size").get()?.page_size ?? 4096
  const count = h.query<{ page_count: number }, []>("PRAGMA page_count").get()?.page_count ?? 0
  const span = Math.min(count, pages * 2) * pageSize
  if (span === 0) return
  const fd = openSync(path, "r")
  try {
    readSync(fd, Buffer.allocUnsafe(span), 0, span, count * pageSize - span)
  } finally {
    closeSync(fd)
  }
}

/** @category models @since 0.1.0 */
export interface VacuumOptions {
  /**
   * `VACUUM`: rewrites the whole file, reclaiming space on any file (also one without incremental
   * auto-vacuum) but blocking every writer until it is done. Default false.
   */
  readonly full?: boolean | undefined
  /** How long one incremental step should hold the write lock at most. Default 5 ms. */
  readonly batchMs?: number | undefined
  /** Called after each step with the free pages left. */
  readonly onProgress?: ((freePagesLeft: number) => void) | undefined
}

/**
 * Gives the free pages of the file back to the file system: by default incrementally (files
 * created by msgsys use `auto_vacuum = INCREMENTAL`), a few pages per short writer transaction so
 * workers sharing the file keep committing, then a WAL checkpoint that truncates the file.
 * Returns the bytes the file shrank by.
 * @category maintenance @since 0.1.0
 */
export const vacuum = Effect.fn("AuditQueries.vacuum")(function*(options: VacuumOptions = {}) {
  const db = yield* Database
  const targetMs = options.batchMs ?? 5
  const pages = (h: Handle) => ({
    count: h.query<{ page_count: number }, []>("PRAGMA page_count").get()?.page_count ?? 0,
    free: h.query<{ freelist_count: number }, []>("PRAGMA freelist_count").get()?.freelist_count ?? 0,
    size: h.query<{ page_size: number }, []>("PRAGMA page_size").get()?.page_size ?? 4096,
    incremental: h.query<{ auto_vacuum: number }, []>("PRAGMA auto_vacuum").get()?.auto_vacuum === 2
  })
  const before = yield* db.use("reading the file's pages", pages)
  if (options.full) {
    yield* db.use("vacuuming the file", (h) => h.run("VACUUM"))
  } else if (before.incremental) {
    let step = 64
    while (true) {
      yield* db.use("reading the pages to move", (h) => warmTail(h, db.path, step))
      const submitted = performance.now()
      const done = yield* db.write("reclaiming free pages", (h) => {
        const started = performance.now()
        h.query(`PRAGMA incremental_vacuum(${step})`).all()
        return {
          left: h.query<{ freelist_count: number }, []>("PRAGMA freelist_count").get()?.freelist_count ?? 0,
          ms: performance.now() - started
        }
      })
      options.onProgress?.(done.left)
      if (done.left === 0) break
      const held = Math.max(done.ms, performance.now() - submitted)
      step = adapt(step, held, targetMs, 4, 4096)
      yield* checkpoint(db)
      yield* breather(held)
    }
  }
  // the file shrinks when the WAL is checkpointed
  yield* db.use("checkpointing the WAL", (h) => h.run("PRAGMA wal_checkpoint(PASSIVE)"))
  const after = yield* db.use("reading the file's pages", pages)
  return Math.max(0, before.count - after.count) * before.size
})

/**
 * Prunes tasks older than `retention` now and then every `every`, forever; failures are logged
 * and the loop goes on. Fork it for automatic retention. No vacuum unless `options.vacuum` says
 * so: SQLite reuses the freed pages for new rows, so the file stops growing.
 * @category maintenance @since 0.1.0
 */
export const pruneLoop = (
  retention: Duration.Input,
  every: Duration.Input,
  options: Omit<PruneOptions, "olderThan"> = {}
): Effect.Effect<never, never, Database> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const result = yield* prune({
      vacuum: "none",
      ...options,
      olderThan: now - Duration.toMillis(Duration.fromInputUnsafe(retention))
    })
    if (result.tasks > 0) {
      yield* Effect.logInfo(
        `audit prune: deleted ${result.tasks} task(s) with ${result.deleted} step(s), archived ${result.archived}`
      )
    }
  }).pipe(
    Effect.catch((e: DatabaseError | ArchiveError) => Effect.logWarning(`audit prune failed: ${e.message}`)),
    Effect.andThen(Effect.sleep(every)),
    Effect.forever
  )

// ---------------------------------------------------------------------------------------------
// for people looking at a running system (msgsys status, the dashboard)

/** One failed run or dead letter, as the audit recorded it. @category models @since 0.1.0 */
export interface Failure {
  readonly taskId: string
  readonly subject: string
  readonly actor: string
  readonly tenant: string
  readonly attempt: number
  /** `failed` (a run failed), `dead_lettered` or `exhausted`. */
  readonly step: AuditStep
  readonly at: number
  readonly error: string | null
}

/**
 * The newest failures (failed runs, dead letters, exhausted letters) at or after `since` (epoch ms; default the
 * last 24 hours), newest first, at most `limit` (default 20).
 * @category queries @since 0.1.0
 */
export const failures = Effect.fn("AuditQueries.failures")(function*(options: {
  readonly since?: number | undefined
  readonly limit?: number | undefined
} = {}) {
  const db = yield* Database
  const since = options.since ?? (yield* Clock.currentTimeMillis) - Duration.toMillis(Duration.days(1))
  return yield* db.use("reading the latest failures", (h) =>
    h.query<RawRow, [number, number]>(
      // the partial index audit_steps_failures holds exactly these steps, by time
      `${byStep} WHERE s.step IN (${failureCodes}) AND s.at >= ? ORDER BY s.at DESC, s.id DESC LIMIT ?`
    ).all(since, Math.max(1, options.limit ?? 20)).map((r): Failure => ({
      taskId: r.message_id,
      subject: r.subject,
      actor: r.actor,
      tenant: r.tenant,
      attempt: r.attempt,
      step: stepNames.get(r.step) ?? (String(r.step) as AuditStep),
      at: r.at,
      error: r.error
    })))
})

/** One task as `task_audit` sums it up. @category models @since 0.1.0 */
export interface TaskSummary {
  readonly taskId: string
  readonly subject: string
  readonly actor: string
  readonly tenant: string
  /** pending, started, completed, failed, retrying, cancelled or skipped. */
  readonly status: string
  /** UTC, `YYYY-MM-DD HH:MM:SS.SSS`. */
  readonly startedAt: string
  readonly endedAt: string | null
  readonly durationMs: number | null
  readonly error: string | null
  readonly retries: number
}

/** @category models @since 0.1.0 */
export interface SearchOptions {
  /** The exact task id. */
  readonly taskId?: string | undefined
  /** The exact subject (task name). */
  readonly subject?: string | undefined
  readonly tenant?: string | undefined
  /** A `task_audit` status: pending, started, completed, failed, retrying, cancelled, skipped. */
  readonly status?: string | undefined
  /** Default 50, at most 500. */
  readonly limit?: number | undefined
}

/**
 * Tasks matching every filter given, newest first (no filter: the newest tasks).
 * @category queries @since 0.1.0
 */
export const search = Effect.fn("AuditQueries.search")(function*(options: SearchOptions = {}) {
  const db = yield* Database
  const limit = Math.min(500, Math.max(1, options.limit ?? 50))
  const filters = (status: string | undefined) => {
    const where: Array<string> = []
    const params: Array<string | number> = []
    const add = (column: string, value: string | undefined) => {
      if (value === undefined || value === "") return
      where.push(`${column} = ?`)
      params.push(value)
    }
    add("task_id", options.taskId)
    add("task_name", options.subject)
    add("tenant", options.tenant)
    add("status", status)
    return { where, params }
  }
  const status = options.status === "" ? undefined : options.status
  const anyFilter = options.taskId || options.subject || options.tenant || status
  // Each shape reads an index in order and stops at the limit (never sorts a whole table): newest
  // rows by rowid; by status or tenant through their (…, started_at) indexes; a subject without a
  // status as one ordered read per status, merged here.
  const shapes = !anyFilter
    ? [{ ...filters(undefined), order: "id DESC" }]
    : options.subject && !status && !options.taskId
    ? statusWords.map((s) => ({ ...filters(s), order: "started_at DESC" }))
    : [{ ...filters(status), order: "started_at DESC, id DESC" }]
  return yield* db.use("searching the audit log", (h) => {
    const rows = shapes.flatMap(({ order, params, where }) =>
      h.query<SearchRow, Array<string | number>>(
        `SELECT task_id, task_name, actor, tenant, status, started_at, ended_at, duration_ms, error, retry_count
         FROM task_audit ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY ${order} LIMIT ?`
      ).all(...params, limit)
    )
    if (shapes.length > 1) rows.sort((x, y) => (x.started_at < y.started_at ? 1 : x.started_at > y.started_at ? -1 : 0))
    return rows.slice(0, limit).map((r): TaskSummary => ({
      taskId: r.task_id,
      subject: r.task_name,
      actor: r.actor,
      tenant: r.tenant,
      status: r.status,
      startedAt: r.started_at,
      endedAt: r.ended_at,
      durationMs: r.duration_ms,
      error: r.error,
      retries: r.retry_count ?? 0
    }))
  })
})

interface SearchRow {
  readonly task_id: string
  readonly task_name: string
  readonly actor: string
  readonly tenant: string
  readonly status: string
  readonly started_at: string
  readonly ended_at: string | null
  readonly duration_ms: number | null
  readonly error: string | null
  readonly retry_count: number | null
}

