/**
 * Whether a worker can do its work now, for `/readyz`: the NATS connection answers, every
 * actor's consume loop is running (its consumers are bound; a loop waiting for a restart is
 * not), the SQLite file takes a write, and the dead-letter stream has not refused a letter
 * lately (a full one keeps messages in their task streams: see `DeadLetters.DeadLetterStreamFull`).
 * Each check is bounded in time, so a probe answers even when a part hangs.
 * @since 0.1.0
 */
import { Clock, type Context, Duration, Effect, Metric, Option } from "effect"
import { Nats } from "../broker/Nats.ts"
import * as DeadLetters from "../dlq/DeadLetters.ts"
import { describeFailure } from "../trace/Logging.ts"
import { Worker } from "../runtime/Worker.ts"
import { Database } from "../sqlite/Database.ts"

/** One check's answer. @category models @since 0.1.0 */
export interface Check {
  readonly name: "nats" | "consumers" | "sqlite" | "dead-letters"
  readonly ok: boolean
  readonly detail: string
}

/** @category models @since 0.1.0 */
export interface Readiness {
  readonly ready: boolean
  readonly checks: ReadonlyArray<Check>
}

/** How long one check may take before it counts as failed. @category constants @since 0.1.0 */
export const checkTimeout: Duration.Duration = Duration.seconds(2)

/**
 * How long after the dead-letter stream refused a letter the worker stays not ready: twice the
 * time a refused message waits before it is tried again, so a stream that stays full keeps it
 * not ready, and one that has room again makes it ready within this.
 * @category constants @since 0.1.0
 */
export const refusalWindow: Duration.Duration = Duration.times(DeadLetters.retryWhenFull, 2)

const bounded = (name: Check["name"], check: Effect.Effect<Check, unknown>, slow: string): Effect.Effect<Check> =>
  check.pipe(
    Effect.timeoutOption(checkTimeout),
    Effect.map(Option.getOrElse((): Check => ({ name, ok: false, detail: `no answer within ${Duration.format(checkTimeout)}: ${slow}` }))),
    Effect.catchCause((cause) => Effect.succeed<Check>({ name, ok: false, detail: describeFailure(cause) }))
  )

/**
 * The dead-letter refusals counted so far for `actors` (the counter is per process; another
 * runtime in the same process counts its own actors).
 */
const refusalsSoFar = (context: Context.Context<never>, actors: ReadonlySet<string>) =>
  Metric.snapshotUnsafe(context)
    .filter((s) => s.id === DeadLetters.refusedCounter.id && s.type === "Counter" && actors.has(s.attributes?.actor ?? ""))
    .reduce((n, s) => n + Number((s.state as { count: number | bigint }).count), 0)

/**
 * A readiness probe for this worker. It remembers when it last saw the refusal count grow, so
 * call the same probe for every request.
 * @category constructors @since 0.1.0
 */
export const makeProbe = Effect.gen(function*() {
  const nats = yield* Nats
  const worker = yield* Worker
  const db = yield* Database
  const context = yield* Effect.context<never>()
  const actors = new Set(worker.actors)
  let refusals = 0
  let refusedAt: number | undefined

  const natsCheck = bounded(
    "nats",
    Effect.tryPromise(() =>
      nats.connection.isClosed()
        ? Promise.reject(new Error("the connection is closed"))
        // a flush would wait for the reconnect, up to the check's bound
        : !nats.connected()
        ? Promise.reject(new Error(`disconnected from ${nats.connection.getServer()}; reconnecting`))
        : nats.connection.flush()
    )
      .pipe(Effect.as<Check>({ name: "nats", ok: true, detail: `connected to ${nats.connection.getServer()}` })),
    `the NATS server ${nats.connection.getServer()} does not answer (disconnected, reconnecting)`
  )

  const consumersCheck = Effect.map(worker.state, (actors): Check => {
    const down = actors.filter((a) => !a.consuming).map((a) => a.name)
    return down.length === 0
      ? { name: "consumers", ok: true, detail: `consuming for ${actors.map((a) => a.name).join(", ")}` }
      : { name: "consumers", ok: false, detail: `the consume loop of ${down.join(", ")} is not running (restarting)` }
  })

  // a write through the writer: the file is open, writable, and no other process holds its lock for long
  const sqliteCheck = bounded(
    "sqlite",
    db.writer.flush.pipe(
      Effect.as<Check>({ name: "sqlite", ok: true, detail: `${db.path} takes writes` }),
      Effect.catch((e) =>
        Effect.succeed<Check>({ name: "sqlite", ok: false, detail: `${db.path}: ${e.cause instanceof Error ? e.cause.message : String(e.cause)}` })
      )
    ),
    `a write to ${db.path} waits: another process holds its write lock`
  )

  const deadLettersCheck = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const count = refusalsSoFar(context, actors)
    if (count !== refusals) {
      refusals = count
      refusedAt = now
    }
    const window = Duration.toMillis(refusalWindow)
    return refusedAt !== undefined && now - refusedAt < window
      ? {
        name: "dead-letters",
        ok: false,
        detail: `the dead-letter stream refused letters in the last ${Duration.format(refusalWindow)} (it is full): ` +
          "replay or delete dead letters, or raise MSGSYS_DLQ_MAX_BYTES"
      } satisfies Check
      : { name: "dead-letters", ok: true, detail: "the dead-letter stream takes letters" } satisfies Check
  })

  return Effect.all([natsCheck, consumersCheck, sqliteCheck, deadLettersCheck], { concurrency: "unbounded" }).pipe(
    Effect.map((checks): Readiness => ({ ready: checks.every((c) => c.ok), checks }))
  )
})

/** The text `/readyz` answers: `ready` or `not ready`, then one line per check. @category rendering @since 0.1.0 */
export const render = (r: Readiness): string =>
  [r.ready ? "ready" : "not ready", ...r.checks.map((c) => `${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`)].join("\n") + "\n"
