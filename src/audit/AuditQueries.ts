/**
 * Read and maintenance queries over the audit log: statistics, one message's history, a tail to
 * follow, and pruning with an archive (for the CLI, the dashboard and a retention loop).
 * @since 0.1.0
 */
import { Clock, Data, Duration, Effect } from "effect"
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from "node:fs"
import { dirname } from "node:path"
import type { AuditStep } from "./AuditLog.ts"
import { Database, type DatabaseError } from "../sqlite/Database.ts"

/** One stored audit row. @category models @since 0.1.0 */
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
  readonly step: AuditStep
  readonly at: number
  readonly duration_ms: number | null
  readonly error: string | null
  readonly delay_ms: number | null
  readonly payload: string | null
  readonly kind: "task" | "event"
}

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
  step: r.step,
  at: r.at,
  durationMs: r.duration_ms,
  error: r.error,
  delayMs: r.delay_ms,
  payload: parsePayload(r.payload),
  kind: r.kind
})

/** Audit statistics since a point in time. @category models @since 0.1.0 */
export interface Stats {
  readonly since: number
  /** Tasks by `task_audit` status (pending, started, completed, failed, retrying, cancelled, skipped). */
  readonly byStatus: ReadonlyArray<{ readonly status: string; readonly count: number }>
  /** Successful runs by task: count, mean and 95th percentile (nearest rank) duration. */
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

const isoText = "strftime('%Y-%m-%d %H:%M:%f', ? / 1000.0, 'unixepoch')"

/**
 * Counts by status, duration mean and p95 by task, and failure rate by task, over the tasks
 * that started (or were enqueued) at or after `since` (epoch ms).
 * @category queries @since 0.1.0
 */
export const stats = Effect.fn("AuditQueries.stats")(function*(options: { readonly since: number }) {
  const db = yield* Database
  return yield* db.use("reading audit statistics", (h): Stats => {
    const byStatus = h.query<{ status: string; count: number }, [number]>(
      `SELECT status, count(*) AS count FROM task_audit WHERE started_at >= ${isoText} GROUP BY status ORDER BY count DESC`
    ).all(options.since)
    const runs = h.query<{ subject: string; duration_ms: number }, [number]>(
      `SELECT subject, duration_ms FROM audit_log
       WHERE step = 'succeeded' AND at >= ? AND duration_ms IS NOT NULL ORDER BY subject, duration_ms`
    ).all(options.since)
    const grouped = new Map<string, Array<number>>()
    for (const r of runs) {
      const list = grouped.get(r.subject) ?? []
      list.push(r.duration_ms)
      grouped.set(r.subject, list)
    }
    const durations = [...grouped].map(([task, ms]) => ({
      task,
      runs: ms.length,
      avgMs: ms.reduce((a, b) => a + b, 0) / ms.length,
      p95Ms: ms[Math.max(0, Math.ceil(0.95 * ms.length) - 1)]!
    }))
    const failures = h.query<{ task: string; total: number; failed: number }, [number]>(
      `SELECT task_name AS task, count(*) AS total, sum(status = 'failed') AS failed
       FROM task_audit WHERE started_at >= ${isoText} GROUP BY task_name`
    ).all(options.since).map((r) => ({ ...r, rate: r.total === 0 ? 0 : r.failed / r.total }))
      .sort((a, b) => b.rate - a.rate || a.task.localeCompare(b.task))
    return { since: options.since, byStatus, durations, failures }
  })
})

/**
 * Every step of one message, in order.
 * @category queries @since 0.1.0
 */
export const show = Effect.fn("AuditQueries.show")(function*(messageId: string) {
  const db = yield* Database
  return yield* db.use("reading a message's audit trail", (h) =>
    h.query<RawRow, [string]>("SELECT * FROM audit_log WHERE message_id = ? ORDER BY at, id").all(messageId).map(fromRaw))
})

/**
 * Rows after `afterId` (default 0), oldest first, at most `limit` (default 100): call again with
 * the last id to follow the log.
 * @category queries @since 0.1.0
 */
export const tail = Effect.fn("AuditQueries.tail")(function*(options: {
  readonly afterId?: number | undefined
  readonly limit?: number | undefined
} = {}) {
  const db = yield* Database
  return yield* db.use("tailing the audit log", (h) =>
    h.query<RawRow, [number, number]>("SELECT * FROM audit_log WHERE id > ? ORDER BY id LIMIT ?")
      .all(options.afterId ?? 0, Math.max(1, options.limit ?? 100))
      .map(fromRaw))
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
  /** Deletes rows with `at` before this (epoch ms). */
  readonly olderThan: number
  /** A `.jsonl` file: each row is appended as one JSON line and fsynced before it is deleted. */
  readonly archive?: string | undefined
  /** Rows per batch (one archive append + one delete transaction). Default 5000. */
  readonly batchSize?: number | undefined
  /** Called after each batch with rows deleted so far and the total found at the start. */
  readonly onProgress?: ((done: number, total: number) => void) | undefined
  /**
   * Space reclaim after deleting: `"incremental"` (default; frees pages at once on files created
   * by msgsys, which use incremental auto-vacuum), `"full"` (`VACUUM`: rewrites the file, slow,
   * blocks writers) or `"none"`.
   */
  readonly vacuum?: "incremental" | "full" | "none" | undefined
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
 * Archives (optionally) and deletes audit rows older than `olderThan`, in batches: each batch is
 * appended to the archive and fsynced, THEN exactly those ids are deleted, so the archive holds
 * every deleted row. Then truncates the WAL and reclaims space.
 * @category maintenance @since 0.1.0
 */
export const prune = Effect.fn("AuditQueries.prune")(function*(options: PruneOptions) {
  const db = yield* Database
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 5000))
  const total = yield* db.use("counting rows to prune", (h) =>
    h.query<{ n: number }, [number]>("SELECT count(*) AS n FROM audit_log WHERE at < ?").get(options.olderThan)?.n ?? 0)
  let archived = 0
  let deleted = 0
  while (true) {
    const rows = yield* db.use("reading rows to prune", (h) =>
      h.query<RawRow, [number, number]>("SELECT * FROM audit_log WHERE at < ? ORDER BY id LIMIT ?").all(
        options.olderThan,
        batchSize
      ))
    if (rows.length === 0) break
    if (options.archive !== undefined) {
      const path = options.archive
      yield* Effect.try({
        try: () => appendLines(path, rows.map((r) => JSON.stringify(fromRaw(r)))),
        catch: (cause) => new ArchiveError({ path, cause })
      })
      archived += rows.length
    }
    const ids = JSON.stringify(rows.map((r) => r.id))
    deleted += yield* db.write("deleting pruned rows", (h) =>
      h.query<never, [string]>("DELETE FROM audit_log WHERE id IN (SELECT value FROM json_each(?))").run(ids).changes)
    options.onProgress?.(deleted, Math.max(total, deleted))
    // let the group-commit writer and other fibers run between batches
    yield* Effect.yieldNow
  }
  const vacuum = options.vacuum ?? "incremental"
  yield* db.use("reclaiming space", (h) => {
    h.run("PRAGMA wal_checkpoint(TRUNCATE)")
    if (vacuum === "incremental") h.run("PRAGMA incremental_vacuum")
    if (vacuum === "full") h.run("VACUUM")
  })
  return { archived, deleted }
})

/**
 * Prunes rows older than `retention` now and then every `every`, forever; failures are logged and
 * the loop goes on. Fork it for automatic retention.
 * @category maintenance @since 0.1.0
 */
export const pruneLoop = (
  retention: Duration.Input,
  every: Duration.Input,
  options: Omit<PruneOptions, "olderThan"> = {}
): Effect.Effect<never, never, Database> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const result = yield* prune({ ...options, olderThan: now - Duration.toMillis(Duration.fromInputUnsafe(retention)) })
    if (result.deleted > 0) yield* Effect.logInfo(`audit prune: deleted ${result.deleted}, archived ${result.archived}`)
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
  /** `failed` (a run failed) or `dead_lettered`. */
  readonly step: AuditStep
  readonly at: number
  readonly error: string | null
}

/**
 * The newest failures (failed runs and dead letters) at or after `since` (epoch ms; default the
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
      `SELECT * FROM audit_log WHERE at >= ? AND step IN ('failed', 'dead_lettered') ORDER BY at DESC, id DESC LIMIT ?`
    ).all(since, Math.max(1, options.limit ?? 20)).map((r): Failure => ({
      taskId: r.message_id,
      subject: r.subject,
      actor: r.actor,
      tenant: r.tenant,
      attempt: r.attempt,
      step: r.step,
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
  add("status", options.status)
  params.push(Math.min(500, Math.max(1, options.limit ?? 50)))
  return yield* db.use("searching the audit log", (h) =>
    h.query<{
      task_id: string
      task_name: string
      actor: string
      tenant: string
      status: string
      started_at: string
      ended_at: string | null
      duration_ms: number | null
      error: string | null
      retry_count: number | null
    }, Array<string | number>>(
      `SELECT task_id, task_name, actor, tenant, status, started_at, ended_at, duration_ms, error, retry_count
       FROM task_audit ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY started_at DESC, task_id DESC LIMIT ?`
    ).all(...params).map((r): TaskSummary => ({
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
    })))
})
