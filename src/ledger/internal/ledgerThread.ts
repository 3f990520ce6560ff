/**
 * The ledger's thread: its own connection to the msgsys SQLite file and its own group commit, so
 * the statements, the commit and SQLite's share of the checkpoint work run beside the dispatchers
 * instead of between them. It answers each call after the transaction holding it committed.
 * Loads no Effect (a few milliseconds to start instead of ~120).
 * @since 0.1.0
 */
import { Database } from "bun:sqlite"
import * as GroupCommit from "../../sqlite/GroupCommit.ts"
import * as SqliteFile from "../../sqlite/SqliteFile.ts"
import * as LedgerWrites from "../LedgerWrites.ts"
import type { Call, FromThread, ToThread } from "./wire.ts"

const port = globalThis as unknown as {
  onmessage: ((event: MessageEvent<ToThread>) => void) | null
  postMessage: (message: FromThread) => void
  close: () => void
}
const send = (message: FromThread) => port.postMessage(message)

let db: Database | undefined
let writes: LedgerWrites.LedgerWrites | undefined
let commit: GroupCommit.GroupCommit | undefined

const open = (m: Extract<ToThread, { kind: "open" }>) => {
  try {
    db = new Database(m.path, { readwrite: true, strict: true })
    db.run(`PRAGMA busy_timeout = ${m.busyTimeoutMs}`)
    db.run(`PRAGMA synchronous = ${m.synchronous === "full" ? "FULL" : "NORMAL"}`)
    db.run(`PRAGMA wal_autocheckpoint = ${m.autocheckpointPages}`)
    writes = LedgerWrites.prepare(db, m.writes)
    commit = GroupCommit.make(db, {
      busyLimitMs: m.busyLimitMs,
      onCommit: (operations, ms) => send({ kind: "commit", operations, ms })
    })
    send({ kind: "ready" })
  } catch (e) {
    try {
      db?.close(false)
    } catch {
      // nothing more to release
    }
    send({ kind: "failed", message: e instanceof Error ? e.message : String(e) })
  }
}

const run = (w: LedgerWrites.LedgerWrites, call: Call): unknown => {
  switch (call.op) {
    case "claim":
      return w.claim(call.requests as never, call.now)
    case "settle":
      return w.settle(call.items as never, call.now)
    case "renew":
      return w.renew(call.runs as never, call.leaseMs, call.now)
  }
}

const labels = { claim: "claiming runs", settle: "settling runs", renew: "renewing leases" } as const

port.onmessage = (event) => {
  const m = event.data
  switch (m.kind) {
    case "open":
      return open(m)
    case "call": {
      const call = JSON.parse(m.json) as Call
      if (commit === undefined || writes === undefined) {
        return send({ kind: "answer", id: call.id, ok: false, message: "the ledger thread has no open file", code: undefined })
      }
      const w = writes
      return commit.submit(labels[call.op], () => run(w, call), (r) => {
        if (r.ok) return send({ kind: "answer", id: call.id, ok: true, value: r.value })
        const cause = r.failure.cause
        send({
          kind: "answer",
          id: call.id,
          ok: false,
          message: cause instanceof Error ? cause.message : String(cause),
          code: SqliteFile.errorCode(cause)
        })
      })
    }
    case "close":
      return void (commit?.close() ?? Promise.resolve()).then(() => {
        try {
          db?.close(false)
        } finally {
          send({ kind: "closed" })
          port.close()
        }
      })
  }
}
