/**
 * Retry policies as Effect `Schedule`s, turned into nak delays. Retry state lives in JetStream
 * (the delivery count), never in memory: the delay before attempt n+1 is a function of n alone,
 * computed by stepping a fresh copy of the schedule n times (guarantee 3).
 * @since 0.1.0
 */
import { Duration, Effect, Option, Schedule } from "effect"

/** A retry policy: any Schedule whose input is the failure. @category models @since 0.1.0 */
export type Policy = Schedule.Schedule<unknown, unknown>

/** @category models @since 0.1.0 */
export interface ExponentialOptions {
  /** First delay. Default 1 second. */
  readonly base?: Duration.Input
  /** Growth per attempt. Default 2. */
  readonly factor?: number
  /** Largest delay. Default 5 minutes. */
  readonly cap?: Duration.Input
  /** Attempts in all, the first included. Default 5. */
  readonly maxAttempts?: number
  /** Randomise each delay by 0.8x..1.2x so retries of many tasks spread out. Default true. */
  readonly jitter?: boolean
}

/**
 * Exponential backoff with jitter, a cap and a number of attempts: the common policy.
 * @category constructors @since 0.1.0
 */
export const exponential = (options: ExponentialOptions = {}): Policy => {
  const cap = Duration.fromInputUnsafe(options.cap ?? "5 minutes")
  const base = Schedule.exponential(options.base ?? "1 second", options.factor ?? 2)
  const jittered = options.jitter === false ? base : Schedule.jittered(base)
  return jittered.pipe(
    Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, cap))),
    Schedule.upTo({ times: Math.max(0, (options.maxAttempts ?? 5) - 1) })
  )
}

/** Never retry: the first failure dead-letters. @category constructors @since 0.1.0 */
export const none: Policy = Schedule.recurs(0)

/** The default policy: `exponential()` (5 attempts, 1 s doubling, cap 5 min, jitter). @category constants @since 0.1.0 */
export const defaultPolicy: Policy = exponential()

// Longest run of retries we simulate; a policy that is still going after this retries forever.
const horizon = 1000

/**
 * Delays the policy would wait before each retry, stepping it as if each wait had passed (so
 * `Schedule.upTo({ duration })` limits work too). `Option.none()` marks where it gives up.
 */
const delays = (policy: Policy, startedAt: number, count: number): ReadonlyArray<Option.Option<number>> =>
  Effect.runSync(Effect.gen(function*() {
    const step = yield* Schedule.toStep(policy)
    const out: Array<Option.Option<number>> = []
    let now = startedAt
    for (let i = 0; i < count; i++) {
      const r = yield* Effect.result(step(now, undefined))
      if (r._tag === "Failure") {
        out.push(Option.none())
        break
      }
      const ms = Duration.toMillis(r.success[1])
      out.push(Option.some(ms))
      now += ms
    }
    return out
  }))

/**
 * The decision after attempt `attempt` (1-based) failed: `Some(delay)` to retry after that many
 * milliseconds, `None` when the policy is exhausted and the message goes to dead letters.
 * @category decisions @since 0.1.0
 */
export const nextDelay = (policy: Policy, attempt: number, startedAt = 0): Option.Option<number> => {
  const all = delays(policy, startedAt, Math.max(1, attempt))
  return all.length < attempt ? Option.none() : all[attempt - 1]!
}

/**
 * How many attempts the policy allows in all, or `undefined` when it retries forever (as far as
 * `horizon` steps show). Used to set the consumer's `max_deliver` with some slack.
 * @category decisions @since 0.1.0
 */
export const maxAttempts = (policy: Policy): number | undefined => {
  if (attemptsCache.has(policy)) return attemptsCache.get(policy)
  const all = delays(policy, 0, horizon)
  const done = all.findIndex(Option.isNone)
  const attempts = done === -1 ? undefined : done + 1
  attemptsCache.set(policy, attempts)
  return attempts
}

// a policy is immutable data, and the dispatcher asks for every message
const attemptsCache = new WeakMap<Policy, number | undefined>()
