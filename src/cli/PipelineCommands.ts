/**
 * `msgsys pipeline status|cancel`: a pipeline's steps (each with its task id and status), the step
 * it is at, and its output or the step that failed and why.
 * @since 0.1.0
 */
import { Console, Effect, Layer, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Pipelines from "../pipeline/Pipelines.ts"
import type * as PipelineStatus from "../pipeline/PipelineStatus.ts"
import { parseDuration } from "./CliInput.ts"
import { clientLayer } from "./CliLayers.ts"

const layer = Pipelines.layer.pipe(Layer.provideMerge(clientLayer))

const iso = (ms: number) => new Date(ms).toISOString()

const pad = (rows: ReadonlyArray<ReadonlyArray<string>>): ReadonlyArray<string> => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i]!)).join("  ").trimEnd())
}

const json = (value: unknown) => {
  const text = JSON.stringify(value)
  return text.length > 200 ? `${text.slice(0, 200)}... (--json prints all of it)` : text
}

/**
 * A pipeline's status as lines of text.
 * @category formatting @since 0.1.0
 */
export const describe = (s: PipelineStatus.PipelineStatus): ReadonlyArray<string> => {
  const at = s.status === "running" && s.current !== undefined ? `, at step ${s.current} of ${s.length}` : ""
  const head = `pipeline ${s.id}  ${s.status}${at}  (tenant ${s.tenant}, started ${iso(s.createdAt)})`
  const table = pad([
    ["  step", "subject", "task", "status", "attempt"],
    ...s.steps.map((t) => [
      `  ${t.step}${t.child !== undefined ? `.${t.child}` : ""}${t.step === s.current && s.status === "running" ? " <" : ""}`,
      t.subject,
      t.taskId,
      t.status,
      t.attempt !== undefined ? String(t.attempt) : ""
    ])
  ])
  const f = s.failure
  const end = s.status === "succeeded"
    ? [`output: ${json(s.output ?? null)}`]
    : f !== undefined
    ? [
      `${s.status === "cancelled" ? "cancelled" : "failed"} at step ${f.step}${f.child !== undefined ? ` (task ${f.child} of its gather)` : ""}` +
      `, ${f.subject}, task ${f.taskId}${f.error !== undefined ? `: ${f.error.message}` : ""}`,
      ...(s.status === "failed" ? ["  its dead letter (`msgsys dlq list`), once replayed, lets the pipeline go on"] : [])
    ]
    : []
  return [head, ...table, ...end]
}

const status = Command.make("status", {
  pipelineId: Argument.String("pipeline-id"),
  json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print the status as JSON")),
  wait: Flag.String("wait").pipe(Flag.optional, Flag.withDescription("wait up to this long for it to end, e.g. 30s"))
}, (args) =>
  Effect.gen(function*() {
    const pipelines = yield* Pipelines.Pipelines
    const s = Option.isSome(args.wait)
      ? yield* pipelines.wait(args.pipelineId, yield* parseDuration("--wait", args.wait.value))
      : yield* pipelines.status(args.pipelineId)
    yield* args.json ? Console.log(JSON.stringify(s, null, 2)) : Console.log(describe(s).join("\n"))
  }).pipe(Effect.provide(layer))).pipe(
    Command.withDescription("print a pipeline's steps with their task ids and statuses, and its output or failure")
  )

const cancel = Command.make("cancel", { pipelineId: Argument.String("pipeline-id") }, (args) =>
  Effect.gen(function*() {
    yield* Pipelines.Pipelines.use((p) => p.cancel(args.pipelineId))
    yield* Console.log(`cancel requested for pipeline ${args.pipelineId}: its running step is interrupted, later steps never run`)
  }).pipe(Effect.provide(layer))).pipe(Command.withDescription("cancel a pipeline's steps that have not finished"))

/** @category commands @since 0.1.0 */
export const pipeline = Command.make("pipeline").pipe(
  Command.withDescription("look at and cancel pipelines"),
  Command.withSubcommands([status, cancel])
)
