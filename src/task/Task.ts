/**
 * A task: a named, typed unit of work on a subject such as `etl.extract.salesforce`, with its
 * `input` and `output` schemas and optional defaults. A definition is data: clients import it to
 * enqueue with checked types, workers import it to handle.
 * @since 0.1.0
 */
import { Duration, Schema } from "effect"
import type { Priority } from "../broker/Subjects.ts"
import { invalidSubject } from "../broker/Subjects.ts"
import type * as Retry from "../retry/Retry.ts"

/** A task's priority: `high` runs before `normal`, `normal` before `low`. @category models @since 0.1.0 */
export type { Priority }

/** A schema msgsys can decode and encode without services. @category models @since 0.1.0 */
export type Codec = Schema.Codec<any, any, any, any>

/** Struct fields given directly, or a schema. @category models @since 0.1.0 */
export type SchemaInput = Codec | Schema.Struct.Fields

/** @category models @since 0.1.0 */
export type ToCodec<S extends SchemaInput> = S extends Codec ? S
  : S extends Schema.Struct.Fields ? Schema.Struct<S>
  : never

/** @category models @since 0.1.0 */
export interface Task<
  Subject extends string = string,
  In extends Codec = Codec,
  Out extends Codec = Codec,
  Err extends Codec = Codec
> {
  readonly _tag: "Task"
  readonly subject: Subject
  readonly input: In
  readonly output: Out
  /** Typed errors the handler may fail with; stored with the result. */
  readonly error: Err | undefined
  /** Tags of errors that are permanent: they go to dead letters at once, without retries. */
  readonly permanent: ReadonlyArray<string>
  /** The key under which a run counts as done (default: the message id). */
  readonly idempotencyKey: ((input: In["Type"]) => string) | undefined
  readonly priority: Priority | undefined
  readonly timeout: Duration.Duration | undefined
  readonly retry: Retry.Policy | undefined
  /** False: the final status and output are not stored (nobody waits for them). */
  readonly result: boolean
}

/** Any task. @category models @since 0.1.0 */
export type Any = Task<string, any, any, any>

/** @category type-level @since 0.1.0 */
export type Input<T extends Any> = T["input"]["Type"]
/** @category type-level @since 0.1.0 */
export type Output<T extends Any> = T["output"]["Type"]
/** @category type-level @since 0.1.0 */
export type Failure<T extends Any> = [NonNullable<T["error"]>] extends [never] ? never : NonNullable<T["error"]>["Type"]

/** @category models @since 0.1.0 */
export interface Options<In extends SchemaInput, Out extends SchemaInput, Err extends Codec> {
  readonly input: In
  readonly output: Out
  readonly error?: Err
  readonly permanent?: ReadonlyArray<string>
  readonly idempotencyKey?: (input: ToCodec<In>["Type"]) => string
  /** Default priority of an enqueue; `normal` when unset. */
  readonly priority?: Priority
  /** Overrides the actor's timeout. */
  readonly timeout?: Duration.Input
  /** Overrides the actor's retry policy. */
  readonly retry?: Retry.Policy
  /**
   * Whether the worker stores the final status and output in the results bucket, for
   * `client.result` and `msgsys result`. Default true; false saves a broker write per task for
   * work nobody waits on (failures and dead letters are still recorded).
   */
  readonly result?: boolean
}

/** A task definition is wrong; raised when the module defining it loads. @category errors @since 0.1.0 */
export class InvalidDefinition extends Error {
  override readonly name = "InvalidDefinition"
}

const toCodec = (s: SchemaInput): Codec => Schema.isSchema(s) ? s as Codec : Schema.Struct(s as Schema.Struct.Fields) as unknown as Codec

/**
 * Defines a task.
 * @example
 * const Extract = Task.make("etl.extract.salesforce", {
 *   input: { tenant: Schema.String, since: Schema.String },
 *   output: { rows: Schema.Int },
 *   idempotencyKey: ({ tenant, since }) => `${tenant}:${since}`
 * })
 * @category constructors @since 0.1.0
 */
export const make = <
  const Subject extends string,
  In extends SchemaInput,
  Out extends SchemaInput,
  Err extends Codec = never
>(subject: Subject, options: Options<In, Out, Err>): Task<Subject, ToCodec<In>, ToCodec<Out>, Err> => {
  const problem = invalidSubject(subject)
  if (problem !== undefined) {
    throw new InvalidDefinition(`task subject ${JSON.stringify(subject)} ${problem}`)
  }
  return {
    _tag: "Task",
    subject,
    input: toCodec(options.input) as ToCodec<In>,
    output: toCodec(options.output) as ToCodec<Out>,
    error: options.error,
    permanent: options.permanent ?? [],
    idempotencyKey: options.idempotencyKey as ((input: ToCodec<In>["Type"]) => string) | undefined,
    priority: options.priority,
    timeout: options.timeout === undefined ? undefined : Duration.fromInputUnsafe(options.timeout),
    retry: options.retry,
    result: options.result !== false
  }
}

/** @category guards @since 0.1.0 */
export const isTask = (u: unknown): u is Any =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Task"
