/**
 * `msgsys audit stats|show|tail|prune|vacuum`: read and trim the audit trail in the SQLite file.
 * @since 0.1.0
 */
import { Console, Duration, Effect, Layer, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as AuditQueries from "../audit/AuditQueries.ts"
import * as Services from "../app/Services.ts"
import { parseDuration } from "./CliInput.ts"
import * as DevState from "./DevState.ts"
import * as Output from "./Output.ts"
import * as Progress from "./Progress.ts"
import * as Style from "./Style.ts"

const databaseLayer = Services.database.pipe(Layer.provideMerge(DevState.configLayer))

const stepColour = (style: Style.Style, step: string) =>
  step === "succeeded" ? style.green(step)
  : step === "failed" || step === "dead_lettered" ? style.red(step)
  : step === "retry_scheduled" || step === "cancelled" ? style.yellow(step)
  : step

const row = (r: AuditQueries.AuditRow, style: Style.Style = Style.make(false)) =>
  `${style.dim(new Date(r.at).toISOString())}  ${stepColour(style, r.step.padEnd(17))} ${r.subject}  task=${r.messageId}  attempt=${r.attempt}` +
  (r.durationMs !== null ? `  ${r.durationMs} ms` : "") +
  (r.delayMs !== null ? `  retry in ${r.delayMs} ms` : "") +
  (r.error ? `  error: ${r.error}` : "")

const stats = Command.make("stats", {
  since: Flag.String("since").pipe(Flag.withDefault("24h"), Flag.withDescription("how far back, e.g. 24h, 7d")),
  json: Output.jsonFlag("print the figures as JSON")
}, (args) =>
  Effect.gen(function*() {
    const since = yield* parseDuration("--since", args.since)
    const s = yield* AuditQueries.stats({ since: Date.now() - Duration.toMillis(since) })
    if (args.json) return yield* Output.json(s)
    yield* Console.log(`since ${new Date(s.since).toISOString()}`)
    yield* Console.log("\ntasks by status:")
    for (const b of s.byStatus) yield* Console.log(`  ${b.status.padEnd(10)} ${b.count}`)
    yield* Console.log("\nduration by task:           runs     avg ms     p95 ms")
    for (const d of s.durations) {
      yield* Console.log(`  ${d.task.padEnd(24)} ${String(d.runs).padStart(6)} ${d.avgMs.toFixed(1).padStart(10)} ${d.p95Ms.toFixed(1).padStart(10)}`)
    }
    yield* Console.log("\nfailure rate by task:      total   failed     rate")
    for (const f of s.failures) {
      yield* Console.log(`  ${f.task.padEnd(24)} ${String(f.total).padStart(6)} ${String(f.failed).padStart(8)} ${(f.rate * 100).toFixed(1).padStart(7)}%`)
    }
  }).pipe(Effect.provide(databaseLayer), Effect.scoped)).pipe(
    Command.withDescription("counts by status, average and p95 duration by task, failure rate by task"),
    Command.withExamples([
      { command: "msgsys audit stats", description: "the last 24 hours" },
      { command: "msgsys audit stats --since 7d --json", description: "the last week, as JSON" }
    ])
  )

const show = Command.make("show", {
  taskId: Argument.String("task-id"),
  json: Output.jsonFlag("print the steps as a JSON array")
}, (args) =>
  Effect.gen(function*() {
    const rows = yield* AuditQueries.show(args.taskId)
    if (args.json) return yield* Output.json(rows)
    if (rows.length === 0) return yield* Console.log(`no audit rows for ${args.taskId}`)
    const style = Style.stdout()
    for (const r of rows) yield* Console.log(row(r, style))
  }).pipe(Effect.provide(databaseLayer), Effect.scoped)).pipe(
    Command.withDescription("every step of one task"),
    Command.withExamples([
      { command: "msgsys audit show 01JD3Q5Z8X2M4W7K9R1T6Y0B3C", description: "when it was enqueued, started, retried, ended" },
      { command: "msgsys audit show 01JD3Q5Z8X2M4W7K9R1T6Y0B3C --json", description: "the same as JSON" }
    ])
  )

const tail = Command.make("tail", {
  follow: Flag.Boolean("follow").pipe(Flag.withDefault(false), Flag.withAlias("f"), Flag.withDescription("keep printing new rows")),
  limit: Flag.Int("limit").pipe(Flag.withDefault(20), Flag.withDescription("how many of the newest rows to print first")),
  json: Output.jsonFlag("print one JSON object a line (JSON Lines), also with -f")
}, (args) =>
  Effect.gen(function*() {
    // the last `limit` rows first, then (with --follow) everything newer as it commits
    const maxId = yield* AuditQueries.latestId()
    const start = yield* AuditQueries.tail({ afterId: Math.max(0, maxId - args.limit), limit: args.limit })
    const style = Style.stdout()
    const print = (r: AuditQueries.AuditRow) => args.json ? Output.jsonLine(r) : Console.log(row(r, style))
    for (const r of start) yield* print(r)
    let after = start.at(-1)?.id ?? 0
    while (args.follow) {
      yield* Effect.sleep("500 millis")
      for (const r of yield* AuditQueries.tail({ afterId: after, limit: 1000 })) {
        yield* print(r)
        after = r.id
      }
    }
  }).pipe(Effect.provide(databaseLayer), Effect.scoped)).pipe(
    Command.withDescription("the newest audit rows; -f to follow"),
    Command.withExamples([
      { command: "msgsys audit tail -f", description: "watch steps as they commit" },
      { command: "msgsys audit tail -f --json | jq -c 'select(.step == \"dead_lettered\")'", description: "only dead letters, as JSON" }
    ])
  )

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`

const prune = Command.make("prune", {
  olderThan: Flag.String("older-than").pipe(Flag.withDescription("delete tasks that started longer ago than this, e.g. 90d")),
  archive: Flag.String("archive").pipe(Flag.optional, Flag.withDescription("append their steps to this .jsonl file first"))
}, (args) =>
  Effect.gen(function*() {
    const age = yield* parseDuration("--older-than", args.olderThan)
    const progress = Progress.make({ label: "tasks pruned" })
    const result = yield* AuditQueries.prune({
      olderThan: Date.now() - Duration.toMillis(age),
      ...(Option.isSome(args.archive) ? { archive: args.archive.value } : {}),
      onProgress: progress.update
    }).pipe(Effect.ensuring(Effect.sync(progress.finish)))
    yield* Console.log(
      `deleted ${result.tasks} task(s) with ${result.deleted} step(s), archived ${result.archived} step(s); ` +
        `the file gave back ${mib(result.freedBytes)}`
    )
  }).pipe(Effect.provide(databaseLayer), Effect.scoped)).pipe(
    Command.withDescription(
      "archive (optional) then delete old tasks with their steps in short batches, then give the space back"
    ),
    Command.withExamples([
      { command: "msgsys audit prune --older-than 90d", description: "a progress bar on a terminal, a line every 5 s in a log" },
      { command: "msgsys audit prune --older-than 30d --archive audit-2026.jsonl", description: "keep the steps in a file first" }
    ])
  )

const vacuum = Command.make("vacuum", {
  full: Flag.Boolean("full").pipe(
    Flag.withDefault(false),
    Flag.withDescription("rewrite the whole file (VACUUM): works on any file, but blocks every writer until done")
  )
}, (args) =>
  Effect.gen(function*() {
    const freed = yield* AuditQueries.vacuum({ full: args.full })
    yield* Console.log(`the file gave back ${mib(freed)}`)
  }).pipe(Effect.provide(databaseLayer), Effect.scoped)).pipe(
    Command.withDescription("give the SQLite file's free pages back to the disk (prune does this by itself)"),
    Command.withExamples([
      { command: "msgsys audit vacuum", description: "hand back what a prune freed, a little at a time" },
      { command: "msgsys audit vacuum --full", description: "rewrite the whole file (stop the workers first: it blocks every writer)" }
    ])
  )

/** @category commands @since 0.1.0 */
export const audit = Command.make("audit").pipe(
  Command.withDescription("query and prune the audit trail"),
  Command.withExamples([
    { command: "msgsys audit tail -f", description: "follow the trail" },
    { command: "msgsys audit show 01JD3Q5Z8X2M4W7K9R1T6Y0B3C", description: "one task's story" }
  ]),
  Command.withSubcommands([stats, show, tail, prune, vacuum])
)

