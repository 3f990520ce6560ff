/**
 * A ledger built from an `Idempotency` store and an `AuditLog`, for when they do not share a
 * transaction: keys in NATS KV (workers on many hosts), or an audit log of the program's own.
 * Each step still waits for both stores, but a task's outcome and its audit row are two writes:
 * a crash between them leaves a stored, unaudited outcome that the dispatcher reconciles on the
 * redelivery (it is not `atomic`, and handlers cannot write through `atCommit`).
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { AuditLog } from "../audit/AuditLog.ts"
import * as Failpoint from "../failpoint/Failpoint.ts"
import { Idempotency } from "../idempotency/Idempotency.ts"
import { Ledger, LedgerError, type Settled, type Settlement } from "./Ledger.ts"

const STORED: Settled = { _tag: "Stored" }

/** @category models @since 0.1.0 */
export interface Options {
  /**
   * Calls to the stores in flight at once within a batch. Default unbounded: a remote store (NATS
   * KV) answers in parallel. In-memory stores answer at once: 1 saves a fiber per message.
   */
  readonly concurrency?: number | "unbounded"
}

/** @category constructors @since 0.1.0 */
export const makeWith = (options: Options = {}) => Effect.gen(function*() {
  const concurrency = options.concurrency ?? "unbounded"
  const idempotency = yield* Idempotency
  const audit = yield* AuditLog
  const fail = (operation: string) => (cause: unknown) => new LedgerError({ operation, cause })
  const leaseOf = (ms: number) => `${Math.max(1, Math.round(ms))} millis` as const

  const settleOne = (item: Settlement): Effect.Effect<Settled, unknown> => {
    switch (item._tag) {
      case "Record":
        return Effect.as(audit.recordAll(item.audit), STORED)
      case "Release":
        return idempotency.release(item.run.key, item.run.owner).pipe(
          Effect.andThen(audit.recordAll(item.audit)),
          Effect.as(STORED)
        )
      case "MarkDead":
        return idempotency.markDead(item.run.key, item.run.owner, item.run.sequence, item.verdict).pipe(
          Effect.andThen(audit.recordAll(item.audit)),
          Effect.as(STORED)
        )
      case "CompleteAll":
        if (item.writes.length > 0) {
          return Effect.die(
            new Error("atCommit writes need the SQLite ledger: set MSGSYS_IDEMPOTENCY_STORE=sqlite (the default)")
          )
        }
        return Effect.forEach(item.runs, (run, i) => idempotency.complete(run.key, run.owner, item.outcomes[i]), {
          discard: true
        }).pipe(Effect.andThen(audit.recordAll(item.audit)), Effect.as(STORED))
      case "Complete":
        if (item.writes.length > 0) {
          return Effect.die(
            new Error("atCommit writes need the SQLite ledger: set MSGSYS_IDEMPOTENCY_STORE=sqlite (the default)")
          )
        }
        return idempotency.complete(item.run.key, item.run.owner, item.outcome).pipe(
          Effect.andThen(Failpoint.hit("after-outcome-stored")),
          Effect.andThen(audit.recordAll(item.audit)),
          Effect.as(STORED)
        )
    }
  }

  return Ledger.of({
    atomic: false,
    writes: false,
    claim: (requests) =>
      Effect.forEach(requests, (r) =>
        idempotency.claim(r.run.key, r.run.owner, leaseOf(r.leaseMs), r.run.sequence).pipe(
          Effect.tap((claim) => claim._tag === "Claimed" ? audit.recordAll(r.audit) : Effect.void)
        ), { concurrency }).pipe(Effect.mapError(fail("claiming runs"))),
    settle: (items) =>
      Effect.forEach(items, settleOne, { concurrency }).pipe(Effect.mapError(fail("settling runs"))),
    renew: (runs, leaseMs) =>
      Effect.forEach(runs, (r) => idempotency.renew(r.key, r.owner, leaseOf(leaseMs)), { concurrency }).pipe(
        Effect.mapError(fail("renewing leases"))
      ),
    hasStep: (messageId, step) => audit.hasStep(messageId, step).pipe(Effect.mapError(fail("looking up an audit step")))
  })
})

/** @category constructors @since 0.1.0 */
export const make = makeWith()

/** @category layers @since 0.1.0 */
export const layer: Layer.Layer<Ledger, never, Idempotency | AuditLog> = Layer.effect(Ledger, make)
