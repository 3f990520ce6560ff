/** An open-loop sender: a fixed schedule that never waits for earlier sends (no coordinated omission). */
import { now } from "./clock.ts"

export interface Paced {
  /** From the first send to the last one's completion. */
  readonly seconds: number
  /** Sends per second actually achieved, over the schedule. */
  readonly rate: number
  /** The latest a send left behind its slot (a busy event loop). */
  readonly maxLagMs: number
  readonly failures: number
  readonly firstError: string | undefined
}

/** Calls `send(i)` for i in [0, total) at `rate` per second, each on its slot, without awaiting earlier ones. */
export const paced = async (rate: number, total: number, send: (i: number) => Promise<unknown>): Promise<Paced> => {
  const interval = 1000 / rate
  const pending = new Set<Promise<unknown>>()
  let failures = 0
  let firstError: string | undefined
  let maxLagMs = 0
  const start = now()
  for (let i = 0; i < total; i++) {
    const due = start + i * interval
    let t = now()
    if (t < due) {
      await Bun.sleep(due - t)
      t = now()
    }
    maxLagMs = Math.max(maxLagMs, t - due)
    const p: Promise<unknown> = send(i).catch((e: unknown) => {
      failures++
      firstError ??= e instanceof Error ? e.message : String(e)
    }).finally(() => pending.delete(p))
    pending.add(p)
  }
  const scheduleSeconds = (now() - start) / 1000
  await Promise.all(pending)
  return { seconds: (now() - start) / 1000, rate: total / scheduleSeconds, maxLagMs, failures, firstError }
}
