/**
 * The statements of the `idempotency_keys` table as synchronous functions on one connection, to run
 * inside a transaction the caller holds: the SQLite idempotency store wraps each in a writer
 * operation, and the ledger runs them in the transaction of the audit rows (on the dispatching
 * thread or on the ledger's own). Plain code without Effect, so the ledger's thread loads fast.
 * @since 0.1.0
 */
import type { Claim } from "./Idempotency.ts"
import type { Handle } from "../sqlite/SqliteFile.ts"

interface KeyRow {
  readonly sequence: number | null
  readonly owner: string | null
  readonly held_until: number
  readonly done: number
  readonly output: string | null
  readonly completed_at: number | null
}

/** The key operations. @category models @since 0.1.0 */
export interface Keys {
  readonly claim: (key: string, owner: string, heldUntil: number, now: number, sequence: number | undefined) => Claim
  /** What `claim` would answer now, without writing: `Claimed` means the key is free to take. */
  readonly check: (key: string, owner: string, now: number, sequence: number | undefined) => Claim
  readonly renew: (key: string, owner: string, heldUntil: number) => boolean
  /** Records the outcome (JSON text); the first outcome stays. */
  readonly complete: (key: string, owner: string, json: string, now: number) => void
  /**
   * Records the outcome only while `owner` still holds the key (or nobody does): `"lost"` when
   * another owner took it over, so the caller stores nothing.
   */
  readonly completeOwned: (key: string, owner: string, json: string, now: number) => "stored" | "done" | "lost"
  /**
   * Records the outcome of a run that never claimed the key: taken if the key is free (absent,
   * its lease over, or another message's dead mark), `"done"` if another run completed it,
   * `"lost"` if another live run holds it (this run was a duplicate: the caller stores nothing).
   */
  readonly completeFree: (key: string, owner: string, json: string, now: number, sequence: number) => "stored" | "done" | "lost"
  readonly markDead: (key: string, owner: string, sequence: number, json: string, now: number) => void
  readonly release: (key: string, owner: string) => void
  readonly prune: (cutoff: number) => number
}

const parse = (text: string | null): unknown => text === null ? null : JSON.parse(text)
const CLAIMED: Claim = { _tag: "Claimed" }

/**
 * Prepares the key operations on `h`.
 * @category constructors @since 0.1.0
 */
export const prepare = (h: Handle): Keys => {
  const select = h.prepare<KeyRow, [string]>(
    "SELECT owner, held_until, done, output, completed_at, sequence FROM idempotency_keys WHERE key = ?"
  )
  const insert = h.prepare<never, [string, string, number]>(
    "INSERT INTO idempotency_keys (key, owner, held_until, done) VALUES (?, ?, ?, 0)"
  )
  // takes over an expired or own claim, or the dead mark of another stored message (a replay)
  const take = h.prepare<never, [string, number, string]>(
    "UPDATE idempotency_keys SET owner = ?, held_until = ?, done = 0, output = NULL, completed_at = NULL, " +
      "sequence = NULL WHERE key = ? AND done IN (0, 2)"
  )
  const markDead = h.prepare<never, [string, string, string, number, number]>(
    `INSERT INTO idempotency_keys (key, owner, held_until, done, output, completed_at, sequence) VALUES (?, ?, 0, 2, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, held_until = 0, done = 2, output = excluded.output,
       completed_at = excluded.completed_at, sequence = excluded.sequence
     WHERE done <> 1`
  )
  const renew = h.prepare<never, [number, string, string]>(
    "UPDATE idempotency_keys SET held_until = ? WHERE key = ? AND owner = ? AND done = 0"
  )
  const complete = h.prepare<never, [string, string, string, number]>(
    `INSERT INTO idempotency_keys (key, owner, held_until, done, output, completed_at) VALUES (?, ?, 0, 1, ?, ?)
     ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, held_until = 0, done = 1,
       output = excluded.output, completed_at = excluded.completed_at, sequence = NULL
     WHERE done <> 1`
  )
  const completeOwned = h.prepare<never, [string, number, string, string]>(
    "UPDATE idempotency_keys SET held_until = 0, done = 1, output = ?, completed_at = ?, sequence = NULL " +
      "WHERE key = ? AND owner = ? AND done = 0"
  )
  // one statement in the usual case (no row yet); the WHERE takes only a free key over
  const completeFree = h.prepare<never, [string, string, string, number, number, number]>(
    `INSERT INTO idempotency_keys (key, owner, held_until, done, output, completed_at) VALUES (?1, ?2, 0, 1, ?3, ?4)
     ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, held_until = 0, done = 1,
       output = excluded.output, completed_at = excluded.completed_at, sequence = NULL
     WHERE (done = 0 AND (held_until <= ?5 OR owner = excluded.owner)) OR (done = 2 AND sequence IS NOT ?6)`
  )
  const release = h.prepare<never, [string, string]>(
    "DELETE FROM idempotency_keys WHERE key = ? AND owner = ? AND done = 0"
  )
  const prune = h.prepare<never, [number, number]>(
    "DELETE FROM idempotency_keys WHERE (done <> 0 AND completed_at < ?) OR (done = 0 AND held_until < ?)"
  )
  // the answer a claim gives from the stored row; null: the key is free to take
  const answer = (row: KeyRow | null, owner: string, now: number, sequence: number | undefined): Claim | null => {
    if (row === null) return null
    if (row.done === 1) return { _tag: "Done", outcome: { output: parse(row.output), completedAt: row.completed_at ?? 0 } }
    if (row.done === 2 && row.sequence === (sequence ?? null)) {
      return { _tag: "Dead", verdict: parse(row.output), decidedAt: row.completed_at ?? 0 }
    }
    if (row.done === 0 && row.owner !== owner && row.held_until > now) {
      return { _tag: "Held", owner: row.owner ?? "", heldUntil: row.held_until }
    }
    return null
  }
  return {
    claim: (key, owner, heldUntil, now, sequence) => {
      const row = select.get(key)
      if (row === null) {
        insert.run(key, owner, heldUntil)
        return CLAIMED
      }
      const other = answer(row, owner, now, sequence)
      if (other !== null) return other
      take.run(owner, heldUntil, key)
      return CLAIMED
    },
    check: (key, owner, now, sequence) => answer(select.get(key), owner, now, sequence) ?? CLAIMED,
    completeFree: (key, owner, json, now, sequence) => {
      if (completeFree.run(key, owner, json, now, now, sequence).changes > 0) return "stored"
      return select.get(key)?.done === 1 ? "done" : "lost"
    },
    renew: (key, owner, heldUntil) => renew.run(heldUntil, key, owner).changes > 0,
    complete: (key, owner, json, now) => {
      complete.run(key, owner, json, now)
    },
    completeOwned: (key, owner, json, now) => {
      if (completeOwned.run(json, now, key, owner).changes > 0) return "stored"
      const row = select.get(key)
      if (row === null || row.done === 2) {
        complete.run(key, owner, json, now)
        return "stored"
      }
      if (row.done === 1) return "done"
      // held by another owner: its lease ran out under us and it took over
      if (row.owner !== owner) return "lost"
      complete.run(key, owner, json, now)
      return "stored"
    },
    markDead: (key, owner, sequence, json, now) => {
      markDead.run(key, owner, json, now, sequence)
    },
    release: (key, owner) => {
      release.run(key, owner)
    },
    prune: (cutoff) => prune.run(cutoff, cutoff).changes
  }
}
