/**
 * `msgsys dlq list|show|replay|purge|exhausted` (inspect, replay and delete dead letters, and the
 * exhausted ones the DLQ worker gave up on) and `msgsys dlq-worker` (the DLQ worker on its own).
 * @since 0.1.0
 */
import { Clock, Console, Duration, Effect, Layer, Option } from "effect"
import { Argument, Command, Flag, Prompt } from "effect/cli"
import * as Subjects from "../broker/Subjects.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import type * as DeadLetter from "../dlq/DeadLetter.ts"
import * as DeadLetters from "../dlq/DeadLetters.ts"
import * as DlqWorker from "../dlq/DlqWorker.ts"
import * as ExhaustedLetters from "../dlq/ExhaustedLetters.ts"
import { type Exhausted, ExhaustedStore } from "../dlq/ExhaustedStore.ts"
import * as Services from "../app/Services.ts"
import { InvalidArguments, parseDuration } from "./CliInput.ts"
import { clientLayer, natsLayer } from "./CliLayers.ts"
import * as DevState from "./DevState.ts"
import * as Output from "./Output.ts"
import * as Progress from "./Progress.ts"
import * as Style from "./Style.ts"
import * as Logging from "../trace/Logging.ts"

const names = Effect.map(MsgsysConfig.MsgsysConfig, (c) => Subjects.make(c.streamPrefix))

const defaultLimit = 100

/** `1.5 KB`, `900.0 KB`, `12 B`. */
const size = (bytes: number) =>
  bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`

const oneLine = (text: string, max = 200) => {
  const flat = text.replace(/\s+/g, " ")
  return flat.length > max ? `${flat.slice(0, max)}…` : flat
}

const line = (style: Style.Style, sequence: number, l: DeadLetter.Letter) =>
  `${style.bold(`#${sequence}`)}  ${new Date(l.deadLetteredAt).toISOString()}  ${l.subject}  tenant=${l.tenant}  task=${l.taskId}  ` +
  `${style.red(l.reason)} after ${l.attempts} attempt(s): ${oneLine(l.error.message)}  ${style.dim(`[body ${size(l.bodySize)}]`)}`

const list = Command.make("list", {
  actor: Flag.String("actor").pipe(Flag.optional, Flag.withDescription("only letters of this actor")),
  tenant: Flag.String("tenant").pipe(Flag.optional, Flag.withDescription("only letters of this tenant")),
  limit: Flag.Int("limit").pipe(Flag.withDefault(defaultLimit), Flag.withDescription("letters per page")),
  after: Flag.Int("after").pipe(Flag.withDefault(0), Flag.withDescription("start after this letter number")),
  json: Output.jsonFlag("print the page as JSON: {letters, unreadable, more, next}")
}, (args) =>
  Effect.gen(function*() {
    const actor = Option.getOrUndefined(args.actor)
    const tenant = Option.getOrUndefined(args.tenant)
    const page = yield* DeadLetters.list(yield* names, { actor, tenant, limit: args.limit, after: args.after })
    const next = page.more > 0
      ? ["msgsys dlq list", `--after ${page.last ?? args.after}`, args.limit !== defaultLimit ? `--limit ${args.limit}` : "",
        actor !== undefined ? `--actor ${actor}` : "", tenant !== undefined ? `--tenant ${tenant}` : "",
        args.json ? "--json" : ""].filter((s) => s.length > 0).join(" ")
      : undefined
    if (args.json) {
      return yield* Console.log(JSON.stringify({
        letters: page.letters.map(({ sequence, letter }) => ({ sequence, ...letter })),
        unreadable: page.unreadable,
        more: page.more,
        next: next ?? null
      }, null, 2))
    }
    if (page.letters.length === 0 && page.unreadable.length === 0 && page.more === 0) {
      return yield* Console.log(args.after > 0 ? `no dead letters after #${args.after}` : "no dead letters")
    }
    const style = Style.stdout()
    for (const { sequence, letter } of page.letters) yield* Console.log(line(style, sequence, letter))
    for (const sequence of page.unreadable) {
      yield* Console.log(`#${sequence}  not a msgsys dead letter (msgsys dlq show ${sequence} says why)`)
    }
    if (next !== undefined) yield* Console.log(`${page.more} more: ${next}`)
  }).pipe(Effect.provide(natsLayer), Effect.scoped)).pipe(
    Command.withDescription("list dead letters, oldest first, a page at a time"),
    Command.withExamples([
      { command: "msgsys dlq list", description: "the first 100 letters" },
      { command: "msgsys dlq list --actor etl --tenant acme --limit 20", description: "one actor's letters of one tenant" },
      { command: "msgsys dlq list --after 1234", description: "the next page (the last line names the command)" },
      { command: "msgsys dlq list --json | jq -r '.letters[].sequence'", description: "letter numbers for a script" }
    ])
  )

