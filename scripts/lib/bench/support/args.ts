/** The command line of `./scripts/bench`. */
import { type SectionName, sectionNames, type Settings } from "./Section.ts"

export interface Args {
  readonly json: boolean
  readonly markdown: boolean
  readonly only: ReadonlyArray<SectionName>
  readonly settings: Settings
}

export const usage = `usage: ./scripts/bench [options]

Measures msgsys against raw nats.js and BullMQ on one embedded nats-server, and prints a table.

  --json               print one JSON object on stdout (the table and logs go to stderr)
  --markdown           print Markdown tables on stdout, for BENCHMARKS.md (the table goes to stderr)
  --tasks N            messages per throughput figure (default 20000; --quick: 2000)
  --runs N             runs per figure; each figure is the median (default 3; --quick: 1)
  --only a,b           sections to run: ${sectionNames.join(", ")}
  --quick              a fast smoke run: fewer tasks, one run, short latency and memory runs
  --in-flight N        publishes / enqueues in flight at once (default 256)
  --concurrency N      the drain actor's concurrency (default 256)
  --latency-rate N     tasks per second in the latency section (default 1000)
  --latency-seconds N  measured seconds of the latency section (default 10; --quick: 2)
  --separate-sqlite    latency: the producer gets its own SQLite file (default: it shares the worker's)
  --memory-tasks N     slow tasks held in flight in the memory section (default 10000; --quick: 1000)
  --audit-scale ...    run the audit-scale bench instead (scripts/lib/bench/audit-scale.ts) with the other args
  --help               this text`

/** A flag's value is missing or not what it takes. */
export class BadArgument extends Error {
  override readonly name = "BadArgument"
}

const positiveInt = (flag: string, value: string | undefined): number => {
  const n = Number(value)
  if (value === undefined || !Number.isInteger(n) || n < 1) {
    throw new BadArgument(`${flag} takes a whole number >= 1, got ${value === undefined ? "nothing" : JSON.stringify(value)}`)
  }
  return n
}

/** Parses the arguments; `undefined` means --help was asked for. */
export const parse = (argv: ReadonlyArray<string>): Args | undefined => {
  const given = new Map<string, string | undefined>()
  const valued = new Set(["--tasks", "--runs", "--only", "--in-flight", "--concurrency", "--latency-rate", "--latency-seconds", "--memory-tasks"])
  const flags = new Set(["--json", "--markdown", "--quick", "--separate-sqlite", "--help", "-h"])
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [name, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined]
    if (flags.has(name)) given.set(name, "")
    else if (valued.has(name)) given.set(name, inline ?? argv[++i])
    else throw new BadArgument(`unknown argument ${JSON.stringify(arg)}; see --help`)
  }
  if (given.has("--help") || given.has("-h")) return undefined
  if (given.has("--json") && given.has("--markdown")) throw new BadArgument("--json and --markdown exclude each other: pick one")
  const quick = given.has("--quick")
  const int = (flag: string, normal: number, fast: number) =>
    given.has(flag) ? positiveInt(flag, given.get(flag)) : quick ? fast : normal

  let only: ReadonlyArray<SectionName> = sectionNames
  if (given.has("--only")) {
    const picked = (given.get("--only") ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0)
    const unknown = picked.filter((s) => !(sectionNames as ReadonlyArray<string>).includes(s))
    if (picked.length === 0 || unknown.length > 0) {
      throw new BadArgument(
        `--only takes a comma-separated list of sections (${sectionNames.join(", ")}); ` +
          (unknown.length > 0 ? `unknown: ${unknown.join(", ")}` : "got none")
      )
    }
    only = sectionNames.filter((s) => picked.includes(s))
  }

  const tasks = int("--tasks", 20_000, 2_000)
  const latencyRate = int("--latency-rate", 1_000, 1_000)
  return {
    json: given.has("--json"),
    markdown: given.has("--markdown"),
    only,
    settings: {
      tasks,
      runs: int("--runs", 3, 1),
      inFlight: int("--in-flight", 256, 256),
      concurrency: int("--concurrency", 256, 256),
      latencyRate,
      latencySeconds: int("--latency-seconds", 10, 2),
      // one second's worth (200 messages with --quick) is sent first and not counted
      separateSqlite: given.has("--separate-sqlite"),
      latencyWarmup: quick ? Math.min(200, latencyRate) : latencyRate,
      memoryTasks: int("--memory-tasks", 10_000, 1_000),
      warmup: quick ? Math.min(200, Math.ceil(tasks / 5)) : Math.min(2_000, Math.max(200, Math.floor(tasks / 10))),
      quick
    }
  }
}
