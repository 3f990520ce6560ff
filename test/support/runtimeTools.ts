/**
 * Helpers for in-process integration tests of the runtime: run a test body in a scope with its
 * logs captured, define one-actor apps without fighting the handler types, read dead letters,
 * stream and consumer state and audit rows, and poll until a condition holds.
 */
import { Database } from "bun:sqlite"
import { Clock, Context, Duration, Effect, Layer, Logger, References, Schedule, type Scope } from "effect"
import type * as Actor from "../../src/actor/Actor.ts"
import * as Nats from "../../src/broker/Nats.ts"
import * as Pull from "../../src/broker/Pull.ts"
import * as Subjects from "../../src/broker/Subjects.ts"
import type * as MsgsysConfig from "../../src/config/MsgsysConfig.ts"
import type * as DeadLetter from "../../src/dlq/DeadLetter.ts"
import * as DeadLetters from "../../src/dlq/DeadLetters.ts"
import { ExhaustedStore } from "../../src/dlq/ExhaustedStore.ts"
import * as Pipelines from "../../src/pipeline/Pipelines.ts"
import * as App from "../../src/app/App.ts"
import * as Control from "../../src/control/Control.ts"
import * as Worker from "../../src/runtime/Worker.ts"
import * as Client from "../../src/client/Client.ts"
import * as Results from "../../src/task/Results.ts"
import type * as Task from "../../src/task/Task.ts"
import { startRuntime } from "./runtime.ts"

/** One captured log line. */
export interface LogLine {
  readonly level: string
  readonly message: string
  /** The line's log annotations (a message's id, subject, trace id...). */
  readonly annotations: Readonly<Record<string, unknown>>
}

const render = (m: unknown): string =>
  Array.isArray(m) ? m.map(render).join(" ") : typeof m === "string" ? m : String(m)

/**
 * A logger that keeps every line in `into` and prints warnings and errors (everything when
 * MSGSYS_TEST_LOGS=1), so test output stays readable.
 */
export const captureLogs = (into: Array<LogLine> = []) => {
  const verbose = process.env.MSGSYS_TEST_LOGS === "1"
  return Logger.layer([
    Logger.make((o) => {
      const line = { level: o.logLevel, message: render(o.message), annotations: o.fiber.getRef(References.CurrentLogAnnotations) }
      into.push(line)
      if (verbose || o.logLevel === "Error" || o.logLevel === "Fatal") {
        console.error(`[${line.level}] ${line.message}`)
      }
    })
  ])
}

/** Runs a test body in a scope (closed at the end: the runtime shuts down) with logs captured. */
export const runTest = <A, E>(body: Effect.Effect<A, E, Scope.Scope>, logs: Array<LogLine> = []): Promise<A> =>
  Effect.runPromise(Effect.scoped(body).pipe(Effect.provide(captureLogs(logs))))

/** A handler as the tests write it: any request to any effect. */
export type AnyHandler = (request: Actor.Request<Task.Any>) => Effect.Effect<unknown, unknown>

/** The handlers layer of one actor, from a record keyed by subject. */
export const handlersOf = (actor: Actor.Any, handlers: Readonly<Record<string, AnyHandler>>) =>
  actor.toLayer(handlers as never) as Layer.Layer<Actor.HandlersOf<string>>

/** An app of the given actors with their handler records. */
export const appOf = (...entries: ReadonlyArray<readonly [Actor.Any, Readonly<Record<string, AnyHandler>>]>) =>
  App.make({
    actors: entries.map(([a]) => a),
    handlers: Layer.mergeAll(...entries.map(([a, hs]) => handlersOf(a, hs)) as [Layer.Layer<Actor.HandlersOf<string>>])
  })

/** The services a test uses, from a started runtime. */
export interface Runtime {
  readonly client: Client.Client["Service"]
  readonly pipelines: Pipelines.Pipelines["Service"]
  readonly worker: Worker.Worker["Service"]
  readonly nats: Nats.Nats["Service"]
  readonly control: Control.Control["Service"]
  readonly results: Results.Results["Service"]
  /** Exhausted dead letters, in the runtime's SQLite file. */
  readonly exhausted: ExhaustedStore["Service"]
  readonly names: Subjects.Names
  readonly settings: MsgsysConfig.MsgsysSettings
}

/** Starts the runtime for `app` in the current scope and returns its services. */
export const start = <Actors extends ReadonlyArray<Actor.Any>, E>(
  app: App.App<Actors, E>,
  settings: MsgsysConfig.MsgsysSettings
): Effect.Effect<Runtime, unknown, Scope.Scope> =>
  Effect.map(startRuntime(app, settings), (ctx) => ({
    client: Context.get(ctx, Client.Client),
    pipelines: Context.get(ctx, Pipelines.Pipelines),
    worker: Context.get(ctx, Worker.Worker),
    nats: Context.get(ctx, Nats.Nats),
    control: Context.get(ctx, Control.Control),
    results: Context.get(ctx, Results.Results),
    exhausted: Context.get(ctx, ExhaustedStore),
    names: Subjects.make(settings.streamPrefix),
    settings
  }))