const previewBytes = 200

/** The body as a JSON value when it is JSON text, else a preview. */
const bodyView = (body: Uint8Array) => {
  try {
    return { body: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body)) as unknown }
  } catch {
    const head = new TextDecoder().decode(body.subarray(0, previewBytes))
    return { bodyPreview: body.length > previewBytes ? `${head}…` : head }
  }
}

const showText = (style: Style.Style, full: DeadLetters.Full) => {
  const { sequence, letter: l, headers, body } = full
  const at = (ms: number) => new Date(ms).toISOString()
  const lines = [
    `${style.bold(`dead letter #${sequence}`)}: task ${l.taskId}  ${l.subject}  actor ${l.actor}  tenant ${l.tenant}`,
    `reason     ${style.red(l.reason)} after ${l.attempts} attempt(s), dead-lettered ${at(l.deadLetteredAt)}`,
    `error      ${l.error.tag}: ${l.error.message}`,
    `original   #${l.streamSequence} of ${l.stream} on ${l.storedSubject}, stored ${at(l.storedAt)}`
  ]
  if (l.historyDropped > 0) lines.push(`history    (${l.historyDropped} older attempt(s) left out)`)
  for (const h of l.history) lines.push(`history    attempt ${h.attempt} at ${at(h.at)}: ${h.error.tag}: ${oneLine(h.error.message)}`)
  if (l.trimmed.length > 0) lines.push(`trimmed    ${l.trimmed.join(", ")}`)
  for (const [k, v] of Object.entries(headers)) lines.push(`header     ${k}: ${v}`)
  if (body === undefined) lines.push(`body       ${style.red(`missing: the body part #${l.bodySequence} is gone`)}`)
  else {
    const view = bodyView(body)
    lines.push(`body       ${size(body.length)}: ${"body" in view ? JSON.stringify(view.body) : JSON.stringify(view.bodyPreview)}`)
  }
  return lines.join("\n")
}

const show = Command.make("show", {
  sequence: Argument.Int("sequence").pipe(Argument.withDescription("the letter's number, as dlq list prints it")),
  json: Output.jsonFlag("print the letter, its headers and its body (JSON, or a preview) as JSON")
}, (args) =>
  Effect.gen(function*() {
    const full = yield* DeadLetters.read(yield* names, args.sequence)
    if (!args.json) return yield* Console.log(showText(Style.stdout(), full))
    const { letter, headers, body } = full
    yield* Output.json({
      sequence: args.sequence,
      ...letter,
      headers,
      ...(body === undefined
        ? { bodyMissing: `the body part #${letter.bodySequence} is gone` }
        : { bodySize: body.length, ...bodyView(body) })
    })
  }).pipe(Effect.provide(natsLayer), Effect.scoped)).pipe(
    Command.withDescription("print one dead letter: metadata, error, attempt history, headers and body"),
    Command.withExamples([
      { command: "msgsys dlq show 1234", description: "one letter for a person" },
      { command: "msgsys dlq show 1234 --json | jq .body", description: "its body as JSON" }
    ])
  )

// ---------------------------------------------------------------------------------------------
// replay and purge

const actorFlag = Flag.String("actor").pipe(Flag.optional, Flag.withDescription("only letters of this actor"))
const tenantFlag = Flag.String("tenant").pipe(Flag.optional, Flag.withDescription("only letters of this tenant"))
const subjectFlag = Flag.String("subject").pipe(
  Flag.optional,
  Flag.withDescription("only letters of this task subject, or a pattern such as etl.* or etl.>")
)

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/** A line for what a batch did: `replayed 3 dead letters, 1 gone already`. */
const summary = (done: string, counts: ReadonlyArray<readonly [number, string]>) =>
  [done, ...counts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`)].join(", ")

/** A letter number, or --all with its filters; told before connecting. */
const replaySelection = (args: {
  readonly sequence: Option.Option<number>
  readonly all: boolean
  readonly given: ReadonlyArray<string>
}): Effect.Effect<void, InvalidArguments> => {
  if (Option.isSome(args.sequence) && (args.all || args.given.length > 0)) {
    return Effect.fail(new InvalidArguments({
      problem: `a letter number and ${args.all ? "--all" : args.given.join(", ")} were both given`,
      fix: "replay one letter by its number, or the letters --all selects with --actor, --tenant, --subject, --since"
    }))
  }
  if (Option.isNone(args.sequence) && !args.all) {
    return Effect.fail(new InvalidArguments({
      problem: args.given.length > 0 ? `${args.given.join(", ")} select letters for --all, which was not given` : "no letter given",
      fix: "give the number of a dead letter (msgsys dlq list shows them), or --all to replay every letter the filters select"
    }))
  }
  return Effect.void
}

const replay = Command.make("replay", {
  sequence: Argument.Int("sequence").pipe(Argument.optional, Argument.withDescription("the letter's number (msgsys dlq list)")),
  all: Flag.Boolean("all").pipe(Flag.withDefault(false), Flag.withDescription("replay every letter the filters select")),
  actor: actorFlag,
  tenant: tenantFlag,
  subject: subjectFlag,
  since: Flag.String("since").pipe(Flag.optional, Flag.withDescription("only letters dead-lettered this recently, e.g. 1h, 7d"))
}, (args) =>
  Effect.andThen(
    replaySelection({
      sequence: args.sequence,
      all: args.all,
      given: ([["--actor", args.actor], ["--tenant", args.tenant], ["--subject", args.subject], ["--since", args.since]] as const)
        .filter(([, v]) => Option.isSome(v)).map(([f]) => f)
    }),
    Effect.gen(function*() {
      const n = yield* names
      if (Option.isSome(args.sequence)) {
        const taskId = yield* DeadLetters.replay(n, args.sequence.value)
        return yield* Console.log(`replayed #${args.sequence.value} as task ${taskId}`)
      }
      const now = yield* Clock.currentTimeMillis
      const since = Option.isSome(args.since) ? now - Duration.toMillis(yield* parseDuration("--since", args.since.value)) : undefined
      const { letters, unreadable } = yield* DeadLetters.select(n, {
        actor: Option.getOrUndefined(args.actor),
        tenant: Option.getOrUndefined(args.tenant),
        subject: Option.getOrUndefined(args.subject),
        since
      })
      const progress = Progress.make({ label: "dead letters replayed" })
      let replayed = 0
      let gone = 0
      const bodiless: Array<number> = []
      for (const [i, letter] of letters.entries()) {
        const outcome = yield* DeadLetters.replay(n, letter.sequence).pipe(
          Effect.as("replayed" as const),
          Effect.catchTags({
            // replayed by someone else, the DLQ worker or an earlier run of this command meanwhile
            LetterNotFound: () => Effect.succeed("gone" as const),
            LetterBodyMissing: () => Effect.succeed("bodiless" as const)
          }),
          Effect.tapError(() =>
            Effect.sync(() => {
              progress.finish()
              process.stderr.write(
                `stopped after replaying ${plural(replayed, "dead letter")} of ${letters.length}: ` +
                  "run the same command again to replay the rest (replayed letters are gone; a letter whose replay " +
                  "was stored before the error is not enqueued twice)\n"
              )
            })
          )
        )
        if (outcome === "replayed") replayed++
        else if (outcome === "gone") gone++
        else bodiless.push(letter.sequence)
        progress.update(i + 1, letters.length)
      }
      progress.finish()
      yield* Console.log(summary(`replayed ${plural(replayed, "dead letter")}`, [
        [gone, "gone already"],
        [bodiless.length, `left: the body is gone (${bodiless.map((s) => `#${s}`).join(", ")}; msgsys dlq show prints them)`],
        [unreadable, "not msgsys letters, left alone (msgsys dlq list shows them)"]
      ]))
    }).pipe(Effect.provide(clientLayer), Effect.scoped))).pipe(
    Command.withDescription(
      "republish dead letters' original messages through the normal path (a fresh attempt count), then remove the " +
        "letters; a letter's replay is stored once even when run twice"
    ),
    Command.withExamples([
      { command: "msgsys dlq replay 1234", description: "one letter" },
      { command: "msgsys dlq replay --all --actor etl --since 1h", description: "every letter of etl from the last hour, with a progress bar on a terminal" },
      { command: "msgsys dlq replay --all --subject 'etl.>' --tenant acme", description: "by subject pattern and tenant" }
    ])
  )

