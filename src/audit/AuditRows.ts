/**
 * The audit rows of the SQLite file, written: each record becomes a compact step row in
 * `audit_steps`, and its message's one `task_audit` row is upserted in the same transaction, so
 * the original design's queries read one indexed row per task. Synchronous, prepared statements
 * only: the hot path calls `write` inside the SQLite writer's transaction (the claim and the
 * outcome of every task).
 *
 * The upsert merges steps in any order (a client's "enqueued" may commit after the worker's
 * "started"): the status follows the latest step by time (a "skipped_duplicate" only when there is
 * nothing else), and a "succeeded" anywhere makes the task "completed". Those are the rules of the
 * `task_audit` view this table replaced (migration 5), with two shortcuts that cost no index
 * write: a task's name and tenant are those of its first write (they never change in practice),
 * and only a write with an "enqueued" or "started" step moves `started_at` earlier.
 * @since 0.1.0
 */
import type { AuditRecord, AuditStep, PayloadMode } from "./AuditLog.ts"
import { fieldSet, payloadText } from "./internal/redact.ts"
import type { Handle } from "../sqlite/Database.ts"

/**
 * The code each step is stored under in `audit_steps.step` (fixed by migrations 5 and 12; never renumber).
 * @category constants @since 0.1.0
 */
export const stepCodes: Readonly<Record<AuditStep, number>> = {
  enqueued: 1,
  started: 2,
  succeeded: 3,
  failed: 4,
  retry_scheduled: 5,
  dead_lettered: 6,
  skipped_duplicate: 7,
  cancelled: 8,
  exhausted: 9
}

/**
 * The `task_audit.status` word a task's latest step gives (a "succeeded" anywhere gives
 * "completed" whatever comes later). These are the original design's status words.
 * @category constants @since 0.1.0
 */
export const statusOf: Readonly<Record<AuditStep, string>> = {
  enqueued: "pending",
  started: "started",
  succeeded: "completed",
  failed: "failed",
  retry_scheduled: "retrying",
  dead_lettered: "failed",
  skipped_duplicate: "skipped",
  cancelled: "cancelled",
  exhausted: "failed"
}

// Steps after which the task is not running: a task whose latest step is one of these has an ended_at.
const ending: ReadonlySet<AuditStep> = new Set<AuditStep>([
  "failed",
  "dead_lettered",
  "cancelled",
  "retry_scheduled",
  "skipped_duplicate",
  "exhausted"
])

/**
 * Epoch milliseconds as the UTC text `task_audit` stores (`YYYY-MM-DD HH:MM:SS.SSS`), the same as
 * SQLite's `strftime('%Y-%m-%d %H:%M:%f', ms / 1000.0, 'unixepoch')`, so it compares correctly
 * with `datetime('now', '-1 day')`. A fraction of a millisecond is dropped.
 * @category formatting @since 0.1.0
 */
export const timeText = (epochMs: number): string => {
  const ms = Math.floor(epochMs)
  // the date part changes once a day: format it once (toISOString was 7% of a write)
  const day = Math.floor(ms / 86_400_000)
  if (day !== cachedDay) {
    cachedDay = day
    cachedDate = new Date(day * 86_400_000).toISOString().slice(0, 10) + " "
  }
  let rest = ms - day * 86_400_000
  const h = Math.floor(rest / 3_600_000)
  rest -= h * 3_600_000
  const m = Math.floor(rest / 60_000)
  rest -= m * 60_000
  const s = Math.floor(rest / 1000)
  const milli = rest - s * 1000
  return cachedDate + two[h] + ":" + two[m] + ":" + two[s] + "." + three[milli]
}
let cachedDay = Number.NaN
let cachedDate = ""
const two = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, "0"))
const three = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"))

/** @category models @since 0.1.0 */
export interface AuditRows {
  /**
   * Inserts the step rows and upserts each message's task_audit row. Synchronous; must run inside
   * a transaction the caller holds (the SQLite Writer's). Throws what SQLite throws.
   */
  readonly write: (records: ReadonlyArray<AuditRecord>) => void
  /** Whether a committed row of `step` exists for the message (used on redeliveries). */
  readonly hasStep: (messageId: string, step: AuditStep) => boolean
}

// The values of one write, in this order, are ?1..?17 of the upsert.
const columns = [
  "task_id", "task_name", "status", "args", "started_at", "ended_at", "duration_ms", "error", "retry_count",
  "tenant", "actor", "attempts", "pool", "kind", "correlation_id", "last_at", "has_started"
] as const
const x = Object.fromEntries(columns.map((c, i) => [c, `?${i + 1}`])) as Record<(typeof columns)[number], string>

