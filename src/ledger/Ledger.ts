/**
 * The durable record of task runs: who holds a run's idempotency key (guarantee 2), what its
 * outcome was, and the audit row of every step (guarantee 1). The dispatcher asks it in batches —
 * claim many runs at once, settle many at once — so a busy worker pays one transaction for many
 * messages.
 *
 * Two implementations: `SqliteLedger`, where keys and audit share the msgsys SQLite file and each
 * batch is ONE transaction (a task's outcome and its audit row commit together, and a handler may
 * write its own tables in that transaction: `atomic`), and `StoreLedger`, built from any
 * `Idempotency` store (NATS KV when workers span hosts) and any `AuditLog`.
 * @since 0.1.0
 */
import { Context, Data, type Effect } from "effect"
import type { AuditRecord, AuditStep } from "../audit/AuditLog.ts"
import type { Claim } from "../idempotency/Idempotency.ts"

export type { Claim }

/** Which run of which key: the owner is unique per delivery, the sequence names the stored message. @category models @since 0.1.0 */
export interface RunRef {
  readonly key: string
  readonly owner: string
  readonly sequence: number
  /**
   * False for a run that started after a `check` alone, without claiming its key (short runs
   * never claim: see `Ledger.check`). Its settlement takes the key if it is still free, and its
   * audit rows carry the "started" row the claim would have written. Default true.
   */
  readonly claimed?: boolean | undefined
}

/** @category models @since 0.1.0 */
export interface ClaimRequest {
  readonly run: RunRef
  readonly leaseMs: number
  /** Recorded with the claim when it is `Claimed` (e.g. "enqueued" on a first attempt, "started"). */
  readonly audit: ReadonlyArray<AuditRecord>
}

/** A value SQLite can bind. @category models @since 0.1.0 */
export type SqlValue = string | number | bigint | boolean | null | Uint8Array

/**
 * What a handler's `atCommit` write gets: statements on the msgsys SQLite file, inside the
 * transaction that records the task's outcome and audit row.
 * @category models @since 0.1.0
 */
export interface Sql {
  readonly run: (sql: string, ...params: ReadonlyArray<SqlValue>) => { readonly changes: number }
  readonly get: <A = Record<string, unknown>>(sql: string, ...params: ReadonlyArray<SqlValue>) => A | undefined
  readonly all: <A = Record<string, unknown>>(sql: string, ...params: ReadonlyArray<SqlValue>) => ReadonlyArray<A>
}

/** @category models @since 0.1.0 */
export type Settlement =
  /**
   * The handler succeeded: its outcome (a JSON value), its audit rows and its own writes, stored
   * together — and only while this run still holds its key.
   */
  | {
    readonly _tag: "Complete"
    readonly run: RunRef
    readonly outcome: unknown
    readonly audit: ReadonlyArray<AuditRecord>
    readonly writes: ReadonlyArray<(sql: Sql) => void>
  }
  /**
   * A batch handler succeeded for several runs: every outcome, the rows and the handler's writes,
   * stored together — all of them only while every run still holds its key, or none.
   */
  | {
    readonly _tag: "CompleteAll"
    readonly runs: ReadonlyArray<RunRef>
    readonly outcomes: ReadonlyArray<unknown>
    readonly audit: ReadonlyArray<AuditRecord>
    readonly writes: ReadonlyArray<(sql: Sql) => void>
  }
  /** The run failed and will be retried (or was cancelled): free the key, record the rows. */
  | { readonly _tag: "Release"; readonly run: RunRef; readonly audit: ReadonlyArray<AuditRecord> }
  /** The run is dead for good: mark the stored message so it never runs again, record the rows. */
  | { readonly _tag: "MarkDead"; readonly run: RunRef; readonly verdict: unknown; readonly audit: ReadonlyArray<AuditRecord> }
  /** Rows only. */
  | { readonly _tag: "Record"; readonly audit: ReadonlyArray<AuditRecord> }

/** How one settlement ended. @category models @since 0.1.0 */
export type Settled =
  | { readonly _tag: "Stored" }
  /** Another run took the key over (this run's lease ran out): nothing was stored. */
  | { readonly _tag: "LeaseLost" }
  /** The handler's own writes threw: nothing of this settlement was stored. */
  | { readonly _tag: "WritesFailed"; readonly cause: unknown }

/** The store could not be read or written; the batch's messages are not settled and come back. @category errors @since 0.1.0 */
export class LedgerError extends Data.TaggedError("LedgerError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `ledger: ${this.operation} failed: ${why}. The messages stay unacknowledged and come back; ` +
      "check the idempotency store and the audit database"
  }
}

/** @category services @since 0.1.0 */
export class Ledger extends Context.Service<Ledger, {
  /** One answer per request, in order; audit rows are written only for `Claimed` runs. */
  readonly claim: (requests: ReadonlyArray<ClaimRequest>) => Effect.Effect<ReadonlyArray<Claim>, LedgerError>
  /**
   * What `claim` would answer for each run, without writing anything (one read per key). Present
   * when the ledger can settle a run that never claimed its key (`RunRef.claimed: false`): a run
   * that ends before it needs a lease then costs one transaction instead of two. A run that goes
   * on claims its key after all (the dispatcher does so well within `ack_wait`, before JetStream
   * could hand the message to another worker).
   */
  readonly check?: ((runs: ReadonlyArray<RunRef>) => Effect.Effect<ReadonlyArray<Claim>, LedgerError>) | undefined
  /** One answer per settlement, in order. */
  readonly settle: (items: ReadonlyArray<Settlement>) => Effect.Effect<ReadonlyArray<Settled>, LedgerError>
  /** Extends the leases of runs still held; false for a run whose key another took over. */
  readonly renew: (runs: ReadonlyArray<RunRef>, leaseMs: number) => Effect.Effect<ReadonlyArray<boolean>, LedgerError>
  /** Whether a committed audit row of `step` exists for the message. */
  readonly hasStep: (messageId: string, step: AuditStep) => Effect.Effect<boolean, LedgerError>
  /**
   * True when a run's outcome and its audit rows are stored in one step (nothing to reconcile
   * after a crash between them). False for a ledger built from separate stores.
   */
  readonly atomic: boolean
  /** True when handlers may write their own tables with the outcome (`atCommit`): SQLite only. */
  readonly writes: boolean
}>()("msgsys/Ledger") {}
