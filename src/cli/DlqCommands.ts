/**
 * `msgsys dlq list|show|replay`: inspect and replay dead letters.
 * @since 0.1.0
 */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Subjects from "../broker/Subjects.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import * as DeadLetter from "../dlq/DeadLetter.ts"
import * as DeadLetters from "../dlq/DeadLetters.ts"
import { clientLayer, natsLayer } from "./CliLayers.ts"

const names = Effect.map(MsgsysConfig.MsgsysConfig, (c) => Subjects.make(c.streamPrefix))

const list = Command.make("list", {
  actor: Flag.String("actor").pipe(Flag.optional),
  tenant: Flag.String("tenant").pipe(Flag.optional),
  limit: Flag.Int("limit").pipe(Flag.withDefault(100)),
  json: Flag.Boolean("json").pipe(Flag.withDefault(false))
}, (args) =>
  Effect.gen(function*() {
    const letters = yield* DeadLetters.list(yield* names, {
      ...(Option.isSome(args.actor) ? { actor: args.actor.value } : {}),
      ...(Option.isSome(args.tenant) ? { tenant: args.tenant.value } : {}),
      limit: args.limit
    })
    if (args.json) return yield* Console.log(JSON.stringify(letters, null, 2))
    if (letters.length === 0) return yield* Console.log("no dead letters")
    for (const { sequence, letter } of letters) {
      yield* Console.log(
        `#${sequence}  ${new Date(letter.deadLetteredAt).toISOString()}  ${letter.subject}  tenant=${letter.tenant}  ` +
          `task=${letter.taskId}  ${letter.reason} after ${letter.attempts} attempt(s): ${letter.error.message}`
      )
    }
  }).pipe(Effect.provide(natsLayer), Effect.scoped)).pipe(Command.withDescription("list dead letters"))

const show = Command.make("show", { sequence: Argument.Int("sequence") }, (args) =>
  Effect.gen(function*() {
    const { letter } = yield* DeadLetters.get(yield* names, args.sequence)
    const body = new TextDecoder().decode(DeadLetter.payloadBytes(letter))
    yield* Console.log(JSON.stringify({ ...letter, payload: body }, null, 2))
  }).pipe(Effect.provide(natsLayer), Effect.scoped)).pipe(
    Command.withDescription("print one dead letter: headers, payload, error and attempt history")
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
