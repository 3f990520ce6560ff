/**
 * What a handler's exit means for its message (guarantee 3), as a pure function of the exit, the
 * task, its retry policy and the attempt: succeed with the encoded output, retry after the
 * policy's delay, dead-letter (exhausted, permanent), or — when the runtime stopped the run —
 * cancelled, lease lost, or handed back because the worker is stopping.
 * @since 0.1.0
 */
import { Cause, Exit, Option, type Schema } from "effect"
import * as Payload from "../envelope/Payload.ts"
import * as Retry from "../retry/Retry.ts"
import type * as Task from "../task/Task.ts"
import * as TaskError from "../task/TaskError.ts"
import type { StoredError } from "../task/TaskRecord.ts"

/** Why the runtime interrupted a run. @category models @since 0.1.0 */
export type StopReason = "cancel" | "timeout" | "lease" | "shutdown"

/** @category models @since 0.1.0 */
export type Verdict =
  | { readonly _tag: "Succeeded"; readonly output: Schema.Json }
  | { readonly _tag: "Retry"; readonly delayMs: number; readonly error: StoredError }
  | { readonly _tag: "Dead"; readonly reason: "exhausted" | "permanent" | "poison"; readonly error: StoredError }
  | { readonly _tag: "Cancelled" }
  /** Another worker took the run's key over: store nothing, leave the message to that worker. */
  | { readonly _tag: "LeaseLost" }
  /** The worker is stopping: hand the message back for another worker at once. */
  | { readonly _tag: "Stopped" }

/**
 * An error as stored with a task's status and its dead letter: the tag, a one-line message, and
 * (when the task declares an error schema) its JSON form.
 * @category errors @since 0.1.0
 */
export const storedError = (e: unknown, task: Task.Any | undefined): StoredError => {
  const tag = typeof e === "object" && e !== null && typeof (e as { _tag?: unknown })._tag === "string"
    ? (e as { _tag: string })._tag
    : e instanceof Error
    ? e.name
    : "Error"
  const base: StoredError = { tag, message: TaskError.describe(e) }
  if (task?.error) {
    const encoded = Payload.toJson(task.error as Schema.Codec<unknown, unknown>, e)
    if (Exit.isSuccess(encoded)) return { ...base, encoded: encoded.value as Schema.Json }
  }
  return base
}

/** What to do after a failure with `error` on `attempt` (1-based). @category decisions @since 0.1.0 */
export const afterFailure = (error: unknown, task: Task.Any, policy: Retry.Policy, attempt: number): Verdict => {
  const stored = storedError(error, task)
  const kind = TaskError.classify(error, task.permanent)
  if (kind !== "retryable") return { _tag: "Dead", reason: kind, error: stored }
  const delay = Retry.nextDelay(policy, attempt)
  return Option.isNone(delay)
    ? { _tag: "Dead", reason: "exhausted", error: stored }
    : { _tag: "Retry", delayMs: delay.value, error: stored }
}

/**
 * The verdict on a run.
 * @category decisions @since 0.1.0
 */
export const decide = (
  exit: Exit.Exit<unknown, unknown>,
  run: {
    readonly task: Task.Any
    readonly policy: Retry.Policy
    readonly attempt: number
    readonly timeoutMs: number
    /** Set when the runtime interrupted the run, and why. */
    readonly stopped: StopReason | undefined
  }
): Verdict => {
  const { task, policy, attempt } = run
  if (Exit.isSuccess(exit)) {
    // the JSON form (a Date becomes an ISO string): stored in SQLite and KV, read back by clients
    const encoded = Payload.toJson(task.output, exit.value)
    if (Exit.isSuccess(encoded)) return { _tag: "Succeeded", output: (encoded.value ?? null) as Schema.Json }
    const error = TaskError.permanent(
      new Error(`the handler of ${task.subject} returned a value that does not match its output schema`)
    )
    return { _tag: "Dead", reason: "permanent", error: storedError(error, task) }
  }
  switch (run.stopped) {
    case "cancel":
      return { _tag: "Cancelled" }
    case "lease":
      return { _tag: "LeaseLost" }
    case "shutdown":
      return { _tag: "Stopped" }
    case "timeout":
      return afterFailure(new TaskError.TaskTimeout({ subject: task.subject, timeoutMs: run.timeoutMs }), task, policy, attempt)
    case undefined:
      break
  }
  const failure = Cause.findErrorOption(exit.cause)
  if (Option.isSome(failure)) {
    return failure.value instanceof TaskError.TaskCancelled
      ? { _tag: "Cancelled" }
      : afterFailure(failure.value, task, policy, attempt)
  }
  // an interruption nobody asked for came from the handler itself: retried like a defect
  const defect = Cause.hasInterruptsOnly(exit.cause)
    ? "the handler interrupted itself"
    : TaskError.describe(Cause.squash(exit.cause))
  return afterFailure(new TaskError.HandlerDefect({ subject: task.subject, defect }), task, policy, attempt)
}
