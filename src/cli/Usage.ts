/**
 * How the command line answers a person or a script: the exit codes, help on stdout when asked
 * for, and a command line it cannot run told on stderr in a line or two (what is wrong, the usage,
 * where the help is) instead of the whole help page, so stdout stays empty for a script to check.
 * @since 0.1.0
 */
import { Data, Effect, Runtime } from "effect"
import { CliError, CliOutput, Flag, GlobalFlag } from "effect/cli"
import type { HelpDoc } from "effect/cli/HelpDoc"
import * as Style from "./Style.ts"

/**
 * What `msgsys` exits with: `ok` (0) the command did what was asked; `failure` (1) it could not
 * (the broker is away, no such task, a task failed, bad configuration); `usage` (2) the command
 * line itself is wrong (an unknown command or flag, a missing or malformed argument).
 * @category constants @since 0.1.0
 */
export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const

/**
 * A command line msgsys cannot run. What is wrong was printed already (with the usage), so the
 * runner only exits 2.
 * @category errors @since 0.1.0
 */
export class UsageError extends Data.TaggedError("UsageError")<{
  readonly commandPath: ReadonlyArray<string>
  readonly problems: ReadonlyArray<string>
}> {
  override readonly [Runtime.errorExitCode] = ExitCode.usage
  override readonly [Runtime.errorReported] = false
  override get message() {
    const command = this.commandPath.join(" ")
    return this.problems.length === 0
      ? `${command} needs a subcommand: \`${command} --help\` lists them`
      : `${this.problems.join("; ")}: \`${command} --help\` shows the usage`
  }
}

/**
 * `effect/cli`'s "show the help" failure (a parse error, or a group run without a subcommand) as
 * a `UsageError`; other errors pass through.
 * @category errors @since 0.1.0
 */
export const asUsageError = <E>(error: E): E | UsageError =>
  CliError.isCliError(error) && error._tag === "ShowHelp"
    ? new UsageError({ commandPath: error.commandPath, problems: error.errors.map((e) => e.message) })
    : error

/**
 * `--verbose`: a failure prints its whole cause with stack traces. Declared so the parser accepts
 * it anywhere on the line and the help lists it; the runner reads it from the arguments
 * (`isVerbose`), because it prints the failure of any command after that command has ended.
 * @category flags @since 0.1.0
 */
export const Verbose = GlobalFlag.Setting("verbose")({
  flag: Flag.Boolean("verbose").pipe(
    Flag.withDefault(false),
    Flag.withDescription("On a failure, print every error with its stack trace")
  )
})

/** Whether `--verbose` is among the arguments (before a `--`). @category flags @since 0.1.0 */
export const isVerbose = (argv: ReadonlyArray<string>): boolean => {
  const end = argv.indexOf("--")
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === "--verbose" || a === "--verbose=true")
}

const formatter = (to: Style.Stream) => CliOutput.defaultFormatter({ colors: Style.enabled(to) })

const problemLines = (commandPath: ReadonlyArray<string>, doc: HelpDoc, problems: ReadonlyArray<string>) => {
  const command = commandPath.join(" ")
  return [
    ...problems.map((p) => `msgsys: ${p}`),
    `usage: ${doc.usage}    (\`${command} --help\` shows every flag, with examples)`
  ].join("\n")
}

/**
 * Help asked for goes to stdout; help nobody asked for (a group run without a subcommand) and
 * parse errors go to stderr, the errors as `msgsys: <problem>` lines with the usage.
 * @category presenters @since 0.1.0
 */
export const presenter: CliOutput.Presenter = {
  present: (event) =>
    Effect.sync(() => {
      switch (event._tag) {
        case "Help":
          return event.reason === "Requested"
            ? void process.stdout.write(`${formatter(process.stdout).formatHelpDoc(event.helpDoc)}\n`)
            : void process.stderr.write(`${formatter(process.stderr).formatHelpDoc(event.helpDoc)}\n`)
        case "InvalidInvocation":
          return void process.stderr.write(
            `${problemLines(event.commandPath, event.helpDoc, event.errors.map((e) => e.message))}\n`
          )
        case "Version":
          return void process.stdout.write(`${formatter(process.stdout).formatVersion(event.name, event.version)}\n`)
      }
    })
}
