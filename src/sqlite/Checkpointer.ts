/**
 * WAL checkpoints on a thread of their own. SQLite's automatic checkpoint runs inside a commit:
 * it copies the log into the file and, with `synchronous = NORMAL`, waits for an fsync — on the
 * thread that also runs every dispatcher (measured: 10 to 20 µs per task of a worker's time).
 * Here the connection that writes turns the automatic checkpoint down to a backstop (a log of
 * `backstopPages`), and a worker thread with its own connection runs PASSIVE checkpoints (they
 * never block a writer) every `intervalMs` while the log grows.
 *
 * The thread's source is inline (a Blob URL), so it works the same from a compiled single-file
 * executable. If the thread cannot start or dies, the backstop keeps the log bounded.
 * @since 0.1.0
 */
import { Effect, type Scope } from "effect"
import type { Handle } from "./SqliteFile.ts"

/** @category models @since 0.1.0 */
export interface Options {
  /** How often the thread looks at the log. Default 100 ms. */
  readonly intervalMs?: number | undefined
  /** The writing connection's automatic checkpoint, in pages, as a backstop. Default 16,384 (64 MB). */
  readonly backstopPages?: number | undefined
  /** A log longer than this many frames is checkpointed with RESTART, so it starts over. Default 4,096 (16 MB). */
  readonly restartFrames?: number | undefined
}

// The thread: its own connection to the file. A PASSIVE checkpoint copies the log into the file
// without stopping writers, but under steady writing it never catches up fully, and only a
// caught-up log starts over: past \`restartFrames\` it checkpoints with RESTART (waiting here, up to
// 200 ms, for the writer's current transaction; writers then wait a few ms for the last frames).
const source = `
const { Database } = require("bun:sqlite")
let db, timer
self.onmessage = (event) => {
  const { path, intervalMs, restartFrames } = event.data
  if (path === undefined) { clearInterval(timer); try { db?.close(false) } catch {} ; self.close(); return }
  db = new Database(path, { readwrite: true })
  db.run("PRAGMA busy_timeout = 200")
  const passive = db.prepare("PRAGMA wal_checkpoint(PASSIVE)")
  const restart = db.prepare("PRAGMA wal_checkpoint(RESTART)")
  timer = setInterval(() => {
    try {
      const r = passive.get()
      if (r && r.log > restartFrames) restart.get()
    } catch { /* busy: another checkpoint runs; next time */ }
  }, intervalMs)
}
`

/**
 * Starts checkpointing the file of `handle` (at `path`) on a thread until the scope closes.
 * Does nothing for an in-memory database.
 * @category constructors @since 0.1.0
 */
export const start = (handle: Handle, path: string, options: Options = {}): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    if (path === ":memory:" || path === "") return
    const backstop = options.backstopPages ?? 16_384
    const worker = yield* Effect.acquireRelease(
      Effect.sync(() => {
        try {
          const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }))
          const w = new Worker(url)
          w.unref()
          w.postMessage({ path, intervalMs: options.intervalMs ?? 100, restartFrames: options.restartFrames ?? 4096 })
          handle.run(`PRAGMA wal_autocheckpoint = ${backstop}`)
          return w
        } catch {
          // no thread: SQLite's own automatic checkpoint stays as it was
          return undefined
        }
      }),
      (w) =>
        Effect.sync(() => {
          if (w === undefined) return
          w.postMessage({})
          handle.run("PRAGMA wal_autocheckpoint = 1000")
        })
    )
    if (worker !== undefined) yield* Effect.logDebug(`WAL checkpoints of ${path} run on their own thread`)
  })