// The new values decide status, error and the like when they are newer: not a skipped duplicate
// when the stored status is 'skipped' (a task that has nothing else), or at least as late (a tie
// goes to the later write, as the view's `at DESC, id DESC` did).
const newer = `((${x.status} <> 'skipped') > (status <> 'skipped')
  OR ((${x.status} <> 'skipped') = (status <> 'skipped') AND ${x.last_at} >= last_at))`
const pick = (c: (typeof columns)[number]) => `CASE WHEN ${newer} THEN ${x[c]} ELSE ${c} END`
const anyDone = `(status = 'completed' OR ${x.status} = 'completed')`
const bothDone = `(status = 'completed' AND ${x.status} = 'completed')`

// started_at is the earliest 'started' step's time, or before any, the earliest step's: ?5 is the
// written steps' own such time and ?17 whether it is a 'started' one.
const startMoves = `CASE WHEN has_started THEN ?17 AND started_at > ?5 ELSE ?17 OR started_at > ?5 END`

// A first write (its "enqueued" step) inserts; DO NOTHING (no change) says the row exists already.
const insertTaskSql = `INSERT INTO task_audit (${columns.join(", ")}) VALUES (${columns.map((c) => x[c]).join(", ")})
  ON CONFLICT (task_id) DO NOTHING`

// Any other write is one upsert: the insert, or the merge into the row there is (writes of one
// task may commit in any order). Assigning an indexed column costs its index entries even when the
// value stays the same (measured: about three times the cost of the update), so the merge never
// assigns task_name or tenant (the first write's stay), and started_at only in the variant for
// writes with an "enqueued" or "started" step. (RETURNING id, args instead of the lookup after it
// measured slower: SQLite buffers the returned rows.)
const upsertTaskSql = (movesStart: boolean) => `INSERT INTO task_audit (${columns.join(", ")})
  VALUES (${columns.map((c) => x[c]).join(", ")})
  ON CONFLICT (task_id) DO UPDATE SET
  status = CASE WHEN ${anyDone} THEN 'completed' WHEN ${newer} THEN ${x.status} ELSE status END,
  args = COALESCE(args, ${x.args}),
  ended_at = CASE
    WHEN ${bothDone} THEN MAX(ended_at, ${x.ended_at})
    WHEN status = 'completed' THEN ended_at
    WHEN ${x.status} = 'completed' THEN ${x.ended_at}
    ELSE ${pick("ended_at")} END,
  duration_ms = CASE
    WHEN ${bothDone} THEN
      CASE WHEN ${x.ended_at} >= ended_at AND ${x.duration_ms} IS NOT NULL THEN ${x.duration_ms} ELSE duration_ms END
    WHEN status = 'completed' THEN duration_ms
    WHEN ${x.status} = 'completed' THEN COALESCE(${x.duration_ms}, duration_ms)
    WHEN ${newer} AND ${x.duration_ms} IS NOT NULL THEN ${x.duration_ms}
    ELSE COALESCE(duration_ms, ${x.duration_ms}) END,
  error = CASE WHEN ${anyDone} THEN NULL ELSE ${pick("error")} END,
  retry_count = retry_count + ${x.retry_count},
  actor = ${pick("actor")},
  attempts = MAX(attempts, ${x.attempts}),
  pool = CASE WHEN ${x.pool} <> '' AND (pool = '' OR ${newer}) THEN ${x.pool} ELSE pool END,
  kind = ${pick("kind")},
  correlation_id = ${pick("correlation_id")},
  last_at = ${pick("last_at")}${
  movesStart
    ? `,
  started_at = CASE WHEN ${startMoves} THEN ?5 ELSE started_at END,
  has_started = CASE WHEN ${startMoves} THEN has_started OR ?17 ELSE has_started END`
    : ""}
`

