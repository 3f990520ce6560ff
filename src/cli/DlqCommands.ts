/**
 * `msgsys dlq list|show|replay`: inspect and replay dead letters.
 * @since 0.1.0
 */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Subjects from "../broker/Subjects.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import type * as DeadLetter from "../dlq/DeadLetter.ts"
import * as DeadLetters from "../dlq/DeadLetters.ts"
import { clientLayer, natsLayer } from "./CliLayers.ts"

const names = Effect.map(MsgsysConfig.MsgsysConfig, (c) => Subjects.make(c.streamPrefix))

const defaultLimit = 100

/** `1.5 KB`, `900.0 KB`, `12 B`. */
const size = (bytes: number) =>
  bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`

const oneLine = (text: string, max = 200) => {
  const flat = text.replace(/\s+/g, " ")
  return flat.length > max ? `${flat.slice(0, max)}…` : flat
}

const line = (sequence: number, l: DeadLetter.Letter) =>
  `#${sequence}  ${new Date(l.deadLetteredAt).toISOString()}  ${l.subject}  tenant=${l.tenant}  task=${l.taskId}  ` +
  `${l.reason} after ${l.attempts} attempt(s): ${oneLine(l.error.message)}  [body ${size(l.bodySize)}]`

const list = Command.make("list", {
  actor: Flag.String("actor").pipe(Flag.optional, Flag.withDescription("only letters of this actor")),
  tenant: Flag.String("tenant").pipe(Flag.optional, Flag.withDescription("only letters of this tenant")),
  limit: Flag.Int("limit").pipe(Flag.withDefault(defaultLimit), Flag.withDescription("letters per page")),
  after: Flag.Int("after").pipe(Flag.withDefault(0), Flag.withDescription("start after this letter number")),
  json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print the page as JSON"))
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
    for (const { sequence, letter } of page.letters) yield* Console.log(line(sequence, letter))
    for (const sequence of page.unreadable) {
      yield* Console.log(`#${sequence}  not a msgsys dead letter (msgsys dlq show ${sequence} says why)`)
    }
    if (next !== undefined) yield* Console.log(`${page.more} more: ${next}`)
  }).pipe(Effect.provide(natsLayer), Effect.scoped)).pipe(
    Command.withDescription("list dead letters, oldest first, a page at a time")
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

const show = Command.make("show", { sequence: Argument.Int("sequence") }, (args) =>
  Effect.gen(function*() {
    const { letter, headers, body } = yield* DeadLetters.read(yield* names, args.sequence)
    yield* Console.log(JSON.stringify({
      sequence: args.sequence,
      ...letter,
      headers,
      ...(body === undefined
        ? { bodyMissing: `the body part #${letter.bodySequence} is gone` }
        : { bodySize: body.length, ...bodyView(body) })
    }, null, 2))
  }).pipe(Effect.provide(natsLayer), Effect.scoped)).pipe(
    Command.withDescription("print one dead letter: metadata, error, attempt history, headers and body")
  )

const replay = Command.make("replay", { sequence: Argument.Int("sequence") }, (args) =>
  Effect.gen(function*() {
    const taskId = yield* DeadLetters.replay(yield* names, args.sequence)
    yield* Console.log(`replayed #${args.sequence} as task ${taskId}`)
  }).pipe(Effect.provide(clientLayer), Effect.scoped)).pipe(
    Command.withDescription("republish a dead letter's original message, then remove the letter")
  )

/** @category commands @since 0.1.0 */
export const dlq = Command.make("dlq").pipe(
  Command.withDescription("inspect and replay dead letters"),
  Command.withSubcommands([list, show, replay])
)
