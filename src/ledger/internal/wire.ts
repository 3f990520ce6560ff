/**
 * What the ledger's thread and the thread that dispatches say to each other. Calls travel as one
 * JSON text (measured: a quarter of the sender's time that a structured clone of the same objects
 * takes); a handler's `atCommit` writes, being code, never travel: settlements with writes stay
 * on the dispatching thread.
 * @since 0.1.0
 */
import type { Synchronous } from "../../sqlite/SqliteFile.ts"
import type { Options } from "../LedgerWrites.ts"

/** @since 0.1.0 */
export type ToThread =
  | {
    readonly kind: "open"
    readonly path: string
    readonly synchronous: Synchronous
    readonly busyTimeoutMs: number
    /** How long a batch waits for another connection's lock before it fails. */
    readonly busyLimitMs: number
    /** The connection's automatic checkpoint, in pages (the checkpoint thread does the rest). */
    readonly autocheckpointPages: number
    readonly writes: Options
  }
  /** `Call` as JSON. */
  | { readonly kind: "call"; readonly json: string }
  | { readonly kind: "close" }

/** @since 0.1.0 */
export type Call =
  | { readonly id: number; readonly op: "claim"; readonly now: number; readonly requests: ReadonlyArray<unknown> }
  | { readonly id: number; readonly op: "settle"; readonly now: number; readonly items: ReadonlyArray<unknown> }
  | { readonly id: number; readonly op: "renew"; readonly now: number; readonly leaseMs: number; readonly runs: ReadonlyArray<unknown> }

/** @since 0.1.0 */
export type FromThread =
  | { readonly kind: "ready" }
  /** The file could not be opened there: the ledger writes on the dispatching thread. */
  | { readonly kind: "failed"; readonly message: string }
  | { readonly kind: "answer"; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly kind: "answer"; readonly id: number; readonly ok: false; readonly message: string; readonly code: string | undefined }
  | { readonly kind: "commit"; readonly operations: number; readonly ms: number }
  | { readonly kind: "closed" }