/** Asks on a terminal, or needs --yes elsewhere (a script must say it means it). */
const confirm = (yes: boolean, question: string, what: string) =>
  Effect.gen(function*() {
    if (yes) return true
    if (process.stdin.isTTY !== true) {
      return yield* new InvalidArguments({
        problem: `${what}, and stdin is not a terminal to ask on`,
        fix: "pass --yes to go ahead"
      })
    }
    return yield* Prompt.run(Prompt.Confirm({ message: question }))
  })

const purge = Command.make("purge", {
  actor: actorFlag,
  tenant: tenantFlag,
  subject: subjectFlag,
  olderThan: Flag.String("older-than").pipe(
    Flag.optional,
    Flag.withDescription("only letters dead-lettered longer ago than this, e.g. 7d")
  ),
  yes: Flag.Boolean("yes").pipe(Flag.withDefault(false), Flag.withDescription("do not ask (needed when stdin is not a terminal)"))
}, (args) =>
  Effect.gen(function*() {
    const n = yield* names
    const now = yield* Clock.currentTimeMillis
    const before = Option.isSome(args.olderThan)
      ? now - Duration.toMillis(yield* parseDuration("--older-than", args.olderThan.value))
      : undefined
    const { letters } = yield* DeadLetters.select(n, {
      actor: Option.getOrUndefined(args.actor),
      tenant: Option.getOrUndefined(args.tenant),
      subject: Option.getOrUndefined(args.subject),
      before
    })
    if (letters.length === 0) return yield* Console.log("no dead letters match: nothing deleted")
    const which = [
      Option.map(args.actor, (a) => `of actor ${a}`),
      Option.map(args.tenant, (t) => `of tenant ${t}`),
      Option.map(args.subject, (s) => `of subject ${s}`),
      Option.map(args.olderThan, (d) => `older than ${d}`)
    ].flatMap(Option.toArray).join(", ")
    const what = `purge would delete ${plural(letters.length, "dead letter")}${which ? ` (${which})` : ""} for good`
    if (!(yield* confirm(args.yes, `Delete ${plural(letters.length, "dead letter")}${which ? ` (${which})` : ""} for good?`, what))) {
      return yield* Console.log("nothing deleted")
    }
    const progress = Progress.make({ label: "dead letters deleted" })
    let deleted = 0
    for (const [i, letter] of letters.entries()) {
      if (yield* DeadLetters.remove(n, letter)) deleted++
      progress.update(i + 1, letters.length)
    }
    progress.finish()
    yield* Console.log(summary(`deleted ${plural(deleted, "dead letter")}`, [[letters.length - deleted, "gone already"]]))
  }).pipe(Effect.provide(natsLayer), Effect.scoped)).pipe(
    Command.withDescription("delete dead letters for good (asks first on a terminal; --yes elsewhere)"),
    Command.withExamples([
      { command: "msgsys dlq purge --older-than 30d", description: "letters older than 30 days, after asking" },
      { command: "msgsys dlq purge --actor etl --tenant acme --yes", description: "in a script: --yes instead of the question" }
    ])
  )

