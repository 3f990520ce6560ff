/**
 * `./scripts/bench`: msgsys against raw nats.js and BullMQ, on one embedded nats-server, in one
 * run of this process. Each section is set up (untimed), then runs R times; the runs interleave
 * (run 1 of every section, then run 2, ...), so a slow spell of this shared machine spreads over
 * all figures instead of sinking one. Every figure is the median of its runs.
 *
 *   ./scripts/bench [--json] [--quick] [--tasks N] [--runs N] [--only raw,drain] ...   (--help)
 *
 * Progress and logs go to stderr; stdout gets the table, or with --json exactly one JSON object
 * (with --markdown, Markdown tables for BENCHMARKS.md).
 * Nothing here is asserted: the tests never time anything.
 */
import { Effect, Exit, Scope } from "effect"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os"
import { join } from "node:path"
import { EmbeddedNats } from "msgsys/testing"
import { section as bullmq } from "./bullmq.ts"
import { section as dispatch } from "./dispatch.ts"
import { section as drain } from "./drain.ts"
import { section as enqueue } from "./enqueue.ts"
import { section as events } from "./events.ts"
import { section as latency } from "./latency.ts"
import { section as memory } from "./memory.ts"
import { section as pipeline } from "./pipeline.ts"
import { section as raw } from "./raw.ts"
import { section as schedule } from "./schedule.ts"
import { BadArgument, parse, usage } from "./support/args.ts"
import * as Js from "./support/jetstream.ts"
import type { Outcome, SectionReport } from "./support/report.ts"
import { toJson, toMarkdown, toTable } from "./support/report.ts"
import type { Env, Runner, Sample, Section } from "./support/Section.ts"

// stdout carries the result alone; anything a library prints goes to stderr
const out = (text: string) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`)
console.log = console.error
console.info = console.error
const log = (message: string) => console.error(`[bench] ${message}`)

// children and servers are killed by pid in "exit" handlers: make the signals run them
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130))

const all: ReadonlyArray<Section> = [raw, enqueue, drain, latency, dispatch, memory, schedule, events, pipeline, bullmq]
const root = join(import.meta.dir, "..", "..", "..")

const packageVersion = (name: string) => {
  try {
    return (JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")) as { version: string }).version
  } catch {
    return "not installed"
  }
}

const cpuModel = () => {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpus()[0]?.model ?? "unknown"
  } catch {
    return cpus()[0]?.model ?? "unknown"
  }
}

const redisVersion = () => {
  const found = Bun.which("redis-server") ?? ["/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"]
    .find((p) => Bun.file(p).size > 0)
  if (!found) return "not installed"
  const text = Bun.spawnSync([found, "--version"]).stdout.toString()
  return /v=(\S+)/.exec(text)?.[1] ?? text.trim()
}

const main = async () => {
  let args
  try {
    args = parse(process.argv.slice(2))
  } catch (e) {
    if (e instanceof BadArgument) {
      console.error(`${e.message} (./scripts/bench --help lists the options)`)
      process.exit(2)
    }
    throw e
  }
  if (!args) {
    out(usage)
    return
  }
  const { settings } = args
  const dir = mkdtempSync(join(tmpdir(), "msgsys-bench-"))
  const serverScope = await Effect.runPromise(Scope.make())
  let exitCode = 0
  try {
    const server = await Effect.runPromise(EmbeddedNats.make().pipe(Scope.provide(serverScope)))
    const probe = await Js.connect(server.url)
    const natsServer = probe.nc.info?.version ?? "unknown"
    await probe.nc.close()
    let counter = 0
    const env: Env = {
      url: server.url,
      dir,
      settings,
      unique: (base) => `${base}${process.pid.toString(36)}x${(++counter).toString(36)}`,
      log
    }
    const meta = {
      command: ["./scripts/bench", ...process.argv.slice(2)].join(" "),
      startedAt: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpuModel(),
        memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
        kernel: release(),
        loadAverageAtStart: loadavg().map((x) => Number(x.toFixed(2)))
      },
      versions: {
        bun: Bun.version,
        natsServer,
        natsJs: packageVersion("@nats-io/transport-node"),
        effect: packageVersion("effect"),
        bullmq: packageVersion("bullmq"),
        ioredis: packageVersion("ioredis"),
        redis: redisVersion()
      },
      settings
    }
    log(`nats-server ${natsServer} at ${server.url}; ${settings.tasks} tasks, ${settings.runs} run(s) per figure`)

    const chosen = all.filter((s) => args.only.includes(s.name))
    const runners = new Map<Section, Runner>()
    const outcomes = new Map<Section, Outcome>()
    const samples = new Map<Section, Record<string, Array<Sample>>>()
    const fail = async (s: Section, e: unknown) => {
      const error = e instanceof Error ? e.message : String(e)
      log(`${s.name} failed: ${error}`)
      if (e instanceof Error && e.stack) console.error(e.stack)
      outcomes.set(s, { kind: "failed", error, samples: samples.get(s) ?? {} })
      const runner = runners.get(s)
      runners.delete(s)
      await runner?.close().catch(() => {})
      exitCode = 1
    }

    for (const s of chosen) {
      log(`${s.name}: setting up`)
      try {
        const runner = await s.setup(env)
        if (typeof runner === "string") {
          log(`${s.name}: skipped: ${runner}`)
          outcomes.set(s, { kind: "skipped", reason: runner })
        } else {
          runners.set(s, runner)
          samples.set(s, {})
        }
      } catch (e) {
        await fail(s, e)
      }
    }
    for (let i = 0; i < settings.runs; i++) {
      for (const s of chosen) {
        const runner = runners.get(s)
        if (!runner) continue
        log(`${s.name}: run ${i + 1} of ${settings.runs}`)
        try {
          const got = await runner.run(i)
          const into = samples.get(s)!
          for (const [k, v] of Object.entries(got)) (into[k] ??= []).push(v)
          log(`${s.name}: ${Object.entries(got).map(([k, v]) => `${k} ${typeof v === "number" ? v.toFixed(2) : `n/a (${v.na})`}`).join(", ")}`)
        } catch (e) {
          await fail(s, e)
        }
      }
    }
    for (const [s, runner] of runners) {
      await runner.close().catch((e: unknown) => log(`${s.name}: closing failed: ${String(e)}`))
      outcomes.set(s, { kind: "done", samples: samples.get(s)! })
    }

    const reports: Array<SectionReport> = chosen.map((s) => ({
      name: s.name,
      title: s.title,
      figures: s.figures(settings),
      outcome: outcomes.get(s)!
    }))
    const header = `msgsys bench: ${settings.tasks} tasks, median of ${settings.runs} run(s); Bun ${Bun.version}, ` +
      `nats-server ${natsServer}, ${cpus().length} cpus (${cpuModel()})`
    const table = toTable(header, reports, settings)
    if (args.json) {
      console.error(table)
      out(JSON.stringify(toJson(meta, reports, settings), null, 2))
    } else if (args.markdown) {
      console.error(table)
      out(toMarkdown(header, reports, settings))
    } else out(table)
  } finally {
    await Effect.runPromise(Scope.close(serverScope, Exit.void))
    rmSync(dir, { recursive: true, force: true })
  }
  // a client's reconnect timer or a child's pipe must not keep the bench alive
  process.exit(exitCode)
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
