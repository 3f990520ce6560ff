#!/usr/bin/env bun
/**
 * The `msgsys` command. `bun src/cli/main.ts` runs it from the source tree; `scripts/build`
 * compiles it, with the actors of `actors/` built in, into one executable (`dist/msgsys`).
 * @since 0.1.0
 */
import { Effect } from "effect"
import { CliOutput, Command } from "effect/cli"
import type * as App from "../app/App.ts"
import * as Main from "../app/Main.ts"
import { audit } from "./AuditCommands.ts"
import * as BunServices from "./BunServices.ts"
import { dlq, dlqWorker } from "./DlqCommands.ts"
import * as Entry from "./Entry.ts"
import { events } from "./EventCommands.ts"
import { pipeline } from "./PipelineCommands.ts"
import { schedule, scheduler } from "./ScheduleCommands.ts"
import { cancel, enqueue, pause, result, resume } from "./TaskCommands.ts"
import * as UnknownCommand from "./UnknownCommand.ts"
import * as Usage from "./Usage.ts"
import { status } from "./StatusCommand.ts"
import { dev, topology, worker } from "./WorkerCommands.ts"

/** What `msgsys --version` prints (kept here: a compiled binary has no package.json to read). @category constants @since 0.1.0 */
export const version = "0.1.0"

/** The `msgsys` command and its subcommands. @category commands @since 0.1.0 */
export const msgsys = Command.make("msgsys").pipe(
  Command.withDescription(
    "msgsys: tasks, events, schedules and pipelines on NATS JetStream.\n" +
      "Exit codes: 0 done, 1 failed (the message says why and how to fix it), 2 the command line is wrong."
  ),
  Command.withExamples([
    { command: "msgsys dev", description: "start an embedded NATS and the workers of actors/" },
    { command: "msgsys enqueue etl.extract '{\"tenant\":\"acme\",\"source\":\"crm\",\"rows\":10}' --wait", description: "run a task and print its output" },
    { command: "msgsys dlq list --json", description: "dead letters as JSON" },
    { command: "msgsys enqueue --help", description: "every command has help with examples" }
  ]),
  Command.withGlobalFlags([Usage.Verbose]),
  Command.withSubcommands([dev, worker, scheduler, dlqWorker, status, topology, enqueue, result, cancel, pause, resume, schedule, events, pipeline, dlq, audit])
)

/** How `run` runs the command line. @category models @since 0.1.0 */
export interface RunOptions {
  /** The app to run when no `--entry` is given (a compiled executable has no `actors/` to import). */
  // any actors: an app's type names its own actor tuple, which a wider App type does not accept
  readonly bundled?: App.App<any, unknown> | undefined
  /** Default `process.argv.slice(2)`. */
  readonly argv?: ReadonlyArray<string> | undefined
}

/**
 * Runs the command line as the process: exit 0 when done, 1 on a failure (one line naming the
 * problem and the fix; every error with its stack under `--verbose`), 2 on a wrong command line.
 * @category running @since 0.1.0
 */
export const run = (options: RunOptions = {}): void => {
  const argv = options.argv ?? process.argv.slice(2)
  Main.run(
    UnknownCommand.check(msgsys, argv).pipe(
      Effect.andThen(Command.runWith(msgsys, { version })(argv)),
      Effect.mapError(Usage.asUsageError),
      Effect.provideService(Entry.Bundled, options.bundled),
      Effect.provide(CliOutput.layerPresenter(Usage.presenter)),
      Effect.provide(BunServices.layer)
    ),
    { verbose: Usage.isVerbose(argv) }
  )
}

if (import.meta.main) run()