// ---------------------------------------------------------------------------------------------
// exhausted

const databaseLayer = Services.database.pipe(Layer.provideMerge(DevState.configLayer))
const exhaustedLayer = Services.exhaustedStore.pipe(Layer.provideMerge(databaseLayer))

const exhaustedLine = (e: Exhausted) => {
  const error = typeof e.error === "object" && e.error !== null && typeof (e.error as { message?: unknown }).message === "string"
    ? (e.error as { message: string }).message
    : JSON.stringify(e.error)
  return `${e.id}  ${new Date(e.exhaustedAt).toISOString()}  ${e.originalSubject}  tenant=${e.tenant}  ` +
    `${e.reason}, ${plural(e.retries, "DLQ retry", "DLQ retries")}: ${oneLine(error)}` +
    (e.replayedAt !== undefined ? `  [replayed ${new Date(e.replayedAt).toISOString()}]` : "")
}

const exhaustedList = Command.make("list", {
  actor: actorFlag,
  tenant: tenantFlag,
  limit: Flag.Int("limit").pipe(Flag.withDefault(defaultLimit), Flag.withDescription("letters to show, newest first")),
  json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print them as JSON"))
}, (args) =>
  Effect.gen(function*() {
    const store = yield* ExhaustedStore
    const filter = { actor: Option.getOrUndefined(args.actor), tenant: Option.getOrUndefined(args.tenant) }
    const rows = yield* store.list({ ...filter, limit: args.limit })
    const total = yield* store.count(filter)
    if (args.json) {
      return yield* Console.log(JSON.stringify({ letters: rows.map(({ payload: _, ...row }) => row), more: total - rows.length }, null, 2))
    }
    if (rows.length === 0) return yield* Console.log("no exhausted letters")
    for (const row of rows) yield* Console.log(exhaustedLine(row))
    if (total > rows.length) yield* Console.log(`${total - rows.length} older: msgsys dlq exhausted list --limit ${total}`)
  }).pipe(Effect.provide(exhaustedLayer), Effect.scoped)).pipe(
    Command.withDescription("list the letters the DLQ worker gave up on, newest first"),
    Command.withExamples([
      { command: "msgsys dlq exhausted list", description: "the newest 100" },
      { command: "msgsys dlq exhausted list --actor etl --json", description: "one actor's, as JSON" }
    ])
  )

