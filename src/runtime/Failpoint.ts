/**
 * Failpoints: named places in the runtime where a test can make the process die on purpose
 * (SIGKILL itself), to prove what survives a crash at exactly that step. Off unless the
 * `MSGSYS_FAILPOINTS` environment variable lists the name; reading it costs one Set lookup.
 * @since 0.1.0
 */
import { Effect } from "effect"

/** The places that can fail. @category models @since 0.1.0 */
export type Name =
  /** After the handler's outcome is stored in the idempotency store, before the audit commit and the ack. */
  | "after-outcome-stored"
  /** After the audit row committed, before the ack. */
  | "before-ack"

const enabled = new Set((process.env.MSGSYS_FAILPOINTS ?? "").split(",").map((s) => s.trim()).filter(Boolean))

/** Kills the process with SIGKILL when `name` is enabled. @category failing @since 0.1.0 */
export const hit = (name: Name): Effect.Effect<void> =>
  enabled.size === 0 || !enabled.has(name)
    ? Effect.void
    : Effect.sync(() => {
      process.kill(process.pid, "SIGKILL")
    })
