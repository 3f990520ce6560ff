/**
 * Failpoints: named places in the runtime where a test can make the process die on purpose
 * (SIGKILL itself), to prove what survives a crash at exactly that step. Off unless the
 * `MSGSYS_FAILPOINTS` environment variable lists the name; reading it costs one Set lookup.
 * @since 0.1.0
 */
import { Effect } from "effect"

/** The places that can fail. @category models @since 0.1.0 */
export type Name =
  /**
   * With separate stores (a KV idempotency store): after the outcome is stored, before its audit
   * row commits.
   */
  | "after-outcome-stored"
  /** After the outcome and its audit row committed, before the final status is stored. */
  | "after-commit"
  /** After the final status is stored (or with no result to store), before the ack. */
  | "before-ack"
  /** A dead letter's replay was stored in its task stream; the letter is not deleted yet. */
  | "dlq-after-replay"
  /** A pipeline step: after its outcome and status are stored, before its next step is enqueued. */
  | "before-continue"

const enabled = new Set((process.env.MSGSYS_FAILPOINTS ?? "").split(",").map((s) => s.trim()).filter(Boolean))

/** Kills the process with SIGKILL when `name` is enabled; synchronous, for hot paths. @category failing @since 0.1.0 */
export const hitUnsafe = (name: Name): void => {
  if (enabled.size !== 0 && enabled.has(name)) process.kill(process.pid, "SIGKILL")
}

/** Kills the process with SIGKILL when `name` is enabled. @category failing @since 0.1.0 */
export const hit = (name: Name): Effect.Effect<void> =>
  enabled.size === 0 || !enabled.has(name) ? Effect.void : Effect.sync(() => hitUnsafe(name))
