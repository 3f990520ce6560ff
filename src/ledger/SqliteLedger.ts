/**
 * The ledger in the msgsys SQLite file: idempotency keys and audit rows in the same file, each
 * batch of claims or settlements ONE operation of a group commit (so several actors' batches share
 * a transaction too). A task's outcome, its audit row and the handler's own `atCommit` writes
 * commit together or not at all.
 *
 * Where the file is on disk the writes run on the ledger's own thread (`LedgerThread`), except
 * settlements carrying a handler's `atCommit` writes (code, which stays here) and whatever comes
 * while that thread is not ready; reads (`check`, `hasStep`) stay on this thread's connection.
 * @since 0.1.0
 */
import { Clock, Effect, Layer } from "effect"
import type { AuditStep } from "../audit/AuditLog.ts"
import * as Database from "../sqlite/Database.ts"
import * as Writer from "../sqlite/Writer.ts"
import { Ledger, LedgerError, type Settled, type Settlement } from "./Ledger.ts"
import * as LedgerThread from "./LedgerThread.ts"
import * as LedgerWrites from "./LedgerWrites.ts"

/** @category models @since 0.1.0 */
export interface Options extends LedgerWrites.Options {
  /** Writes on the ledger's own thread when the file is on disk (default true); false keeps them here. */
  readonly thread?: boolean | undefined
}

/**
 * Builds the ledger on the `Database`.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("SqliteLedger.make")(function*(options: Options) {
  const db = yield* Database.Database
  const writes = yield* Effect.orDie(db.use("preparing the ledger", (handle) => LedgerWrites.prepare(handle, options)))
  const onDisk = db.path !== ":memory:" && db.path !== ""
  const thread = options.thread !== false && onDisk
    ? yield* LedgerThread.start({
      path: db.path,
      synchronous: db.synchronous,
      busyTimeoutMs: db.busyTimeoutMs,
      busyLimitMs: db.lockWaitMs,
      autocheckpointPages: db.handle.query<{ wal_autocheckpoint: number }, []>("PRAGMA wal_autocheckpoint").get()
        ?.wal_autocheckpoint ?? 1000,
      writes: options,
      onCommit: Writer.metricsReporter(yield* Effect.context<never>())
    })
    : undefined
  const onThread = () => thread !== undefined && thread.ready()

  const fail = (operation: string) => (e: { readonly cause: unknown }) => new LedgerError({ operation, cause: e.cause })
  const here = <A>(operation: string, run: () => A) => db.writer.write(operation, run).pipe(Effect.mapError(fail(operation)))
  const read = <A>(operation: string, run: () => A) =>
    db.use(operation, run).pipe(Effect.mapError((e) => new LedgerError({ operation, cause: e })))

  const hasWrites = (item: Settlement) => (item._tag === "Complete" || item._tag === "CompleteAll") && item.writes.length > 0

  /** Settlements with writes here, the others on the thread, answers in the order asked. */
  const settleSplit = (items: ReadonlyArray<Settlement>, now: number) => {
    const local: Array<number> = []
    const remote: Array<number> = []
    items.forEach((item, i) => (hasWrites(item) ? local : remote).push(i))
    if (local.length === 0) return thread!.settle(items, now)
    const pick = (at: ReadonlyArray<number>) => at.map((i) => items[i]!)
    return Effect.map(
      Effect.all([
        remote.length === 0 ? Effect.succeed([]) : thread!.settle(pick(remote), now),
        here("settling runs", () => writes.settle(pick(local), now))
      ], { concurrency: 2 }),
      ([fromThread, fromHere]) => {
        const out = new Array<Settled>(items.length)
        remote.forEach((at, i) => (out[at] = fromThread[i]!))
        local.forEach((at, i) => (out[at] = fromHere[i]!))
        return out
      }
    )
  }

  return Ledger.of({
    atomic: true,
    writes: true,
    claim: (requests) =>
      requests.length === 0 ? Effect.succeed([]) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        onThread() ? thread!.claim(requests, now) : here("claiming runs", () => writes.claim(requests, now))),
    check: (runs) =>
      runs.length === 0 ? Effect.succeed([]) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        read("checking keys", () => runs.map((r) => writes.keys.check(r.key, r.owner, now, r.sequence)))),
    settle: (items) =>
      items.length === 0 ? Effect.succeed([]) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        onThread() ? settleSplit(items, now) : here("settling runs", () => writes.settle(items, now))),
    renew: (runs, leaseMs) =>
      runs.length === 0 ? Effect.succeed([]) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        onThread() ? thread!.renew(runs, leaseMs, now) : here("renewing leases", () => writes.renew(runs, leaseMs, now))),
    hasStep: (messageId: string, step: AuditStep) => read("looking up an audit step", () => writes.rows.hasStep(messageId, step))
  })
})

/** The fused ledger as a layer over the `Database`. @category layers @since 0.1.0 */
export const layer = (options: Options): Layer.Layer<Ledger, never, Database.Database> =>
  Layer.effect(Ledger, make(options))
