/**
 * Time to ready of a msgsys worker, for `./scripts/build --measure`: each command given is run as
 * a worker against its own nats-server, several times, and timed from exec to
 *   - "running": the worker's `worker … running` log line (topology declared, SQLite open,
 *     pauses and cancels loaded, consume loops started), and
 *   - "first task": the result of a task enqueued BEFORE the exec, seen by a client: the worker
 *     pulled, ran and settled it, so it was consuming.
 * and the CPU time (user + system, /proc) the worker used until then, which another process on
 * a busy machine delays less than it delays the wall time. The streams exist already (a warm-up
 * run declares them), as on any start but the first.
 *
 *   bun scripts/lib/build/startup.ts [--runs 5] -- LABEL=CMD [LABEL=CMD ...]
 *   e.g. bun scripts/lib/build/startup.ts -- "compiled=dist/msgsys worker" "source=bun src/cli/main.ts worker"
 */
import { Effect, Exit, Scope } from "effect"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as EmbeddedNats from "../../../src/broker/EmbeddedNats.ts"
import * as PromiseClient from "../../../src/client/PromiseClient.ts"

const argv = process.argv.slice(2)
const runsAt = argv.indexOf("--runs")
const runs = runsAt >= 0 ? Number(argv[runsAt + 1]) : 5
const commands = argv.slice(argv.indexOf("--") + 1).map((spec) => {
  const eq = spec.indexOf("=")
  return { label: spec.slice(0, eq), command: spec.slice(eq + 1).split(" ").filter((s) => s.length > 0) }
})
if (argv.indexOf("--") < 0 || commands.length === 0 || !Number.isInteger(runs) || runs < 1) {
  console.error('usage: bun scripts/lib/build/startup.ts [--runs 5] -- LABEL=CMD ... (e.g. "compiled=dist/msgsys worker")')
  process.exit(2)
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}


// CPU time as the kernel counts it, in clock ticks (`getconf CLK_TCK`, 100 on Linux)
const ticksPerSecond = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100

/** CPU ms (user + system) the process `pid` has used so far, from /proc/<pid>/stat. */
const cpuMs = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond
}

/** Runs `command` until it logs "running"; ms from exec. */
const untilRunning = async (proc: Bun.Subprocess<"ignore", "ignore", "pipe">, start: number, command: ReadonlyArray<string>) => {
  const decoder = new TextDecoder()
  let seen = ""
  for await (const chunk of proc.stderr) {
    seen += decoder.decode(chunk)
    if (/worker \S+ running/.test(seen)) return performance.now() - start
  }
  throw new Error(`${command.join(" ")} ended before it logged "running":\n${seen}`)
}

const stop = async (proc: Bun.Subprocess, command: ReadonlyArray<string>) => {
  proc.kill("SIGTERM")
  const code = await proc.exited
  if (code !== 0) throw new Error(`${command.join(" ")} exited ${code} after SIGTERM`)
}

/**
 * One start: exec → "running" line, and exec → the result of a task enqueued before the exec
 * (`firstTask` undefined for the warm-up run, which declares the streams).
 */
const once = async (server: EmbeddedNats.EmbeddedNats, command: ReadonlyArray<string>, prefix: string, dataDir: string, warmUp: boolean) => {
  // the HTTP port on, as in production, on a port free now (the default one may be taken)
  const httpPort = String(await Effect.runPromise(EmbeddedNats.freePort))
  const env = {
    ...process.env,
    MSGSYS_NATS_URL: server.url,
    MSGSYS_STREAM_PREFIX: prefix,
    MSGSYS_DATA_DIR: dataDir,
    MSGSYS_LOG_FORMAT: "pretty",
    MSGSYS_HTTP_PORT: httpPort
  }
  const client = warmUp ? undefined : await PromiseClient.connect({ nats: { servers: [server.url] }, streamPrefix: prefix, dataDir })
  try {
    const enqueued = await client?.enqueueJson("etl.transform", { tenant: "acme", values: [1, 2, 3] })
    const start = performance.now()
    const proc = Bun.spawn([...command], { env, stdout: "ignore", stderr: "pipe" })
    const done = client && enqueued
      ? client.wait(enqueued.id, "30 seconds").then((r) => {
        if (r.status !== "succeeded") throw new Error(`task ${enqueued.id} ended ${r.status}`)
        return { ms: performance.now() - start, cpu: cpuMs(proc.pid) }
      })
      : Promise.resolve(undefined)
    const [ready, firstTask] = await Promise.all([untilRunning(proc, start, command), done])
    await stop(proc, command)
    return { ready, firstTask }
  } finally {
    await client?.close()
  }
}

// a server each (task streams own their subjects, etl.>, whatever the prefix); the runs interleave,
// run 1 of every command, then run 2, ..., so a busy spell of a shared machine spreads over all
const scope = Effect.runSync(Scope.make())
const dirs: Array<string> = []
try {
  const prefix = "STARTUP"
  const setups = await Promise.all(commands.map(async ({ label, command }) => {
    const dir = mkdtempSync(join(tmpdir(), "msgsys-startup-"))
    dirs.push(dir)
    const server = await Effect.runPromise(EmbeddedNats.make({ storeDir: join(dir, "nats") }).pipe(Scope.provide(scope)))
    return { label, command, dir, server, ready: [] as Array<number>, first: [] as Array<number>, cpu: [] as Array<number> }
  }))
  for (const s of setups) await once(s.server, s.command, prefix, s.dir, true)
  for (let r = 0; r < runs; r++) {
    for (const s of setups) {
      const { ready, firstTask } = await once(s.server, s.command, prefix, s.dir, false)
      s.ready.push(ready)
      s.first.push(firstTask!.ms)
      s.cpu.push(firstTask!.cpu)
    }
  }
  const fmt = (xs: ReadonlyArray<number>) =>
    `${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`
  // CPU time does not wait for other processes: it moves less than wall time on a busy machine
  console.log(`| command | runs | exec → "running" (median, min–max) | exec → first task done (median, min–max) | CPU time to first task done (median) |`)
  console.log(`|---|---|---|---|---|`)
  for (const s of setups) console.log(`| ${s.label} | ${runs} | ${fmt(s.ready)} | ${fmt(s.first)} | ${median(s.cpu).toFixed(0)} ms |`)
} finally {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
}
