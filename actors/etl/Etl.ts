/**
 * The ETL domain of the design guide: extract → transform → load over the generated sales data
 * set, a pipeline (`Job`) of three tasks of the slow-pool `etl` actor, each step's output the next
 * one's input.
 *
 * - `etl.extract` reads the source CSV (`etl/sources/<source>.csv`), keeps the rows in the date
 *   window, stages them.
 * - `etl.transform` drops duplicate orders, checks every row against the `Sale` schema, stages the
 *   clean rows and writes the rejected ones with their reason.
 * - `etl.load` inserts the clean rows into the warehouse in batches of `batchSize`, one
 *   transaction each; orders already there are skipped, so the same load twice changes nothing.
 *
 * Staged files are named after the job's config, so a step that runs again (a retry, a crash)
 * rewrites the same file.
 */
import { type Duration, Effect, Layer, Schema } from "effect"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { Actor, Pipeline, Pipelines, Retry, Task } from "msgsys"
import { DataDir } from "../shared/DataDir.ts"
import { IsoDate, parseLine, Sale } from "./Sales.ts"
import * as Warehouse from "./Warehouse.ts"

const Name = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{1,64}$/))

/** The job's typed config (the guide's ETLConfig). */
export const EtlConfig = Schema.Struct({
  /** The source: `etl/sources/<source>.csv` under the data directory. */
  source: Name,
  /** The warehouse: `etl/<destination>.sqlite`. */
  destination: Name,
  /** Rows per load transaction, 1 to 10,000. Default 1,000. */
  batchSize: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 10_000 }))),
  /** Only orders on or after this date. */
  startDate: Schema.optional(IsoDate),
  /** Only orders on or before this date. */
  endDate: Schema.optional(IsoDate)
})
export type EtlConfig = typeof EtlConfig.Type

/** The source file does not exist: no retry can help. */
export class SourceNotFound extends Schema.TaggedError<SourceNotFound>()("SourceNotFound", {
  source: Schema.String,
  path: Schema.String
}) {
  override get message() {
    return `no source ${this.source} (${this.path}): generate it with \`bun actors/etl/generate.ts --out ${this.path}\``
  }
}

/** A staged file a step needs is gone (deleted between the steps): run the job again. */
export class StagingMissing extends Schema.TaggedError<StagingMissing>()("StagingMissing", { path: Schema.String }) {
  override get message() {
    return `the staged file ${this.path} is gone: run the ETL job again from extract`
  }
}

/** The config of a date window that ends before it starts. */
export class InvalidWindow extends Schema.TaggedError<InvalidWindow>()("InvalidWindow", {
  startDate: Schema.String,
  endDate: Schema.String
}) {
  override get message() {
    return `startDate ${this.startDate} is after endDate ${this.endDate}: swap them`
  }
}

const Extracted = Schema.Struct({ config: EtlConfig, staged: Schema.String, rows: Schema.Int })
const Transformed = Schema.Struct({
  config: EtlConfig,
  staged: Schema.String,
  extracted: Schema.Int,
  valid: Schema.Int,
  duplicates: Schema.Int,
  invalid: Schema.Int,
  rejects: Schema.String
})

export const Extract = Task.make("etl.extract", {
  input: EtlConfig,
  output: Extracted,
  error: Schema.Union([SourceNotFound, InvalidWindow]),
  permanent: ["SourceNotFound", "InvalidWindow"]
})

export const Transform = Task.make("etl.transform", {
  input: Extracted,
  output: Transformed,
  error: StagingMissing,
  permanent: ["StagingMissing"]
})

/** What the job did, step by step: the last step's output, so the pipeline's. */
export const JobReport = Schema.Struct({
  destination: Schema.String,
  extracted: Schema.Int,
  duplicates: Schema.Int,
  invalid: Schema.Int,
  valid: Schema.Int,
  inserted: Schema.Int,
  unchanged: Schema.Int,
  batches: Schema.Int,
  /** The rejected rows with their reasons (NDJSON). */
  rejects: Schema.String
})
export type JobReport = typeof JobReport.Type

export const Load = Task.make("etl.load", {
  input: Transformed,
  output: JobReport,
  error: StagingMissing,
  permanent: ["StagingMissing"]
})

export const Etl = Actor.make("etl", {
  protocol: [Extract, Transform, Load],
  pool: "slow",
  concurrency: 2,
  timeout: "10 minutes",
  retry: Retry.exponential({ base: "2 seconds", maxAttempts: 4, cap: "1 minute" }),
  // one job per destination at a time in a worker: two loads into one warehouse never interleave
  partitionBy: (input: { readonly destination?: string; readonly config?: { readonly destination: string } }) =>
    input.destination ?? input.config?.destination ?? "-"
})

/** The staging directory of a job: named after its config, the same on every retry. */
const runKey = (config: EtlConfig) =>
  createHash("sha256").update(JSON.stringify([config.source, config.destination, config.startDate ?? "", config.endDate ?? ""])).digest("hex").slice(0, 16)

