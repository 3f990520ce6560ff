/**
 * The schema of the msgsys SQLite file, as an ordered list of migrations. Each runs once, in its
 * own transaction, and is recorded in `schema_migrations`. Never edit a released migration:
 * append a new one.
 * @since 0.1.0
 */

/** @category models @since 0.1.0 */
export interface Migration {
  readonly version: number
  readonly name: string
  readonly sql: string
}

// Maps the latest step of a task to the status words of the original design's task_audit table
// ('started', 'completed', 'failed'), so its queries run unchanged. A succeeded step anywhere wins:
// a later skipped_duplicate of the same message does not make it less done.
const taskAuditView = `
CREATE VIEW task_audit AS
WITH ranked AS (
  SELECT a.*, ROW_NUMBER() OVER (
    PARTITION BY message_id ORDER BY (step = 'skipped_duplicate'), at DESC, id DESC
  ) AS rn
  FROM audit_log a
), agg AS (
  SELECT message_id,
    MIN(at) AS first_at,
    MIN(CASE WHEN step = 'started' THEN at END) AS started_ms,
    MAX(CASE WHEN step = 'succeeded' THEN at END) AS succeeded_ms,
    SUM(step = 'retry_scheduled') AS retries,
    MAX(attempt) AS attempts
  FROM audit_log GROUP BY message_id
)
SELECT
  r.message_id AS task_id,
  r.subject AS task_name,
  CASE
    WHEN g.succeeded_ms IS NOT NULL THEN 'completed'
    WHEN r.step = 'enqueued' THEN 'pending'
    WHEN r.step = 'started' THEN 'started'
    WHEN r.step = 'retry_scheduled' THEN 'retrying'
    WHEN r.step IN ('failed', 'dead_lettered') THEN 'failed'
    WHEN r.step = 'cancelled' THEN 'cancelled'
    WHEN r.step = 'skipped_duplicate' THEN 'skipped'
    ELSE r.step
  END AS status,
  (SELECT x.payload FROM audit_log x
    WHERE x.message_id = r.message_id AND x.payload IS NOT NULL ORDER BY x.id LIMIT 1) AS args,
  strftime('%Y-%m-%d %H:%M:%f', COALESCE(g.started_ms, g.first_at) / 1000.0, 'unixepoch') AS started_at,
  CASE
    WHEN g.succeeded_ms IS NOT NULL THEN strftime('%Y-%m-%d %H:%M:%f', g.succeeded_ms / 1000.0, 'unixepoch')
    WHEN r.step IN ('failed', 'dead_lettered', 'cancelled', 'retry_scheduled', 'skipped_duplicate')
      THEN strftime('%Y-%m-%d %H:%M:%f', r.at / 1000.0, 'unixepoch')
  END AS ended_at,
  (SELECT x.duration_ms FROM audit_log x
    WHERE x.message_id = r.message_id AND x.duration_ms IS NOT NULL
    ORDER BY (x.step = 'succeeded') DESC, x.at DESC, x.id DESC LIMIT 1) AS duration_ms,
  CASE WHEN g.succeeded_ms IS NULL THEN r.error END AS error,
  g.retries AS retry_count,
  r.tenant AS tenant,
  r.actor AS actor,
  r.pool AS pool,
  r.kind AS kind,
  r.step AS last_step,
  g.attempts AS attempts,
  r.correlation_id AS correlation_id
FROM ranked r JOIN agg g ON g.message_id = r.message_id
WHERE r.rn = 1;
`

/** Every migration, in order. @category constants @since 0.1.0 */
export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    name: "audit_log",
    sql: `
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY,
  message_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  actor TEXT NOT NULL,
  pool TEXT NOT NULL,
  tenant TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  step TEXT NOT NULL,
  at INTEGER NOT NULL,
  duration_ms REAL,
  error TEXT,
  delay_ms INTEGER,
  payload TEXT,
  kind TEXT NOT NULL DEFAULT 'task'
);
CREATE INDEX audit_log_message_id ON audit_log (message_id);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_subject_at ON audit_log (subject, at);
`
  },
  { version: 2, name: "task_audit view", sql: taskAuditView },
  {
    version: 3,
    name: "idempotency_keys",
    sql: `
CREATE TABLE idempotency_keys (
  key TEXT PRIMARY KEY,
  owner TEXT,
  held_until INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0,
  output TEXT,
  completed_at INTEGER
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_completed_at ON idempotency_keys (done, completed_at);
`
  },
  {
    version: 4,
    name: "exhausted",
    sql: `
CREATE TABLE exhausted (
  id TEXT PRIMARY KEY,
  original_subject TEXT NOT NULL,
  actor TEXT NOT NULL,
  tenant TEXT NOT NULL,
  headers TEXT NOT NULL,
  payload TEXT NOT NULL,
  error TEXT NOT NULL,
  attempts TEXT NOT NULL,
  dead_lettered_at INTEGER NOT NULL,
  exhausted_at INTEGER NOT NULL,
  replayed_at INTEGER
);
CREATE INDEX exhausted_actor_tenant ON exhausted (actor, tenant, exhausted_at);
CREATE INDEX exhausted_at ON exhausted (exhausted_at);
`
  },
  {
    // versions 5-9 are left to the audit tables
    version: 10,
    name: "idempotency dead marks",
    // done = 2: the stored message \`sequence\` was decided dead (output holds the verdict)
    sql: "ALTER TABLE idempotency_keys ADD COLUMN sequence INTEGER"
  },
  {
    version: 11,
    name: "exhausted reason and retries",
    // why the letter was dead-lettered, and how many times the DLQ worker replayed it first
    sql: `
ALTER TABLE exhausted ADD COLUMN reason TEXT NOT NULL DEFAULT 'exhausted';
ALTER TABLE exhausted ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
`
  }
]
