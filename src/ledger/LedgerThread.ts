/**
 * The ledger's writes on a thread of their own. A worker's SQLite work — the key rows, the audit
 * rows, the commit — took about 20 µs per task on the thread that also dispatches, delivers and
 * acks; here the dispatching thread only turns each batch into JSON (2-4 µs per task) and the
 * ledger's thread (src/ledger/internal/ledgerThread.ts), with its own connection and group commit,
 * does the rest. Every answer still comes after the commit, so a message is acked only after its
 * outcome and audit rows are stored (guarantee 1 is unchanged).
 *
 * The thread is an optimisation, never a dependency: until it answers "ready", after it fails, or
 * where it cannot start (a compiled executable built without its entry point), `ready()` is false
 * and the ledger writes on the dispatching thread as before. Calls in flight when the thread dies
 * fail; their messages are not acked and come back.
 * @since 0.1.0
 */
import { Effect, type Scope } from "effect"
import type { AuditRecord } from "../audit/AuditLog.ts"
import type { RenderedRecord } from "../audit/AuditRows.ts"
import { fieldSet, payloadText } from "../audit/internal/redact.ts"
import type { Claim } from "../idempotency/Idempotency.ts"
import type { Synchronous } from "../sqlite/SqliteFile.ts"
import type { Call, FromThread, ToThread } from "./internal/wire.ts"
import { type ClaimRequest, LedgerError, type RunRef, type Settled, type Settlement } from "./Ledger.ts"
import type * as LedgerWrites from "./LedgerWrites.ts"

/** @category models @since 0.1.0 */
export interface Options {
  readonly path: string
  readonly synchronous: Synchronous
  readonly busyTimeoutMs: number
  readonly busyLimitMs: number
  readonly autocheckpointPages: number
  readonly writes: LedgerWrites.Options
  /** Called after each of the thread's commits (metrics). */
  readonly onCommit?: ((operations: number, ms: number) => void) | undefined
  /** How long closing waits for calls in flight and the thread's last commit. Default 10 s. */
  readonly closeTimeoutMs?: number | undefined
}

/** @category models @since 0.1.0 */
export interface LedgerThread {
  /** True while the thread takes calls; false before it is ready, after it failed, or when it never started. */
  readonly ready: () => boolean
  /** Settlements here carry no `writes` (code cannot travel): those settle on the dispatching thread. */
  readonly claim: (requests: ReadonlyArray<ClaimRequest>, now: number) => Effect.Effect<ReadonlyArray<Claim>, LedgerError>
  readonly settle: (items: ReadonlyArray<Settlement>, now: number) => Effect.Effect<ReadonlyArray<Settled>, LedgerError>
  readonly renew: (runs: ReadonlyArray<RunRef>, leaseMs: number, now: number) => Effect.Effect<ReadonlyArray<boolean>, LedgerError>
}

/** A SQLite failure that happened on the ledger's thread, with its result code. @category errors @since 0.1.0 */
export class ThreadFailure extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message)
    this.name = "ThreadFailure"
  }
}

type Answer = (outcome: { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly cause: unknown }) => void

// The thread's module, resolved beside this one: from the source tree, or from a compiled
// executable when the build lists it as an entry point (scripts/build does).
const threadUrl = new URL("./internal/ledgerThread.ts", import.meta.url)

/**
 * Starts the thread for the file at `options.path` and stops it when the scope closes (after the
 * calls in flight are answered). Never fails: a thread that cannot start leaves `ready()` false.
 * @category constructors @since 0.1.0
 */