const insertStepSql = `INSERT INTO audit_steps
  (task, step, attempt, at, duration_ms, error, delay_ms, payload, payload_in_args)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

const hasStepSql = `SELECT 1 FROM audit_steps
  WHERE task = (SELECT id FROM task_audit WHERE task_id = ?) AND step = ? LIMIT 1`

const isSkip = (step: AuditStep) => step === "skipped_duplicate"

/** Whether `r`, written after `latest`, decides the status instead (the upsert's `newer`). */
const outranks = (r: AuditRecord, latest: AuditRecord): boolean =>
  isSkip(r.step) !== isSkip(latest.step) ? !isSkip(r.step) : r.at >= latest.at

/** @category models @since 0.1.0 */
export interface Options {
  /** `"off"` stores no payload, `"redacted"` masks `redactFields`, `"full"` stores it as it is. */
  readonly payload: PayloadMode
  /** Keys (any depth, case-insensitive) whose values `"redacted"` mode replaces with `"[redacted]"`. */
  readonly redactFields: ReadonlyArray<string>
}

/**
 * Prepares the statements on `db` (whose schema must be migrated). Payloads are stored as the
 * mode says: `"off"` stores none (and does no JSON work), `"redacted"` masks `redactFields` (any
 * depth, case-insensitive), `"full"` stores them as they are.
 * @category constructors @since 0.1.0
 */
export const prepare = (db: Handle, options: Options): AuditRows => {
  type Value = string | number | null
  type Row = { readonly id: number; readonly args: string | null }
  const insertTask = db.prepare<never, Array<Value>>(insertTaskSql)
  const upsertTask = db.prepare<never, Array<Value>>(upsertTaskSql(false))
  const upsertStartingTask = db.prepare<never, Array<Value>>(upsertTaskSql(true))
  const findTask = db.prepare<Row, [string]>("SELECT id, args FROM task_audit WHERE task_id = ?")
  const insertStep = db.prepare<never, Array<Value>>(insertStepSql)
  const hasStepQuery = db.prepare<{ 1: number }, [string, number]>(hasStepSql)
  const mode = options.payload
  const fields = fieldSet(options.redactFields)
  // the payload texts of the run being written (reused between calls)
  const texts: Array<string | null> = []

  /** Writes records[from..to), all of one message: its task row, then its steps. */
  const writeRun = (records: ReadonlyArray<AuditRecord>, from: number, to: number): void => {
    let latest = records[from]!
    let createdAt = latest.at
    let startedMs: number | null = null
    let succeededAt: number | null = null
    let succeededDuration: number | null = null
    let durationAt = -Infinity
    let duration: number | null = null
    let retries = 0
    let attempts = 0
    let args: string | null = null
    let movesStart = false
    let enqueues = false
    texts.length = 0
    for (let i = from; i < to; i++) {
      const r = records[i]!
      if (i > from && outranks(r, latest)) latest = r
      if (r.at < createdAt) createdAt = r.at
      if (r.step === "started") {
        movesStart = true
        if (startedMs === null || r.at < startedMs) startedMs = r.at
      } else if (r.step === "enqueued") {
        movesStart = true
        enqueues = true
      } else if (r.step === "succeeded" && (succeededAt === null || r.at >= succeededAt)) {
        succeededAt = r.at
        if (r.durationMs !== undefined) succeededDuration = r.durationMs
      } else if (r.step === "retry_scheduled") {
        retries++
      }
      if (r.durationMs !== undefined && r.at >= durationAt) {
        durationAt = r.at
        duration = r.durationMs
      }
      if (r.attempt > attempts) attempts = r.attempt
      // "off" does no JSON work at all
      const text = mode === "off" ? null : payloadText(r.payload, mode, fields)
      texts.push(text)
      if (args === null) args = text
    }
    const done = succeededAt !== null
    const messageId = latest.messageId
    const values: Array<Value> = [
      messageId,
      latest.subject,
      done ? "completed" : statusOf[latest.step],
      args,
      timeText(startedMs ?? createdAt),
      done ? timeText(succeededAt!) : ending.has(latest.step) ? timeText(latest.at) : null,
      done ? (succeededDuration ?? duration) : duration,
      done ? null : (latest.error ?? null),
      retries,
      latest.tenant,
      latest.actor,
      attempts,
      latest.pool,
      latest.kind ?? "task",
      latest.correlationId === messageId ? null : latest.correlationId,
      latest.at,
      startedMs === null ? 0 : 1
    ]
    // a first write makes the row in one statement; a later one merges into it and looks it up
    const inserted = enqueues ? insertTask.run(...values) : undefined
    let task: number
    let storedArgs = args
    if (inserted !== undefined && inserted.changes > 0) {
      task = Number(inserted.lastInsertRowid)
    } else {
      ;(movesStart ? upsertStartingTask : upsertTask).run(...values)
      const row = findTask.get(messageId)!
      task = row.id
      storedArgs = row.args
    }
    for (let i = from; i < to; i++) {
      const r = records[i]!
      const text = texts[i - from]!
      // a payload is stored once, as the task's args; the steps that carried it say so
      const inArgs = text !== null && text === storedArgs
      insertStep.run(
        task,
        stepCodes[r.step],
        r.attempt,
        r.at,
        r.durationMs ?? null,
        r.error ?? null,
        r.delayMs ?? null,
        inArgs ? null : text,
        inArgs ? 1 : 0
      )
    }
  }

  return {
    write: (records) => {
      // records of one message are usually adjacent: each run of them is one task row write
      let from = 0
      for (let i = 1; i <= records.length; i++) {
        if (i === records.length || records[i]!.messageId !== records[from]!.messageId) {
          writeRun(records, from, i)
          from = i
        }
      }
    },
    hasStep: (messageId, step) => hasStepQuery.get(messageId, stepCodes[step]) !== null
  }
}