const exhaustedShow = Command.make("show", { id: Argument.String("task-id") }, (args) =>
  Effect.gen(function*() {
    const store = yield* ExhaustedStore
    const row = yield* store.get(args.id)
    if (Option.isNone(row)) return yield* new ExhaustedLetters.ExhaustedNotFound({ id: args.id })
    const { payload, ...rest } = row.value
    const body = Uint8Array.from(Buffer.from(payload, "base64"))
    yield* Console.log(JSON.stringify({ ...rest, bodySize: body.length, ...bodyView(body) }, null, 2))
  }).pipe(Effect.provide(exhaustedLayer), Effect.scoped)).pipe(
    Command.withDescription("print one exhausted letter: reason, error, attempt history, headers and body (JSON)"),
    Command.withExamples([{ command: "msgsys dlq exhausted show 01JD3Q5Z8X2M4W7K9R1T6Y0B3C", description: "by the task id dlq exhausted list prints" }])
  )

const exhaustedReplay = Command.make("replay", {
  id: Argument.String("task-id").pipe(Argument.optional),
  all: Flag.Boolean("all").pipe(Flag.withDefault(false), Flag.withDescription("replay every exhausted letter the filters select")),
  actor: actorFlag,
  tenant: tenantFlag,
  again: Flag.Boolean("again").pipe(Flag.withDefault(false), Flag.withDescription("also replay letters replayed before"))
}, (args) =>
  Effect.gen(function*() {
    const n = yield* names
    const store = yield* ExhaustedStore
    const given = [["--actor", args.actor], ["--tenant", args.tenant]].filter(([, v]) => Option.isSome(v as Option.Option<string>))
    if (Option.isSome(args.id)) {
      if (args.all || given.length > 0) {
        return yield* new InvalidArguments({
          problem: `a task id and ${args.all ? "--all" : given.map(([f]) => f).join(", ")} were both given`,
          fix: "replay one exhausted letter by its task id, or the letters --all selects with --actor and --tenant"
        })
      }
      const taskId = yield* ExhaustedLetters.replay(n, args.id.value, { again: args.again })
      return yield* Console.log(`replayed exhausted letter ${taskId}`)
    }
    if (!args.all) {
      return yield* new InvalidArguments({
        problem: given.length > 0 ? `${given.map(([f]) => f).join(", ")} select letters for --all, which was not given` : "no letter given",
        fix: "give the task id of an exhausted letter (msgsys dlq exhausted list shows them), or --all"
      })
    }
    const filter = { actor: Option.getOrUndefined(args.actor), tenant: Option.getOrUndefined(args.tenant) }
    const rows = (yield* store.list({ ...filter, limit: Math.max(1, yield* store.count(filter)) }))
      .filter((r) => args.again || r.replayedAt === undefined)
    const progress = Progress.make({ label: "exhausted letters replayed" })
    let replayed = 0
    let skipped = 0
    for (const [i, row] of rows.entries()) {
      const outcome = yield* ExhaustedLetters.replay(n, row.id, { again: args.again }).pipe(
        Effect.as(true),
        // deleted or replayed by someone else meanwhile
        Effect.catchTags({ ExhaustedNotFound: () => Effect.succeed(false), AlreadyReplayed: () => Effect.succeed(false) }),
        Effect.tapError(() => Effect.sync(() => progress.finish()))
      )
      if (outcome) replayed++
      else skipped++
      progress.update(i + 1, rows.length)
    }
    progress.finish()
    yield* Console.log(summary(`replayed ${plural(replayed, "exhausted letter")}`, [[skipped, "gone or replayed meanwhile"]]))
  }).pipe(Effect.provide(Layer.merge(clientLayer, exhaustedLayer)), Effect.scoped)).pipe(
    Command.withDescription(
      "republish exhausted letters through the normal path (a fresh attempt count) and mark them replayed; " +
        "one already replayed needs --again"
    ),
    Command.withExamples([
      { command: "msgsys dlq exhausted replay 01JD3Q5Z8X2M4W7K9R1T6Y0B3C", description: "one letter, once the cause is fixed" },
      { command: "msgsys dlq exhausted replay --all --actor etl", description: "every one of an actor not replayed yet" }
    ])
  )

