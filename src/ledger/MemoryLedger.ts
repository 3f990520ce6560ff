/**
 * The ledger in memory, for the in-memory broker and unit tests: idempotency keys in a map, audit
 * rows in an array, each batch settled in one synchronous step — the same answers as the SQLite
 * ledger, outcome and rows together. Handlers' `atCommit` writes need SQL and are refused.
 * @since 0.1.0
 */
import { Clock, Effect } from "effect"
import type { AuditRecord } from "../audit/AuditLog.ts"
import type { Claim } from "../idempotency/Idempotency.ts"
import { Ledger, type RunRef, type Settled } from "./Ledger.ts"

interface Key {
  owner: string
  heldUntil: number
  /** 0 held, 1 done, 2 decided dead for `sequence`. */
  state: 0 | 1 | 2
  outcome: unknown
  completedAt: number
  sequence: number | undefined
}

const CLAIMED: Claim = { _tag: "Claimed" }
const STORED: Settled = { _tag: "Stored" }
const LOST: Settled = { _tag: "LeaseLost" }
// what the SQLite ledger would read back
const jsonCopy = (u: unknown): unknown => (u === undefined ? null : JSON.parse(JSON.stringify(u)))

/**
 * A fresh in-memory ledger; `rows` reads the audit rows recorded so far.
 * @category constructors @since 0.1.0
 */
export const make = Effect.gen(function*() {
  const clock = yield* Clock.Clock
  const keys = new Map<string, Key>()
  const rows: Array<AuditRecord> = []
  // what a claim answers when the key is not free to take; undefined when it is
  const answer = (run: RunRef, now: number): Claim | undefined => {
    const k = keys.get(run.key)
    if (k?.state === 1) return { _tag: "Done", outcome: { output: k.outcome, completedAt: k.completedAt } }
    if (k?.state === 2 && k.sequence === run.sequence) return { _tag: "Dead", verdict: k.outcome, decidedAt: k.completedAt }
    if (k?.state === 0 && k.owner !== run.owner && k.heldUntil > now) return { _tag: "Held", owner: k.owner, heldUntil: k.heldUntil }
    return undefined
  }
  // whether completing `run` would take the key from a run that holds it: a claimed run loses
  // to any other owner; one that never claimed, only to a live one (or a dead mark of its message)
  const lost = (run: RunRef, now: number): boolean => {
    const k = keys.get(run.key)
    if (run.claimed !== false) return k?.state === 0 && k.owner !== run.owner
    return (k?.state === 0 && k.owner !== run.owner && k.heldUntil > now) || (k?.state === 2 && k.sequence === run.sequence)
  }
  const service = Ledger.of({
    atomic: true,
    writes: false,
    claim: (requests) =>
      Effect.sync(() => {
        const now = clock.currentTimeMillisUnsafe()
        return requests.map(({ audit, leaseMs, run }): Claim => {
          const other = answer(run, now)
          if (other !== undefined) return other
          keys.set(run.key, { owner: run.owner, heldUntil: now + leaseMs, state: 0, outcome: null, completedAt: 0, sequence: undefined })
          rows.push(...audit)
          return CLAIMED
        })
      }),
    check: (runs) =>
      Effect.sync(() => {
        const now = clock.currentTimeMillisUnsafe()
        return runs.map((run) => answer(run, now) ?? CLAIMED)
      }),
    settle: (items) =>
      Effect.sync(() => {
        const now = clock.currentTimeMillisUnsafe()
        return items.map((item): Settled => {
          switch (item._tag) {
            case "Record":
              rows.push(...item.audit)
              return STORED
            case "Release": {
              const k = keys.get(item.run.key)
              if (k?.state === 0 && k.owner === item.run.owner) keys.delete(item.run.key)
              rows.push(...item.audit)
              return STORED
            }
            case "MarkDead": {
              if (keys.get(item.run.key)?.state !== 1) {
                keys.set(item.run.key, {
                  owner: item.run.owner,
                  heldUntil: 0,
                  state: 2,
                  outcome: jsonCopy(item.verdict),
                  completedAt: now,
                  sequence: item.run.sequence
                })
              }
              rows.push(...item.audit)
              return STORED
            }
            case "CompleteAll": {
              for (const run of item.runs) if (lost(run, now)) return LOST
              item.runs.forEach((run, i) => {
                if (keys.get(run.key)?.state === 1) return
                keys.set(run.key, {
                  owner: run.owner,
                  heldUntil: 0,
                  state: 1,
                  outcome: jsonCopy(item.outcomes[i]),
                  completedAt: now,
                  sequence: undefined
                })
              })
              rows.push(...item.audit)
              return STORED
            }
            case "Complete": {
              if (lost(item.run, now)) return LOST
              if (keys.get(item.run.key)?.state !== 1) {
                keys.set(item.run.key, {
                  owner: item.run.owner,
                  heldUntil: 0,
                  state: 1,
                  outcome: jsonCopy(item.outcome),
                  completedAt: now,
                  sequence: undefined
                })
              }
              rows.push(...item.audit)
              return STORED
            }
          }
        })
      }),
    renew: (runs, leaseMs) =>
      Effect.sync(() => {
        const now = clock.currentTimeMillisUnsafe()
        return runs.map((r) => {
          const k = keys.get(r.key)
          if (k?.state !== 0 || k.owner !== r.owner) return false
          k.heldUntil = now + leaseMs
          return true
        })
      }),
    hasStep: (messageId, step) => Effect.sync(() => rows.some((r) => r.messageId === messageId && r.step === step))
  })
  return { service, rows: Effect.sync((): ReadonlyArray<AuditRecord> => [...rows]) }
})
