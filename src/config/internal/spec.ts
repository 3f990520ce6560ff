/**
 * One configuration variable as data: its environment name, its path in programmatic overrides,
 * its default, what it accepts, and how to decode it from text (the environment) or from a plain
 * value (`layerFrom`). Decoders return the problem as text; the reader turns it into a
 * `ConfigProblem` naming the variable.
 * @since 0.1.0
 */
import { Duration, Option, Predicate, Redacted, Result } from "effect"
import { parseDuration, parseInteger } from "./parse.ts"

/** @category models @since 0.1.0 */
export interface Spec<A> {
  /** Environment variable, e.g. `MSGSYS_HTTP_PORT`. */
  readonly name: string
  /** Path in `layerFrom` overrides, e.g. `httpPort` or `nats.tls.cert`. */
  readonly path: string
  readonly default: string
  readonly description: string
  readonly accepted: string
  /** Its value is never shown: not in errors, not in `describe`. */
  readonly secret: boolean
  /** The value when unset. */
  readonly fallback: A
  readonly fromString: (raw: string) => Result.Result<A, string>
  readonly fromValue: (value: unknown) => Result.Result<A, string>
  /** How a bad raw value is shown in an error (secrets are never shown). */
  readonly show?: (raw: string) => string
}

type Info = Pick<Spec<unknown>, "name" | "path" | "default" | "description"> & {
  readonly accepted?: string
  readonly show?: (raw: string) => string
}

const make = <A>(
  info: Info & { readonly accepted: string },
  fallback: A,
  fromString: (raw: string) => Result.Result<A, string>,
  fromValue?: (value: unknown) => Result.Result<A, string>
): Spec<A> => ({
  ...info,
  secret: false,
  fallback,
  fromString,
  fromValue: fromValue ?? ((v) => typeof v === "string" ? fromString(v) : Result.fail(`not a string`))
})

/**
 * Makes a spec optional: unset is `None`, a value is `Some`. Programmatic input may be the plain
 * value or an `Option` of it.
 * @category combinators @since 0.1.0
 */
export const optional = <A>(spec: Spec<A>): Spec<Option.Option<A>> => ({
  ...spec,
  fallback: Option.none(),
  fromString: (raw) => Result.map(spec.fromString(raw), Option.some),
  fromValue: (v) =>
    Option.isOption(v)
      ? Option.isNone(v) ? Result.succeed(Option.none()) : Result.map(spec.fromValue(v.value), Option.some)
      : Result.map(spec.fromValue(v), Option.some)
})

/** Any non-empty text. @category constructors @since 0.1.0 */
export const text = (info: Info, fallback: string, check?: (s: string) => string | undefined): Spec<string> =>
  make({ accepted: "any non-empty text", ...info }, fallback, (raw) => {
    const problem = check?.(raw)
    return problem === undefined ? Result.succeed(raw) : Result.fail(problem)
  })

/**
 * A secret: kept `Redacted` from the moment it is read. Programmatic input may be a string or a
 * `Redacted`.
 * @category constructors @since 0.1.0
 */
export const secret = (
  info: Info,
  check?: (s: string) => string | undefined,
  options?: { readonly trim?: boolean }
): Spec<Option.Option<Redacted.Redacted<string>>> => {
  const decode = (given: string) => {
    // passwords and tokens are taken verbatim (a space may belong to them); seeds are trimmed
    const raw = options?.trim === true ? given.trim() : given
    const problem = check?.(raw)
    return problem === undefined ? Result.succeed(Redacted.make(raw)) : Result.fail(problem)
  }
  return {
    ...optional(make({ accepted: "any non-empty text", ...info }, Redacted.make(""), decode, (v) =>
      typeof v === "string"
        ? decode(v)
        : Redacted.isRedacted(v) && typeof Redacted.value(v) === "string"
        ? decode(Redacted.value(v) as string)
        : Result.fail("not a string or Redacted string"))),
    secret: true
  }
}

/** An integer in `[min, max]`. @category constructors @since 0.1.0 */
export const integer = (
  info: Info & { readonly accepted: string },
  fallback: number,
  range: { readonly min: number; readonly max?: number }
): Spec<number> => {
  const check = (n: number) =>
    n < range.min || (range.max !== undefined && n > range.max) ? Result.fail("out of range") : Result.succeed(n)
  return make(info, fallback, (raw) => {
    const n = parseInteger(raw)
    return Option.isNone(n) ? Result.fail("not an integer") : check(n.value)
  }, (v) =>
    typeof v === "string"
      ? Option.match(parseInteger(v), { onNone: () => Result.fail("not an integer"), onSome: check })
      : Predicate.isNumber(v) && Number.isSafeInteger(v)
      ? check(v)
      : Result.fail("not an integer"))
}

/** Examples shared by every duration's `accepted` text. */
export const durationExamples =
  `"2 seconds", "500 millis", "1 minute" (short forms 2s, 500ms, 5m, 1h, 7d also work; a plain integer is milliseconds)`

/** Checks a decoded duration against the spec's bounds: finite, not negative, at least `min`. */
const checkDuration = (d: Duration.Duration, min: Duration.Duration): Result.Result<Duration.Duration, string> =>
  !Duration.isFinite(d)
    ? Result.fail("not a finite duration")
    : Duration.isNegative(d)
    ? Result.fail("negative")
    : Duration.isLessThan(d, min)
    ? Result.fail(Duration.isZero(d) ? "zero" : `shorter than ${Duration.format(min)}`)
    : Result.succeed(d)

/**
 * Decodes any duration input: text through {@link parseDuration}, other values through
 * `Duration.fromInput` (a `Duration`, a number of milliseconds, `{ seconds: 5 }`, …).
 * @category constructors @since 0.1.0
 */
export const decodeDuration = (v: unknown): Option.Option<Duration.Duration> =>
  typeof v === "string"
    ? parseDuration(v)
    : Duration.isDuration(v)
    ? Option.some(v)
    : Predicate.isNumber(v) || typeof v === "bigint" || Predicate.isObject(v)
    ? Duration.fromInput(v as Duration.Input)
    : Option.none()

/**
 * A finite, non-negative duration of at least `min` (give `min` 0 to allow zero).
 * @category constructors @since 0.1.0
 */
export const duration = (
  info: Info,
  fallback: Duration.Duration,
  min: Duration.Input,
  constraint: string
): Spec<Duration.Duration> => {
  const minimum = Duration.fromInputUnsafe(min)
  const decode = (v: unknown) =>
    Option.match(decodeDuration(v), {
      onNone: () => Result.fail("not a duration"),
      onSome: (d) => checkDuration(d, minimum)
    })
  return make(
    { accepted: `a duration${constraint === "" ? "" : ` ${constraint}`} such as ${durationExamples}`, ...info },
    fallback,
    decode,
    decode
  )
}

/**
 * One of `values`, matched case-insensitively; `aliases` map other spellings (lower case) to a value.
 * @category constructors @since 0.1.0
 */
export const literal = <const L extends string>(
  info: Info,
  values: ReadonlyArray<L>,
  fallback: NoInfer<L>,
  aliases: Readonly<Record<string, NoInfer<L>>> = {}
): Spec<L> => {
  const table = new Map<string, L>(values.map((v) => [v.toLowerCase(), v]))
  for (const [alias, value] of Object.entries(aliases)) table.set(alias, value)
  const accepted = `one of ${values.join(", ")} (any case)`
  return make({ accepted, ...info }, fallback, (raw) => {
    const value = table.get(raw.trim().toLowerCase())
    return value === undefined ? Result.fail(`not one of ${values.join(", ")}`) : Result.succeed(value)
  })
}
