/**
 * Pipelines as definitions: `chain(a, b, c)` runs tasks one after another, each step's output the
 * next step's input; `gather([a, b])` runs tasks side by side on the same input and collects their
 * outputs, in order, as one step's output. Each step is a normal task of its own actor (retries,
 * audit, dead letters). The compiler refuses a chain whose step output does not fit the next
 * step's input. A definition is data: a client starts it (`Pipelines.start`), workers run its
 * tasks and enqueue each next step (`Continuation`).
 * @since 0.1.0
 */
import type { Schema } from "effect"
import * as Task from "../task/Task.ts"
import * as PipelineHeader from "./PipelineHeader.ts"
import type { Plan } from "./PipelineRecord.ts"

/**
 * One step of a pipeline: one task, or a gather of tasks run side by side.
 * @category models @since 0.1.0
 */
export type Stage =
  | { readonly _tag: "Step"; readonly task: Task.Any }
  | { readonly _tag: "Gather"; readonly tasks: ReadonlyArray<Task.Any> }

/**
 * A pipeline taking `In` and ending with `Out`.
 * @category models @since 0.1.0
 */
export interface Pipeline<In = unknown, Out = unknown> {
  readonly _tag: "Pipeline"
  readonly stages: ReadonlyArray<Stage>
  /** Types only: there is no such value. */
  readonly "~types": { readonly input: In; readonly output: Out }
}

/** Any pipeline. @category models @since 0.1.0 */
export type Any = Pipeline<any, any>

/** What a chain takes: tasks, and pipelines (their steps are spliced in). @category models @since 0.1.0 */
export type Step = Task.Any | Any

/** @category type-level @since 0.1.0 */
export type Input<P extends Any> = P["~types"]["input"]
/** @category type-level @since 0.1.0 */
export type Output<P extends Any> = P["~types"]["output"]

/** The input of a step of a chain. @category type-level @since 0.1.0 */
export type InputOf<S> = S extends Task.Any ? Task.Input<S> : S extends Pipeline<infer I, any> ? I : never
/** The output of a step of a chain. @category type-level @since 0.1.0 */
export type OutputOf<S> = S extends Task.Any ? Task.Output<S> : S extends Pipeline<any, infer O> ? O : never

/**
 * What the compiler shows in place of a step whose input does not take the output of the step
 * before it.
 * @category type-level @since 0.1.0
 */
export interface DoesNotFit<Output, Input> {
  readonly "the output of the step before does not fit this step's input": {
    readonly output: Output
    readonly input: Input
  }
}

/** The steps as given, with each one that does not fit its predecessor replaced by `DoesNotFit`. @category type-level @since 0.1.0 */
export type Checked<S extends ReadonlyArray<unknown>, Previous = never, First = true> = S extends readonly [infer A, ...infer Rest]
  ? readonly [
    First extends true ? A : [OutputOf<Previous>] extends [InputOf<A>] ? A : DoesNotFit<OutputOf<Previous>, InputOf<A>>,
    ...Checked<Rest, A, false>
  ]
  : readonly []

type Last<S extends ReadonlyArray<unknown>> = S extends readonly [...ReadonlyArray<unknown>, infer L] ? L : never

type Intersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never

/** A gather's input: every task of it gets the same value, so it must fit them all. @category type-level @since 0.1.0 */
export type GatherInput<T extends ReadonlyArray<Task.Any>> = Intersection<Task.Input<T[number]>>
/** A gather's output: its tasks' outputs, in the order of its tasks. @category type-level @since 0.1.0 */
export type GatherOutput<T extends ReadonlyArray<Task.Any>> = { -readonly [K in keyof T]: Task.Output<T[K]> }

/** At most this many tasks in one gather step. @category constants @since 0.1.0 */
export const maxGather = 100

const fail = (problem: string): never => {
  throw new Task.InvalidDefinition(`pipeline: ${problem}`)
}