/** Writes a whole file or nothing (a crash mid-write leaves the old one). */
const writeAtomic = (path: string, text: string) => {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(`${path}.tmp`, text)
  renameSync(`${path}.tmp`, path)
}

const read = (path: string) =>
  existsSync(path) ? Effect.succeed(readFileSync(path, "utf8")) : Effect.fail(new StagingMissing({ path }))

const validate = Schema.is(Sale)
const explain = Schema.decodeUnknownExit(Sale)

export const EtlLive = Etl.toLayer(Effect.gen(function*() {
  const data = yield* DataDir
  const warehouse = yield* Warehouse.Warehouse
  return Etl.of({
    "etl.extract": ({ input }) =>
      Effect.gen(function*() {
        if (input.startDate && input.endDate && input.startDate > input.endDate) {
          return yield* new InvalidWindow({ startDate: input.startDate, endDate: input.endDate })
        }
        const path = join(data.dir("etl", "sources"), `${input.source}.csv`)
        if (!existsSync(path)) return yield* new SourceNotFound({ source: input.source, path })
        const lines = readFileSync(path, "utf8").split("\n")
        const kept: Array<string> = []
        for (let i = 1; i < lines.length; i++) {
          const line = lines[i]!
          if (line.length === 0) continue
          // the date is the second field; a row whose date does not parse is kept for transform to reject
          const date = line.slice(line.indexOf(",") + 1, line.indexOf(",", line.indexOf(",") + 1))
          if ((input.startDate && date < input.startDate) || (input.endDate && date > input.endDate)) continue
          kept.push(line)
        }
        const staged = join(data.dir("etl", "staging", runKey(input)), "extracted.csv")
        writeAtomic(staged, kept.join("\n"))
        return { config: input, staged, rows: kept.length }
      }),
    "etl.transform": ({ input }) =>
      Effect.gen(function*() {
        const text = yield* read(input.staged)
        const seen = new Set<string>()
        const clean: Array<string> = []
        const rejects: Array<string> = []
        let duplicates = 0
        for (const line of text.length === 0 ? [] : text.split("\n")) {
          const row = parseLine(line)
          const id = String(row.orderId)
          if (seen.has(id)) {
            duplicates++
            continue
          }
          seen.add(id)
          if (validate(row)) clean.push(JSON.stringify(row))
          else {
            const exit = explain(row)
            const reason = exit._tag === "Failure" ? String(exit.cause).split("\n")[0] : "invalid"
            rejects.push(JSON.stringify({ line, reason }))
          }
        }
        const dir = data.dir("etl", "staging", runKey(input.config))
        const staged = join(dir, "clean.ndjson")
        const rejected = join(dir, "rejects.ndjson")
        writeAtomic(staged, clean.join("\n"))
        writeAtomic(rejected, rejects.join("\n"))
        return { config: input.config, staged, extracted: input.rows, valid: clean.length, duplicates, invalid: rejects.length, rejects: rejected }
      }),
    "etl.load": ({ input }) =>
      Effect.gen(function*() {
        const text = yield* read(input.staged)
        const rows = text.length === 0 ? [] : text.split("\n").map((l) => JSON.parse(l) as Sale)
        const size = input.config.batchSize ?? 1000
        let inserted = 0
        let batches = 0
        for (let i = 0; i < rows.length; i += size) {
          inserted += yield* warehouse.load(input.config.destination, rows.slice(i, i + size))
          batches++
          // a long load stays responsive to cancel and shutdown between batches
          yield* Effect.yieldNow
        }
        return {
          destination: input.config.destination,
          extracted: input.extracted,
          duplicates: input.duplicates,
          invalid: input.invalid,
          valid: input.valid,
          inserted,
          unchanged: rows.length - inserted,
          batches,
          rejects: input.rejects
        }
      })
  })
}))

/** The ETL actor's handlers with the warehouse they load into (they need the data directory). */
export const handlers = EtlLive.pipe(Layer.provideMerge(Warehouse.layer))

/**
 * The ETL job: extract → transform → load, each step's output the next one's input. The worker
 * that finishes a step enqueues the next (before it acks the finished one), so a crash between two
 * steps resumes at the next step, not from the start; every step is a task with its retries,
 * audit rows, status and dead letters, all under the pipeline's id as correlation id.
 */
export const Job = Pipeline.chain(Extract, Transform, Load)

/** Starts the job and waits for its report (`msgsys pipeline status ID` shows its steps meanwhile). */
export const runJob = (
  config: EtlConfig,
  options: { readonly timeout?: Duration.Input; readonly tenant?: string; readonly id?: string } = {}
) =>
  Effect.gen(function*() {
    const pipelines = yield* Pipelines.Pipelines
    const run = yield* pipelines.start(Job, config, {
      ...(options.tenant !== undefined ? { tenant: options.tenant } : {}),
      ...(options.id !== undefined ? { id: options.id } : {})
    })
    const report = yield* pipelines.result(run, options.timeout ?? "10 minutes")
    return { ...report, pipelineId: run.id }
  })