export const start = (options: Options): Effect.Effect<LedgerThread, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const warn = (message: string) => Effect.runForkWith(context)(Effect.logWarning(message))
    const debug = (message: string) => Effect.runForkWith(context)(Effect.logDebug(message))
    const pending = new Map<number, Answer>()
    let nextId = 1
    let state: "starting" | "ready" | "off" | "closing" = "starting"
    let drained: (() => void) | undefined
    let closed: (() => void) | undefined

    const stop = (why: string) => {
      if (state === "off") return
      const wasClosing = state === "closing"
      state = "off"
      const failed = [...pending.values()]
      pending.clear()
      for (const answer of failed) answer({ ok: false, cause: new Error(why) })
      drained?.()
      closed?.()
      if (!wasClosing) warn(`SQLite ledger: ${why}; its writes go on on the dispatching thread`)
    }

    const worker = yield* Effect.sync(() => {
      try {
        return new Worker(threadUrl)
      } catch (e) {
        state = "off"
        warn(`SQLite ledger: its thread could not start (${e instanceof Error ? e.message : String(e)}); ` +
          "it writes on the dispatching thread")
        return undefined
      }
    })

    if (worker !== undefined) {
      worker.unref()
      worker.onmessage = (event: MessageEvent<FromThread>) => {
        const m = event.data
        switch (m.kind) {
          case "ready":
            if (state !== "starting") return
            state = "ready"
            return debug(`SQLite ledger: writes to ${options.path} run on their own thread`)
          case "failed":
            return stop(`its thread could not open the file (${m.message})`)
          case "commit":
            return options.onCommit?.(m.operations, m.ms)
          case "answer": {
            const answer = pending.get(m.id)
            if (answer === undefined) return
            pending.delete(m.id)
            answer(m.ok ? { ok: true, value: m.value } : { ok: false, cause: new ThreadFailure(m.message, m.code) })
            if (pending.size === 0) drained?.()
            return
          }
          case "closed":
            return closed?.()
        }
      }
      worker.onerror = (event) => stop(`its thread failed (${event.message})`)
      worker.addEventListener("close", () => stop("its thread stopped"))
      const open: ToThread = {
        kind: "open",
        path: options.path,
        synchronous: options.synchronous,
        busyTimeoutMs: options.busyTimeoutMs,
        busyLimitMs: options.busyLimitMs,
        autocheckpointPages: options.autocheckpointPages,
        writes: { audit: options.writes.audit, payload: options.writes.payload, redactFields: options.writes.redactFields }
      }
      worker.postMessage(open)

      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          if (state === "off") return worker.terminate()
          state = "closing"
          const timeoutMs = options.closeTimeoutMs ?? 10_000
          const within = (p: Promise<void>) =>
            Promise.race([p, new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref())])
          if (pending.size > 0) await within(new Promise<void>((resolve) => (drained = resolve)))
          const done = new Promise<void>((resolve) => (closed = resolve))
          worker.postMessage({ kind: "close" } satisfies ToThread)
          await within(done)
          state = "off"
          worker.terminate()
        })
      )
    }

    const mode = options.writes.payload
    const fields = fieldSet(options.writes.redactFields)
    // the payload becomes its stored text here: the thread never sees decoded values
    const render = (records: ReadonlyArray<AuditRecord>): ReadonlyArray<RenderedRecord> =>
      records.map((r) =>
        r.payload === undefined
          ? r
          : mode === "off"
          ? { ...r, payload: undefined }
          : { ...r, payload: undefined, payloadText: payloadText(r.payload, mode, fields) }
      )

    const call = <A>(operation: string, make: (id: number) => Call) =>
      Effect.callback<A, LedgerError>((resume) => {
        const fail = (cause: unknown) => resume(Effect.fail(new LedgerError({ operation, cause })))
        if (worker === undefined || state !== "ready") return fail(new Error("the ledger thread is not running"))
        const id = nextId++
        let json: string
        try {
          json = JSON.stringify(make(id))
        } catch (cause) {
          return fail(cause)
        }
        pending.set(id, (outcome) => outcome.ok ? resume(Effect.succeed(outcome.value as A)) : fail(outcome.cause))
        worker.postMessage({ kind: "call", json } satisfies ToThread)
      })

    return {
      ready: () => state === "ready",
      claim: (requests, now) =>
        call("claiming runs", (id) => ({
          id,
          op: "claim",
          now,
          requests: requests.map((r) => ({ run: r.run, leaseMs: r.leaseMs, audit: render(r.audit) }))
        })),
      settle: (items, now) =>
        call("settling runs", (id) => ({
          id,
          op: "settle",
          now,
          items: items.map((item) => {
            switch (item._tag) {
              case "Complete":
                return { _tag: item._tag, run: item.run, outcome: item.outcome, audit: render(item.audit), writes: [] }
              case "CompleteAll":
                return { _tag: item._tag, runs: item.runs, outcomes: item.outcomes, audit: render(item.audit), writes: [] }
              default:
                return { ...item, audit: render(item.audit) }
            }
          })
        })),
      renew: (runs, leaseMs, now) => call("renewing leases", (id) => ({ id, op: "renew", now, leaseMs, runs }))
    }
  })
