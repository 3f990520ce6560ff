/**
 * Catches a misspelt subcommand before `effect/cli` sees it: with `--help` anywhere on the line,
 * `effect/cli` 4.1.0 shows the nearest known command's help and exits 0, so a script calling
 * `msgsys frobnicate --help` learns nothing. This names the unknown command and fails.
 * @since 0.1.0
 */
import { Data, Effect, Runtime } from "effect"
import type { Command } from "effect/cli"
import { ExitCode } from "./Usage.ts"

/** A word where a subcommand was expected names none. @category errors @since 0.1.0 */
export class UnknownCommand extends Data.TaggedError("UnknownCommand")<{
  readonly path: ReadonlyArray<string>
  readonly name: string
  readonly known: ReadonlyArray<string>
}> {
  override readonly [Runtime.errorExitCode] = ExitCode.usage
  override get message() {
    const parent = this.path.join(" ")
    return `unknown command ${JSON.stringify(this.name)} for ${parent}: use one of ${this.known.join(", ")} ` +
      `(\`${parent} --help\` describes them)`
  }
}

// built-in flags that take no value; every other flag before a subcommand takes one (--log-level debug)
const noValue = new Set(["--help", "-h", "--version", "-v", "--wizard", "--verbose"])

/**
 * Walks `argv` down `root`'s subcommands and fails on the first word that names none. Stops at
 * a command without subcommands: its own arguments are its parser's business.
 * @category validation @since 0.1.0
 */
export const check = (root: Command.Command.Any, argv: ReadonlyArray<string>): Effect.Effect<void, UnknownCommand> =>
  Effect.suspend(() => {
    let command = root
    const path = [root.name]
    for (let i = 0; i < argv.length && command.subcommands.length > 0; i++) {
      const token = argv[i]!
      if (token === "--") break
      if (token.startsWith("-")) {
        const next = argv[i + 1]
        if (!token.includes("=") && (!noValue.has(token) || next === "true" || next === "false")) i++
        continue
      }
      const commands = command.subcommands.flatMap((g) => g.commands)
      const sub = commands.find((c) => c.name === token || c.alias === token)
      if (sub === undefined) {
        return Effect.fail(
          new UnknownCommand({ path, name: token, known: commands.filter((c) => !c.unlisted).map((c) => c.name) })
        )
      }
      command = sub
      path.push(sub.name)
    }
    return Effect.void
  })
