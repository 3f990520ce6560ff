/**
 * `msgsys enqueue|result|cancel|pause|resume`: the client side from the shell.
 * @since 0.1.0
 */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Control from "../control/Control.ts"
import * as Client from "../client/Client.ts"
import type { TaskRecord } from "../task/TaskRecord.ts"
import { InvalidJson, parseDuration } from "./CliInput.ts"
import { clientLayer } from "./CliLayers.ts"
import * as Output from "./Output.ts"
import * as Style from "./Style.ts"

const jsonFlag = Output.jsonFlag

const statusColour = (style: Style.Style, status: TaskRecord["status"]) =>
  status === "succeeded" ? style.green(status)
  : status === "dead" || status === "failed" ? style.red(status)
  : status === "cancelled" ? style.yellow(status)
  : style.cyan(status)

const iso = (ms: number | undefined) => ms === undefined ? undefined : new Date(ms).toISOString()

/** A task record for a person: what, where it stands, when, and its output or error. */
const describeRecord = (r: TaskRecord, style: Style.Style): string => {
  const ran = r.startedAt !== undefined && r.endedAt !== undefined ? `, ran ${r.endedAt - r.startedAt} ms` : ""
  const lines = [
    `${style.bold(r.id)}  ${r.subject}  ${statusColour(style, r.status)}  attempt ${r.attempt}  tenant ${r.tenant}`,
    `updated ${iso(r.updatedAt)}${ran}` +
      (r.status === "failed" && r.retryAt !== undefined ? `, retry at ${iso(r.retryAt)}` : "") +
      (r.status === "queued" && r.runAt !== undefined ? `, runs at ${iso(r.runAt)}` : "")
  ]
  if (r.output !== undefined) lines.push(`output: ${JSON.stringify(r.output)}`)
  if (r.error !== undefined) lines.push(`error: ${r.error.tag}: ${r.error.message}`)
  if (r.duplicateOf !== undefined) lines.push(`the stored outcome of ${r.duplicateOf} (same idempotency key): not run again`)
  for (const h of r.history ?? []) {
    lines.push(style.dim(`  attempt ${h.attempt} failed at ${iso(h.at)}: ${h.error.tag}: ${h.error.message}`))
  }
  return lines.join("\n")
}

/** @category commands @since 0.1.0 */
export const enqueue = Command.make("enqueue", {
  subject: Argument.String("subject").pipe(Argument.withDescription("task subject, e.g. etl.extract")),
  json: Argument.String("json").pipe(Argument.withDescription("the input as JSON"), Argument.withDefault("{}")),
  wait: Flag.Boolean("wait").pipe(Flag.withDefault(false), Flag.withDescription("wait for the result and print it")),
  timeout: Flag.String("timeout").pipe(Flag.withDefault("30s"), Flag.withDescription("how long --wait waits")),
  tenant: Flag.String("tenant").pipe(Flag.optional, Flag.withDescription("the tenant the task runs for (default: default)")),
  key: Flag.String("key").pipe(Flag.optional, Flag.withDescription("idempotency key")),
  priority: Flag.Literals("priority", ["high", "normal", "low"]).pipe(Flag.optional, Flag.withDescription("default normal")),
  delay: Flag.String("delay").pipe(Flag.optional, Flag.withDescription("run no earlier than this from now, e.g. 10s")),
  json_: jsonFlag("print {id, subject, duplicate}; with --wait, the task's final record")
}, (args) =>
  Effect.gen(function*() {
    const input = yield* Effect.try({
      try: () => JSON.parse(args.json) as unknown,
      catch: (e) => new InvalidJson({ what: "the task input", reason: (e as Error).message })
    })
    const timeout = yield* parseDuration("--timeout", args.timeout)
    const delay = Option.isSome(args.delay) ? Option.some(yield* parseDuration("--delay", args.delay.value)) : Option.none()
    // the arguments are checked before connecting
    return yield* Effect.gen(function*() {
      const client = yield* Client.Client
      const handle = yield* client.enqueueJson(args.subject, input, {
        ...(Option.isSome(args.tenant) ? { tenant: args.tenant.value } : {}),
        ...(Option.isSome(args.key) ? { key: args.key.value } : {}),
        ...(Option.isSome(args.priority) ? { priority: args.priority.value } : {}),
        ...(Option.isSome(delay) ? { delay: delay.value } : {})
      })
      if (!args.wait) {
        return yield* args.json_
          ? Output.json({ id: handle.id, subject: args.subject, duplicate: handle.duplicate })
          : Console.log(handle.id)
      }
      const record = yield* client.wait(handle.id, timeout)
      if (args.json_) yield* Output.json(record)
      if (record.status !== "succeeded") {
        if (!args.json_) yield* Console.log(describeRecord(record, Style.stdout()))
        return yield* new Client.TaskFailed({ taskId: handle.id, status: record.status, record })
      }
      if (!args.json_) yield* Output.json(record.output ?? null)
    }).pipe(Effect.provide(clientLayer))
  })).pipe(
    Command.withDescription("enqueue a task; prints its id, or its output with --wait (exit 1 if it ends dead or cancelled)"),
    Command.withExamples([
      { command: "msgsys enqueue etl.transform '{\"tenant\":\"acme\",\"values\":[1,2]}'", description: "enqueue; prints the task id" },
      { command: "msgsys enqueue reports.render '{\"tenant\":\"acme\",\"period\":\"2026-11\",\"format\":\"pdf\"}' --wait --timeout 1m", description: "wait up to a minute and print the output" },
      { command: "msgsys enqueue etl.extract '{\"tenant\":\"acme\",\"source\":\"crm\",\"rows\":5}' --key acme:crm --delay 10m", description: "at most once per key, in ten minutes" },
      { command: "id=$(msgsys enqueue etl.transform '{\"tenant\":\"acme\",\"values\":[]}' --json | jq -r .id)", description: "in a script" }
    ])
  )

