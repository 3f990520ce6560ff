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

// One row per task, kept current by the writer (src/audit/AuditRows.ts) in the transaction that
// records the steps, so the original design's queries read an indexed table instead of ranking
// the whole history. Built here from the old audit_log through the old view, which gives the same
// answers. Steps stay append-only but compact: the task's strings live once in its task_audit row,
// a step names its task by rowid and its kind by a small code (fixed for ever: 1 enqueued,
// 2 started, 3 succeeded, 4 failed, 5 retry_scheduled, 6 dead_lettered, 7 skipped_duplicate,
// 8 cancelled). audit_log stays, as a view with its old columns.
//
// Two columns let the writer merge steps in any order: last_at (the time of the step that decided
// the status) and has_started (started_at is a 'started' step's time, not the first step's).
// correlation_id is NULL when it is the task id itself (most tasks). A payload is stored once, as
// the task's args; payload_in_args marks the steps that carried it.
//
// The statistics pinned in sqlite_stat1 tell the planner what holds at any size: few statuses,
// names and tenants, many tasks each. Without them it scans whole indexes instead of skipping
// through (status, started_at) per status; a later ANALYZE replaces them with measured ones.
// The steps with their task's columns, one row per step, as the audit_log table had them.
const auditLogView = `CREATE VIEW audit_log AS
SELECT s.id AS id,
  t.task_id AS message_id,
  t.task_name AS subject,
  t.actor AS actor,
  t.pool AS pool,
  t.tenant AS tenant,
  COALESCE(t.correlation_id, t.task_id) AS correlation_id,
  s.attempt AS attempt,
  CASE s.step WHEN 1 THEN 'enqueued' WHEN 2 THEN 'started' WHEN 3 THEN 'succeeded' WHEN 4 THEN 'failed'
    WHEN 5 THEN 'retry_scheduled' WHEN 6 THEN 'dead_lettered' WHEN 7 THEN 'skipped_duplicate' WHEN 8 THEN 'cancelled'
    WHEN 9 THEN 'exhausted' END AS step,
  s.at AS at,
  s.duration_ms AS duration_ms,
  s.error AS error,
  s.delay_ms AS delay_ms,
  CASE WHEN s.payload_in_args THEN t.args ELSE s.payload END AS payload,
  t.kind AS kind
FROM audit_steps s JOIN task_audit t ON t.id = s.task;`

const taskAuditTable = `
CREATE TABLE task_audit_new (
  id INTEGER PRIMARY KEY,
  task_id TEXT NOT NULL,
  task_name TEXT NOT NULL,
  status TEXT NOT NULL,
  args TEXT,
  started_at TEXT NOT NULL,
  ended_at TEXT,
  duration_ms REAL,
  error TEXT,
  retry_count INTEGER NOT NULL DEFAULT 0,
  tenant TEXT NOT NULL,
  actor TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  pool TEXT NOT NULL,
  kind TEXT NOT NULL DEFAULT 'task',
  correlation_id TEXT,
  last_at INTEGER NOT NULL,
  has_started INTEGER NOT NULL DEFAULT 0
);

INSERT INTO task_audit_new (task_id, task_name, status, args, started_at, ended_at, duration_ms, error, retry_count,
  tenant, actor, attempts, pool, kind, correlation_id, last_at, has_started)
SELECT v.task_id, v.task_name, v.status, v.args, v.started_at, v.ended_at, v.duration_ms, v.error, v.retry_count,
  v.tenant, v.actor, v.attempts, v.pool, v.kind, NULLIF(v.correlation_id, v.task_id), g.last_at, g.has_started
FROM task_audit v JOIN (
  SELECT message_id,
    MIN(at) AS first_at,
    COALESCE(MAX(CASE WHEN step <> 'skipped_duplicate' THEN at END), MAX(at)) AS last_at,
    MAX(step = 'started') AS has_started
  FROM audit_log GROUP BY message_id
) g ON g.message_id = v.task_id
ORDER BY g.first_at, v.task_id;

CREATE TABLE audit_steps (
  id INTEGER PRIMARY KEY,
  task INTEGER NOT NULL,
  step INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  at INTEGER NOT NULL,
  duration_ms REAL,
  error TEXT,
  delay_ms INTEGER,
  payload TEXT,
  payload_in_args INTEGER NOT NULL DEFAULT 0
);

INSERT INTO audit_steps (id, task, step, attempt, at, duration_ms, error, delay_ms, payload, payload_in_args)
SELECT a.id, t.id,
  CASE a.step WHEN 'enqueued' THEN 1 WHEN 'started' THEN 2 WHEN 'succeeded' THEN 3 WHEN 'failed' THEN 4
    WHEN 'retry_scheduled' THEN 5 WHEN 'dead_lettered' THEN 6 WHEN 'skipped_duplicate' THEN 7 WHEN 'cancelled' THEN 8 END,
  a.attempt, a.at, a.duration_ms, a.error, a.delay_ms,
  CASE WHEN a.payload IS t.args THEN NULL ELSE a.payload END,
  a.payload IS NOT NULL AND a.payload IS t.args
FROM audit_log a JOIN task_audit_new t ON t.task_id = a.message_id
ORDER BY a.id;

DROP VIEW task_audit;
DROP TABLE audit_log;
ALTER TABLE task_audit_new RENAME TO task_audit;

CREATE UNIQUE INDEX task_audit_task_id ON task_audit (task_id);
CREATE INDEX task_audit_status_started ON task_audit (status, started_at);
CREATE INDEX task_audit_name_status_started ON task_audit (task_name, status, started_at, duration_ms);
CREATE INDEX task_audit_tenant_started ON task_audit (tenant, started_at);
CREATE INDEX audit_steps_task ON audit_steps (task);

-- the original design's archival script deletes task rows: their steps go with them
CREATE TRIGGER task_audit_delete_steps AFTER DELETE ON task_audit BEGIN
  DELETE FROM audit_steps WHERE task = OLD.id;
END;

${auditLogView}

ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl IN ('task_audit', 'audit_steps');
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
  ('task_audit', 'task_audit_task_id', '1000000 1'),
  ('task_audit', 'task_audit_status_started', '1000000 200000 2'),
  ('task_audit', 'task_audit_name_status_started', '1000000 100000 20000 2 1'),
  ('task_audit', 'task_audit_tenant_started', '1000000 50000 2'),
  ('audit_steps', 'audit_steps_task', '3000000 3');
ANALYZE sqlite_schema;
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
  { version: 5, name: "task_audit table", sql: taskAuditTable },
  {
    // versions 6-9 are left to later audit tables
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
  },
  {
    version: 12,
    name: "audit step exhausted",
    // the DLQ worker's last word on a task (step code 9) gets its name in the view
    sql: `DROP VIEW audit_log;\n${auditLogView}`
  },
  {
    version: 13,
    name: "audit failures index",
    // the latest failures (msgsys status, the dashboard) without reading every step: failed (4),
    // dead_lettered (6) and exhausted (9) rows only, a small share of the steps
    sql: "CREATE INDEX audit_steps_failures ON audit_steps (at) WHERE step IN (4, 6, 9)"
  }
]
