/**
 * Opens the msgsys SQLite file with `bun:sqlite`: pragmas, WAL and migrations. Plain synchronous
 * functions that throw; `Database.ts` wraps them in Effect (retry on SQLITE_BUSY, scope, errors).
 * The only place besides the `Sqlite*` stores that touches `bun:sqlite` directly.
 * @since 0.1.0
 */
import { Database as BunDatabase, SQLiteError } from "bun:sqlite"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import type { Migration } from "./internal/migrations.ts"

/** An open `bun:sqlite` connection. @category models @since 0.1.0 */
export type Handle = BunDatabase

/** @category models @since 0.1.0 */
export type Synchronous = "normal" | "full"

/** @category models @since 0.1.0 */
export interface OpenOptions {
  readonly path: string
  readonly synchronous: Synchronous
  readonly busyTimeoutMs: number
  readonly migrations: ReadonlyArray<Migration>
  /** Stored in `schema_migrations.applied_at` (epoch ms). */
  readonly now: number
}

/** The SQLite result code of a thrown error (`SQLITE_BUSY`, …), if it is a SQLite error. @category errors @since 0.1.0 */
export const errorCode = (u: unknown): string | undefined =>
  // `constructor.name` says "Error" under Bun, so only instanceof is reliable (PITFALLS §6)
  u instanceof SQLiteError ? u.code : undefined

/** True for SQLITE_BUSY and SQLITE_LOCKED (and their extended codes): worth retrying. @category errors @since 0.1.0 */
export const isBusy = (u: unknown): boolean => {
  const code = errorCode(u)
  return code !== undefined && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))
}

/**
 * Applies each migration not yet recorded, each in its own `BEGIN IMMEDIATE` transaction that
 * re-checks `schema_migrations` first, so two processes migrating at once apply each step once.
 * Returns the versions it applied.
 * @category migrations @since 0.1.0
 */
export const migrate = (db: Handle, migrations: ReadonlyArray<Migration>, now: number): ReadonlyArray<number> => {
  db.run(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
  )
  const isApplied = db.prepare<{ version: number }, [number]>("SELECT version FROM schema_migrations WHERE version = ?")
  const markApplied = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
  const applied: Array<number> = []
  for (const m of migrations) {
    const ran = db.transaction(() => {
      if (isApplied.get(m.version) !== null) return false
      db.run(m.sql)
      markApplied.run(m.version, m.name, now)
      return true
    }).immediate()
    if (ran) applied.push(m.version)
  }
  isApplied.finalize()
  markApplied.finalize()
  return applied
}

/**
 * Opens (creating it and its directory if missing) and prepares the file: `busy_timeout` first,
 * then incremental auto-vacuum (effective on a new file only), WAL, `synchronous`, migrations.
 * Throws what SQLite throws; the connection is closed before a throw.
 * @category constructors @since 0.1.0
 */
export const open = (options: OpenOptions): Handle => {
  const memory = options.path === ":memory:" || options.path === ""
  if (!memory) mkdirSync(dirname(options.path), { recursive: true })
  const db = new BunDatabase(options.path, { create: true, readwrite: true, strict: true })
  try {
    db.run(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs))}`)
    db.run("PRAGMA auto_vacuum = INCREMENTAL")
    const mode = db.query<{ journal_mode: string }, []>("PRAGMA journal_mode = WAL").get()?.journal_mode
    if (!memory && mode !== "wal") {
      throw new Error(`SQLite refused WAL mode (journal_mode is ${mode}); the file system may not support shared memory`)
    }
    db.run(`PRAGMA synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`)
    migrate(db, options.migrations, options.now)
    return db
  } catch (e) {
    db.close(false)
    throw e
  }
}

/** Closes the connection, letting SQLite finish and checkpoint. @category destructors @since 0.1.0 */
export const close = (db: Handle): void => db.close(false)