/** @category commands @since 0.1.0 */
export const result = Command.make("result", {
  taskId: Argument.String("task-id"),
  wait: Flag.String("wait").pipe(Flag.optional, Flag.withDescription("wait up to this long for a final status")),
  json: jsonFlag("print the task's record as JSON")
}, (args) =>
  Effect.gen(function*() {
    // the arguments are checked before connecting
    const wait = Option.isSome(args.wait) ? Option.some(yield* parseDuration("--wait", args.wait.value)) : Option.none()
    return yield* Effect.gen(function*() {
      const client = yield* Client.Client
      const record = Option.isSome(wait) ? yield* client.wait(args.taskId, wait.value) : yield* client.status(args.taskId)
      yield* args.json ? Output.json(record) : Console.log(describeRecord(record, Style.stdout()))
    }).pipe(Effect.provide(clientLayer))
  })).pipe(
    Command.withDescription("print a task's status, output or error (exit 1 if no such task, or --wait runs out)"),
    Command.withExamples([
      { command: "msgsys result 01JD3Q5Z8X2M4W7K9R1T6Y0B3C", description: "where the task stands now" },
      { command: "msgsys result 01JD3Q5Z8X2M4W7K9R1T6Y0B3C --wait 30s --json", description: "wait for the final record, as JSON" }
    ])
  )

/** @category commands @since 0.1.0 */
export const cancel = Command.make("cancel", { taskId: Argument.String("task-id") }, (args) =>
  Effect.gen(function*() {
    const client = yield* Client.Client
    yield* client.cancel(args.taskId)
    yield* Console.log(`cancel requested for ${args.taskId}: skipped if queued, interrupted if running`)
  }).pipe(Effect.provide(clientLayer))).pipe(
    Command.withDescription("cancel a queued or running task"),
    Command.withExamples([{ command: "msgsys cancel 01JD3Q5Z8X2M4W7K9R1T6Y0B3C", description: "skipped if queued, interrupted if running" }])
  )

const controlCommand = (name: "pause" | "resume") =>
  Command.make(name, {
    target: Argument.String("actor").pipe(Argument.withDescription("an actor name, or pool:NAME for a pool"))
  }, (args) =>
    Effect.gen(function*() {
      const control = yield* Control.Control
      const target: Control.Target = args.target.startsWith("pool:")
        ? { kind: "pool", name: args.target.slice(5) }
        : { kind: "actor", name: args.target }
      yield* name === "pause" ? control.pause(target) : control.resume(target)
      yield* Console.log(`${target.kind} ${target.name} ${name === "pause" ? "paused" : "resumed"} on every worker`)
    }).pipe(Effect.provide(clientLayer))).pipe(
      Command.withDescription(name === "pause"
        ? "stop pulling an actor's (or pool:NAME's) messages on every worker; in-flight work finishes"
        : "resume a paused actor or pool:NAME"),
      Command.withExamples([
        { command: `msgsys ${name} etl`, description: `${name} the etl actor on every worker` },
        { command: `msgsys ${name} pool:slow`, description: `${name} every actor of the slow pool` }
      ])
    )

/** @category commands @since 0.1.0 */
export const pause = controlCommand("pause")
/** @category commands @since 0.1.0 */
export const resume = controlCommand("resume")

