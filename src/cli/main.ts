#!/usr/bin/env bun
/**
 * The `msgsys` command.
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Command } from "effect/cli"
import * as Main from "../runtime/Main.ts"
import * as BunServices from "./BunServices.ts"
import { cancel, enqueue, pause, result, resume } from "./TaskCommands.ts"
import { status } from "./StatusCommand.ts"
import { dev, topology, worker } from "./WorkerCommands.ts"
import { audit } from "./AuditCommands.ts"
import { dlq, dlqWorker } from "./DlqCommands.ts"
import { events } from "./EventCommands.ts"
import { pipeline } from "./PipelineCommands.ts"
import { schedule, scheduler } from "./ScheduleCommands.ts"
import * as UnknownCommand from "./UnknownCommand.ts"

/** @category commands @since 0.1.0 */
export const msgsys = Command.make("msgsys").pipe(
  Command.withDescription("msgsys: tasks, events, schedules and pipelines on NATS JetStream"),
  Command.withSubcommands([dev, worker, scheduler, dlqWorker, status, topology, enqueue, result, cancel, pause, resume, schedule, events, pipeline, dlq, audit])
)

if (import.meta.main) {
  Main.run(
    UnknownCommand.check(msgsys, process.argv.slice(2)).pipe(
      Effect.andThen(Command.run(msgsys, { version: "0.1.0" })),
      Effect.provide(BunServices.layer)
    )
  )
}