/** Polls `check` every `interval` until it is true; dies naming `what` after `timeout`. */
export const waitFor = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  timeout: Duration.Input = "10 seconds",
  interval: Duration.Input = "25 millis"
): Effect.Effect<void, E, R> =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced(interval), until: (ok: boolean) => ok }),
    Effect.asVoid,
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.die(new Error(`timed out after ${Duration.format(Duration.fromInputUnsafe(timeout))} waiting for ${what}`))
    })
  )

/** Milliseconds on the Effect clock. */
export const now = Clock.currentTimeMillis

/** Messages stored in a stream now. */
export const streamCount = (rt: Runtime, stream: string) =>
  Effect.promise(() => rt.nats.manager.streams.info(stream)).pipe(Effect.map((i) => i.state.messages))

/** Messages stored in an actor's task stream now. */
export const taskCount = (rt: Runtime, actor: string) => streamCount(rt, rt.names.taskStream(actor))

/** Unacknowledged messages held by an actor's high, normal and low consumers together. */
export const ackPending = (rt: Runtime, actor: string) =>
  Effect.forEach(Subjects.priorities, (p) =>
    Effect.promise(() => rt.nats.manager.consumers.info(rt.names.taskStream(actor), rt.names.taskConsumer(actor, p)))
  ).pipe(Effect.map((infos) => infos.reduce((n, i) => n + i.num_ack_pending, 0)))

/** A dead letter as the tests read it: its metadata, the original's headers and body, and its number. */
export interface ReadLetter extends DeadLetter.Letter {
  readonly sequence: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array | undefined
}

/** Provides what reading and replaying dead letters needs, from a started runtime. */
export const withBroker = (rt: Runtime) => <A, E>(effect: Effect.Effect<A, E, Nats.Nats | Results.Results>) =>
  effect.pipe(Effect.provideService(Nats.Nats, rt.nats), Effect.provideService(Results.Results, rt.results))

/** Every dead letter of `actor` and `tenant`, with its body, oldest first; dies on one that does not read. */
export const deadLetters = (rt: Runtime, actor: string, tenant = "default"): Effect.Effect<ReadonlyArray<ReadLetter>> =>
  Effect.gen(function*() {
    const page = yield* DeadLetters.list(rt.names, { actor, tenant, limit: 100_000 })
    if (page.unreadable.length > 0) return yield* Effect.die(new Error(`dead letters ${page.unreadable.join(", ")} do not read`))
    return yield* Effect.forEach(page.letters, ({ sequence }) =>
      Effect.map(DeadLetters.read(rt.names, sequence), (f) => ({ ...f.letter, sequence, headers: f.headers, body: f.body })))
  }).pipe(Effect.provideService(Nats.Nats, rt.nats), Effect.orDie)

/** One row of the audit log. */
export interface AuditRow {
  readonly message_id: string
  readonly subject: string
  readonly step: string
  readonly attempt: number
  readonly at: number
  readonly error: string | null
  readonly delay_ms: number | null
}

/** The audit rows of one message (or all), in commit order, read through a read-only connection. */
export const auditRows = (sqlitePath: string, messageId?: string): ReadonlyArray<AuditRow> => {
  const db = new Database(sqlitePath, { readonly: true })
  try {
    const sql = "SELECT message_id, subject, step, attempt, at, error, delay_ms FROM audit_log"
    return messageId === undefined
      ? db.query(`${sql} ORDER BY id`).all() as Array<AuditRow>
      : db.query(`${sql} WHERE message_id = ? ORDER BY id`).all(messageId) as Array<AuditRow>
  } finally {
    db.close()
  }
}

/** The steps of one message's audit rows, in order. */
export const auditSteps = (sqlitePath: string, messageId: string): ReadonlyArray<string> =>
  auditRows(sqlitePath, messageId).map((r) => r.step)

/** Counts handler runs by key (usually the task id or a label). */
export class Runs {
  readonly byKey = new Map<string, number>()
  add(key: string) {
    this.byKey.set(key, (this.byKey.get(key) ?? 0) + 1)
  }
  count(key: string) {
    return this.byKey.get(key) ?? 0
  }
  get total() {
    let n = 0
    for (const v of this.byKey.values()) n += v
    return n
  }
  /** Keys that ran more than once. */
  get twice() {
    return [...this.byKey].filter(([, n]) => n > 1).map(([k]) => k)
  }
}

/**
 * A "worker" that takes messages from a consumer and never settles them (it crashes on each):
 * every `take` asks for one more. A pull after the last ack_wait is when the server finds a
 * message's deliveries exhausted and announces it.
 */
export const neverSettling = (rt: Runtime, stream: string, consumer: string) =>
  Effect.map(
    Pull.make(rt.nats.connection, stream, consumer, { onMessage: () => {}, onEnd: () => {}, onFailure: () => {} }, {
      answerTimeoutMs: 150,
      consumerExists: () => Promise.resolve(true)
    }),
    (feed) => ({
      take: Effect.sync(() => {
        feed.check(Date.now())
        feed.fetch(1)
      })
    })
  )
