/**
 * A msgsys worker process for the latency and memory sections: one actor, audit and idempotency
 * in SQLite, results stored. Handlers:
 * - latency: note (now - input.sentAt) at handler start; report all after `total` tasks;
 * - hold: count, then wait for the parent's "release" (slow tasks held in flight).
 * Messages: ready; done {latencies} | holding {count}. Commands: release, stop.
 */
import { Deferred, Effect } from "effect"
import * as Io from "../support/childIo.ts"
import { now } from "../support/clock.ts"
import * as Runtime from "../support/runtime.ts"

interface Settings {
  readonly url: string
  readonly dir: string
  readonly prefix: string
  readonly actor: string
  readonly concurrency: number
  readonly mode: "latency" | "hold"
  readonly total: number
  /** Latency mode: tasks with n below this are warm-up and not reported. */
  readonly warmup: number
}

Io.run(async () => {
  const s = Io.settings<Settings>()
  const latencies: Array<number> = []
  let started = 0
  const release = Deferred.makeUnsafe<void>()
  const handler = s.mode === "latency"
    ? (input: Runtime.BenchInput) =>
      Effect.sync(() => {
        const at = now()
        if (input.n >= s.warmup) latencies.push(at - input.sentAt)
        if (++started === s.total) Io.emit({ type: "done", latencies })
      })
    : () =>
      Effect.suspend(() => {
        if (++started === s.total) Io.emit({ type: "holding", count: started })
        return Deferred.await(release)
      })
  const runtime = await Runtime.make({
    url: s.url,
    dir: s.dir,
    prefix: s.prefix,
    actor: s.actor,
    concurrency: s.concurrency,
    audit: true,
    results: true,
    handler
  })
  Io.on("release", () => Deferred.doneUnsafe(release, Effect.void))
  Io.on("stop", () => {
    runtime.close().then(() => process.exit(0), (e: unknown) => {
      console.error(e)
      process.exit(1)
    })
  })
  Io.emit({ type: "ready" })
})
