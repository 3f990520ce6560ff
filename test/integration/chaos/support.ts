/**
 * Support for chaos tests: worker PROCESSES of test/fixtures/chaosApp.ts that a test can kill,
 * the CHAOS_LOG they write ("start|done <id> <pid> <ms>"), a client runtime in the test, and
 * counts of what was lost and what ran twice.
 */
import { Database } from "bun:sqlite"
import { Duration, Effect, Layer, ManagedRuntime, Option } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import type * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import * as Pipelines from "../../../src/pipeline/Pipelines.ts"
import * as Services from "../../../src/app/Services.ts"
import * as Client from "../../../src/client/Client.ts"
import { Results } from "../../../src/task/Results.ts"
import type { TaskRecord } from "../../../src/task/TaskRecord.ts"
import { MsgsysConfig as MsgsysConfigService } from "../../../src/config/MsgsysConfig.ts"

/** The repository root (cwd of every spawned process). */
export const root = join(import.meta.dir, "..", "..", "..")
const fixture = join(root, "test", "fixtures", "chaosApp.ts")

/** The environment without any MSGSYS_* or CHAOS_* variable of the caller, so nothing leaks in. */
export const cleanEnv = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("MSGSYS_") && !k.startsWith("CHAOS_")) env[k] = v
  }
  return env
}

/** A spawned process with its combined stdout+stderr kept in memory. */
export interface Proc {
  readonly label: string
  readonly proc: ReturnType<typeof Bun.spawn>
  readonly pid: number
  /** Everything it printed so far, stdout and stderr. */
  readonly output: () => string
  readonly stdout: () => string
  readonly stderr: () => string
  /** Exit code; 128+n after signal n. */
  readonly exited: Promise<number>
  /** Set once it exited. */
  readonly exitedAt: () => number | undefined
  readonly alive: () => boolean
}

const spawned = new Set<Proc>()

const drain = async (stream: ReadableStream<Uint8Array> | undefined, sink: (s: string) => void) => {
  if (!stream) return
  const decoder = new TextDecoder()
  for await (const chunk of stream) sink(decoder.decode(chunk, { stream: true }))
}

/** Spawns `cmd` with `env` (in the repository root unless `cwd` says), recording it so `killAll` can end it. */
export const spawn = (label: string, cmd: Array<string>, env: Record<string, string>, options: { readonly cwd?: string } = {}): Proc => {
  const proc = Bun.spawn(cmd, { cwd: options.cwd ?? root, env, stdout: "pipe", stderr: "pipe", stdin: "ignore" })
  let out = ""
  let err = ""
  let exitedAt: number | undefined
  const pumps = Promise.all([
    drain(proc.stdout as ReadableStream<Uint8Array>, (s) => (out += s)),
    drain(proc.stderr as ReadableStream<Uint8Array>, (s) => (err += s))
  ])
  const exited = proc.exited.then(async (code) => {
    exitedAt = Date.now()
    await Promise.race([pumps, Bun.sleep(1000)])
    return code
  })
  const p: Proc = {
    label,
    proc,
    pid: proc.pid,
    output: () => out + err,
    stdout: () => out,
    stderr: () => err,
    exited,
    exitedAt: () => exitedAt,
    alive: () => proc.exitCode === null && proc.signalCode === null
  }
  spawned.add(p)
  void exited.then(() => spawned.delete(p))
  return p
}