const checkTask = (task: unknown, where: string) => {
  if (!Task.isTask(task)) fail(`${where} is neither a task nor a pipeline`)
  const t = task as Task.Any
  if (!t.result) {
    fail(
      `task ${t.subject} stores no result (result: false), and a pipeline reads each step's result: ` +
        "leave result at its default (true) for tasks used in pipelines"
    )
  }
  return t
}

/** The plan a pipeline's steps carry (their subjects). @category plan @since 0.1.0 */
export const planOf = (pipeline: Any): Plan =>
  pipeline.stages.map((s) => s._tag === "Step" ? s.task.subject : s.tasks.map((t) => t.subject))

/** The tasks of a stage. @category plan @since 0.1.0 */
export const tasksOf = (stage: Stage): ReadonlyArray<Task.Any> => stage._tag === "Step" ? [stage.task] : stage.tasks

const make = <In, Out>(stages: ReadonlyArray<Stage>): Pipeline<In, Out> => {
  if (stages.length === 0) fail("it has no steps: give at least one task")
  const pipeline = { _tag: "Pipeline", stages } as unknown as Pipeline<In, Out>
  // the plan travels in a header of every step: it must fit, with the longest id and step numbers
  const size = PipelineHeader.encode({
    id: "x".repeat(100),
    step: stages.length,
    child: maxGather,
    plan: planOf(pipeline),
    priority: "high"
  }).length
  if (size > PipelineHeader.maxSize) {
    fail(
      `its plan (the subjects of its ${stages.length} steps) takes ${size} bytes in the header each step carries, over ` +
        `${PipelineHeader.maxSize}: split it into pipelines that start one another, or use shorter subjects`
    )
  }
  return pipeline
}

/**
 * A pipeline that runs its steps one after another: each step's output is the next step's input.
 * A step is a task or a pipeline (a `gather`, or another chain, whose steps are spliced in). The
 * value crosses between steps as JSON: each task's output schema encodes it, the next task's input
 * schema decodes it.
 * @example
 * const Nightly = Pipeline.chain(Extract, Transform, Pipeline.gather([ToCsv, ToParquet]), Publish)
 * @category constructors @since 0.1.0
 */
export const chain = <const S extends readonly [Step, ...Array<Step>]>(
  ...steps: S & Checked<S>
): Pipeline<InputOf<S[0]>, OutputOf<Last<S>>> => {
  const stages: Array<Stage> = []
  steps.forEach((s: unknown, i) => {
    if (isPipeline(s)) stages.push(...s.stages)
    else stages.push({ _tag: "Step", task: checkTask(s, `step ${i + 1}`) })
  })
  return make(stages)
}

/**
 * One step that runs `tasks` side by side, each on the step's input, and outputs their outputs in
 * the order of `tasks` once all succeeded. The first task that fails for good (dead letters,
 * cancelled) fails the pipeline; the others still run.
 * @example
 * const Exports = Pipeline.gather([ToCsv, ToParquet]) // output: [csv output, parquet output]
 * @category constructors @since 0.1.0
 */
export const gather = <const T extends readonly [Task.Any, ...Array<Task.Any>]>(
  tasks: T
): Pipeline<GatherInput<T>, GatherOutput<T>> => {
  if (!Array.isArray(tasks) || tasks.length === 0) fail("a gather needs at least one task")
  if (tasks.length > maxGather) fail(`a gather of ${tasks.length} tasks is over the limit of ${maxGather}: split it`)
  return make([{ _tag: "Gather", tasks: tasks.map((t, i) => checkTask(t, `task ${i + 1} of the gather`)) }])
}

/** @category guards @since 0.1.0 */
export const isPipeline = (u: unknown): u is Any =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Pipeline"

/**
 * The output schemas of a stage's tasks: what decodes a pipeline's final output (a gather's is
 * the tuple of them).
 * @category plan @since 0.1.0
 */
export const outputSchemas = (stage: Stage): ReadonlyArray<Schema.Codec<any, any, any, any>> =>
  tasksOf(stage).map((t) => t.output)
