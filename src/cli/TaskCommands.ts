/**
 * `msgsys enqueue|result|cancel|pause|resume`: the client side from the shell.
 * @since 0.1.0
 */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Control from "../runtime/Control.ts"
import * as Client from "../task/Client.ts"
import { InvalidJson, parseDuration } from "./CliInput.ts"
import { clientLayer } from "./CliLayers.ts"



const print = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

/** @category commands @since 0.1.0 */
export const enqueue = Command.make("enqueue", {
  subject: Argument.String("subject").pipe(Argument.withDescription("task subject, e.g. etl.extract.salesforce")),
  json: Argument.String("json").pipe(Argument.withDescription("the input as JSON"), Argument.withDefault("{}")),
  wait: Flag.Boolean("wait").pipe(Flag.withDefault(false), Flag.withDescription("wait for the result and print it")),
  timeout: Flag.String("timeout").pipe(Flag.withDefault("30s"), Flag.withDescription("how long --wait waits")),
  tenant: Flag.String("tenant").pipe(Flag.optional),
  key: Flag.String("key").pipe(Flag.optional, Flag.withDescription("idempotency key")),
  priority: Flag.Literals("priority", ["high", "normal", "low"]).pipe(Flag.optional),
  delay: Flag.String("delay").pipe(Flag.optional, Flag.withDescription("run no earlier than this from now, e.g. 10s"))
}, (args) =>
  Effect.gen(function*() {
    const input = yield* Effect.try({
      try: () => JSON.parse(args.json) as unknown,
      catch: (e) => new InvalidJson({ what: "the task input", reason: (e as Error).message })
    })
    const timeout = yield* parseDuration("--timeout", args.timeout)
    const delay = Option.isSome(args.delay) ? Option.some(yield* parseDuration("--delay", args.delay.value)) : Option.none()
    const client = yield* Client.Client
    const handle = yield* client.enqueueJson(args.subject, input, {
      ...(Option.isSome(args.tenant) ? { tenant: args.tenant.value } : {}),
      ...(Option.isSome(args.key) ? { key: args.key.value } : {}),
      ...(Option.isSome(args.priority) ? { priority: args.priority.value } : {}),
      ...(Option.isSome(delay) ? { delay: delay.value } : {})
    })
    if (!args.wait) return yield* Console.log(handle.id)
    const record = yield* client.wait(handle.id, timeout)
    if (record.status !== "succeeded") {
      yield* print(record)
      return yield* new Client.TaskFailed({ taskId: handle.id, status: record.status, record })
    }
    yield* print(record.output ?? null)
  }).pipe(Effect.provide(clientLayer))).pipe(Command.withDescription("enqueue a task; prints its id, or its result with --wait"))

/** @category commands @since 0.1.0 */
export const result = Command.make("result", {
  taskId: Argument.String("task-id"),
  wait: Flag.String("wait").pipe(Flag.optional, Flag.withDescription("wait up to this long for a final status"))
}, (args) =>
  Effect.gen(function*() {
    const client = yield* Client.Client
    const record = Option.isSome(args.wait)
      ? yield* client.wait(args.taskId, yield* parseDuration("--wait", args.wait.value))
      : yield* client.status(args.taskId)
    yield* print(record)
  }).pipe(Effect.provide(clientLayer))).pipe(Command.withDescription("print a task's status, output or error"))

/** @category commands @since 0.1.0 */
export const cancel = Command.make("cancel", { taskId: Argument.String("task-id") }, (args) =>
  Effect.gen(function*() {
    const client = yield* Client.Client
    yield* client.cancel(args.taskId)
    yield* Console.log(`cancel requested for ${args.taskId}: skipped if queued, interrupted if running`)
  }).pipe(Effect.provide(clientLayer))).pipe(Command.withDescription("cancel a queued or running task"))

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
        : "resume a paused actor or pool:NAME")
    )

/** @category commands @since 0.1.0 */
export const pause = controlCommand("pause")
/** @category commands @since 0.1.0 */
export const resume = controlCommand("resume")