const exhaustedDelete = Command.make("delete", { id: Argument.String("task-id") }, (args) =>
  Effect.gen(function*() {
    const store = yield* ExhaustedStore
    if (!(yield* store.remove(args.id))) return yield* new ExhaustedLetters.ExhaustedNotFound({ id: args.id })
    yield* Console.log(`deleted exhausted letter ${args.id}`)
  }).pipe(Effect.provide(exhaustedLayer), Effect.scoped)).pipe(
    Command.withDescription("delete one exhausted letter for good"),
    Command.withExamples([{ command: "msgsys dlq exhausted delete 01JD3Q5Z8X2M4W7K9R1T6Y0B3C", description: "by its task id" }])
  )

const exhausted = Command.make("exhausted").pipe(
  Command.withDescription("the dead letters the DLQ worker gave up on, kept in the SQLite file"),
  Command.withExamples([
    { command: "msgsys dlq exhausted list", description: "what the DLQ worker gave up on" },
    { command: "msgsys dlq exhausted replay --all", description: "try them all again" }
  ]),
  Command.withSubcommands([exhaustedList, exhaustedShow, exhaustedReplay, exhaustedDelete])
)

/** @category commands @since 0.1.0 */
export const dlq = Command.make("dlq").pipe(
  Command.withDescription("inspect, replay and delete dead letters, and the exhausted ones"),
  Command.withExamples([
    { command: "msgsys dlq list", description: "what is there" },
    { command: "msgsys dlq show 1234", description: "why one letter died" },
    { command: "msgsys dlq replay 1234", description: "run it again" }
  ]),
  Command.withSubcommands([list, show, replay, purge, exhausted])
)

/** @category commands @since 0.1.0 */
export const dlqWorker = Command.make("dlq-worker", {}, () =>
  Effect.gen(function*() {
    const settings = yield* MsgsysConfig.MsgsysConfig
    yield* MsgsysConfig.warnUnknownVariables(process.env).pipe(Effect.provide(Logging.logging(settings)))
    const services = Services.layerWith(Layer.succeed(MsgsysConfig.MsgsysConfig, settings))
    return yield* Layer.launch(DlqWorker.layer.pipe(Layer.provide(services))).pipe(Effect.provide(Logging.logging(settings)))
  }).pipe(Effect.provide(DevState.configLayer))).pipe(
    Command.withDescription(
      "run only the DLQ worker until SIGTERM/SIGINT: retry dead letters with long backoff, store what still fails as " +
        "exhausted (msgsys worker runs one too unless MSGSYS_DLQ_WORKER=off)"
    ),
    Command.withExamples([
      { command: "MSGSYS_DLQ_WORKER=off msgsys worker & msgsys dlq-worker", description: "workers without one, and one on its own" }
    ])
  )