/** SIGKILLs every process spawned here that still runs (afterEach). */
export const killAll = async () => {
  const left = [...spawned]
  for (const p of left) {
    if (p.alive()) {
      try {
        process.kill(p.pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
  }
  await Promise.all(left.map((p) => p.exited))
}

// a SIGKILL of this test process cannot be covered, but an exit or an uncaught throw can
process.on("exit", () => {
  for (const p of spawned) {
    try {
      process.kill(p.pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
})

/** Polls `check` until it returns a value other than undefined/false, or fails naming `what`. */
export const waitFor = async <A>(
  what: string,
  check: () => A | undefined | false | Promise<A | undefined | false>,
  timeoutMs: number,
  everyMs = 50
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const v = await check()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await Bun.sleep(everyMs)
  }
}

/** Options of one chaos worker process. */
export interface WorkerOptions {
  readonly label: string
  readonly settings: MsgsysConfig.MsgsysSettings
  readonly actor: string
  readonly log: string
  /** Extra env: MSGSYS_ACK_WAIT, MSGSYS_SHUTDOWN_GRACE, MSGSYS_FAILPOINTS, MSGSYS_DLQ_WORKER (default off here), CHAOS_CONCURRENCY, … */
  readonly env?: Record<string, string>
}

const ms = (d: Duration.Duration) => `${Duration.toMillis(d)}ms`

/** Spawns a chaos worker process on the test's server, stream prefix and SQLite file. */
export const spawnWorker = (o: WorkerOptions): Proc =>
  spawn(o.label, ["bun", fixture], {
    ...cleanEnv(),
    MSGSYS_NATS_URL: o.settings.nats.servers.join(","),
    MSGSYS_STREAM_PREFIX: o.settings.streamPrefix,
    MSGSYS_DATA_DIR: o.settings.dataDir,
    MSGSYS_SQLITE_PATH: o.settings.sqlitePath,
    MSGSYS_HTTP_PORT: "0",
    MSGSYS_ACK_WAIT: ms(o.settings.ackWait),
    // Info, so the test sees "worker … running" (readiness); nothing is logged per task at Info
    MSGSYS_LOG_LEVEL: "Info",
    MSGSYS_LOG_FORMAT: "logfmt",
    // tests that dead-letter on purpose count the letters; the DLQ worker's tests turn it on
    MSGSYS_DLQ_WORKER: "off",
    CHAOS_ACTOR: o.actor,
    CHAOS_LOG: o.log,
    ...o.env
  })

/** Resolves once the worker logged that it runs; fails if it exits first or takes too long. */
export const ready = (w: Proc, timeoutMs = 20_000) =>
  waitFor(`${w.label} (pid ${w.pid}) to start\n${w.output()}`, () => {
    if (!w.alive()) throw new Error(`${w.label} exited before it was ready:\n${w.output()}`)
    return /worker \S+ running/.test(w.output())
  }, timeoutMs)

/** One line of CHAOS_LOG. */
export interface LogLine {
  readonly kind: "start" | "done"
  readonly id: string
  readonly pid: number
  readonly at: number
}

/** Every complete line of CHAOS_LOG so far. */
export const readLog = (file: string): Array<LogLine> => {
  if (!existsSync(file)) return []
  return readFileSync(file, "utf8").split("\n").flatMap((line) => {
    const [kind, id, pid, at] = line.split(" ")
    return (kind === "start" || kind === "done") && id && pid && at
      ? [{ kind, id, pid: Number(pid), at: Number(at) } as LogLine]
      : []
  })
}

/** How many `kind` lines each id has (ids with none are absent). */
export const countBy = (lines: ReadonlyArray<LogLine>, kind: LogLine["kind"]): Map<string, number> => {
  const m = new Map<string, number>()
  for (const l of lines) if (l.kind === kind) m.set(l.id, (m.get(l.id) ?? 0) + 1)
  return m
}

/** Of `ids`: those with no "done" line (lost) and those with more than one (ran twice). */
export const tally = (file: string, ids: ReadonlyArray<string>) => {
  const lines = readLog(file)
  const done = countBy(lines, "done")
  const started = countBy(lines, "start")
  return {
    lines,
    done,
    started,
    lost: ids.filter((id) => (done.get(id) ?? 0) === 0),
    twice: ids.filter((id) => (done.get(id) ?? 0) > 1),
    neverStarted: ids.filter((id) => (started.get(id) ?? 0) === 0)
  }
}

/** Clients (tasks, pipelines), results and connection for the test itself, on `settings` (no worker, no SQLite). */
export const clientRuntime = (settings: MsgsysConfig.MsgsysSettings) =>
  ManagedRuntime.make(
    Layer.mergeAll(Client.layer, Pipelines.layer).pipe(
      Layer.provideMerge(Services.broker),
      Layer.provideMerge(Layer.succeed(MsgsysConfigService, settings))
    )
  )

/** @category models */
export type ClientRuntime = ReturnType<typeof clientRuntime>

const finalStatuses = new Set<TaskRecord["status"]>(["succeeded", "dead", "cancelled"])

/**
 * Polls the results bucket until every task in `ids` has a final status (or the deadline passes)
 * and returns the last record of each. Polling, not watching, so it rides out a broker restart.
 */
export const finalRecords = async (rt: ClientRuntime, ids: ReadonlyArray<string>, timeoutMs: number) => {
  const records = new Map<string, TaskRecord | undefined>()
  const deadline = Date.now() + timeoutMs
  let open = [...ids]
  while (open.length > 0 && Date.now() < deadline) {
    const got = await rt.runPromise(
      Effect.forEach(open, (id) =>
        Results.use((r) => r.get(id)).pipe(
          Effect.map((o) => [id, Option.getOrUndefined(o)] as const),
          Effect.orElseSucceed(() => [id, undefined] as const)
        ), { concurrency: 32 })
    )
    for (const [id, r] of got) records.set(id, r)
    open = open.filter((id) => {
      const r = records.get(id)
      return r === undefined || !finalStatuses.has(r.status)
    })
    if (open.length > 0) await Bun.sleep(200)
  }
  return records
}

/** Ids whose status is not "succeeded" (with the status they have), for a readable failure. */
export const notSucceeded = (records: Map<string, TaskRecord | undefined>, ids: ReadonlyArray<string>) =>
  ids.filter((id) => records.get(id)?.status !== "succeeded").map((id) => `${id}:${records.get(id)?.status ?? "none"}`)

/** Rows of the shared audit log, read-only. */
export const auditCounts = (sqlitePath: string, step: string): Map<string, number> => {
  const db = new Database(sqlitePath, { readonly: true })
  try {
    const rows = db.query<{ message_id: string; n: number }, [string]>(
      "SELECT message_id, count(*) AS n FROM audit_log WHERE step = ? GROUP BY message_id"
    ).all(step)
    return new Map(rows.map((r) => [r.message_id, r.n]))
  } finally {
    db.close(false)
  }
}

/** Messages still in an actor's task stream (a work-queue stream: an ack removes one). */
export const messagesLeft = (rt: ClientRuntime, settings: MsgsysConfig.MsgsysSettings, actor: string) =>
  rt.runPromise(Nats.use((n) =>
    Effect.promise(() => n.manager.streams.info(Subjects.make(settings.streamPrefix).taskStream(actor)))
  )).then((info) => info.state.messages)

/** Audit rows of one message, oldest first. */
export const auditRows = (sqlitePath: string, messageId: string) => {
  const db = new Database(sqlitePath, { readonly: true })
  try {
    return db.query<{ step: string; attempt: number }, [string]>(
      "SELECT step, attempt FROM audit_log WHERE message_id = ? ORDER BY id"
    ).all(messageId)
  } finally {
    db.close(false)
  }
}

/** Rows of the chaos_ledger table (written by steps in the commit of their outcome), by task. */
export const ledgerCounts = (sqlitePath: string): Map<string, number> => {
  const db = new Database(sqlitePath, { readonly: true })
  try {
    const rows = db.query<{ task_id: string; n: number }, []>(
      "SELECT task_id, count(*) AS n FROM chaos_ledger GROUP BY task_id"
    ).all()
    return new Map(rows.map((r) => [r.task_id, r.n]))
  } finally {
    db.close(false)
  }
}
