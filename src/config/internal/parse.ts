/**
 * Pure parsers for configuration text: durations, integers, lists, NATS server URLs and pool
 * budgets. Each returns a `Result` whose failure is the problem in a few words, so the caller can
 * name the variable and what it accepts.
 * @since 0.1.0
 */
import { Duration, Option, Result } from "effect"

/** Every spelling of a unit the duration parser accepts, mapped to Effect's unit name. */
const units: Readonly<Record<string, "nanos" | "micros" | "millis" | "seconds" | "minutes" | "hours" | "days" | "weeks">> = {
  ns: "nanos", nano: "nanos", nanos: "nanos", nanosecond: "nanos", nanoseconds: "nanos",
  us: "micros", "µs": "micros", micro: "micros", micros: "micros", microsecond: "micros", microseconds: "micros",
  ms: "millis", milli: "millis", millis: "millis", millisecond: "millis", milliseconds: "millis",
  s: "seconds", sec: "seconds", secs: "seconds", second: "seconds", seconds: "seconds",
  m: "minutes", min: "minutes", mins: "minutes", minute: "minutes", minutes: "minutes",
  h: "hours", hr: "hours", hrs: "hours", hour: "hours", hours: "hours",
  d: "days", day: "days", days: "days",
  w: "weeks", wk: "weeks", week: "weeks", weeks: "weeks"
}

const TERM = /(\d+(?:\.\d+)?)\s*([a-zµ]+)\s*/y

/**
 * Parses a duration written as Effect does ("2 seconds", "500 millis", "1.5 minutes"), in short
 * form ("2s", "500ms", "5m", "1h", "7d", "1h30m", "1m 30s" — what `Duration.format` prints), or as
 * a plain integer of milliseconds ("1500"). A leading "-" makes it negative, so range checks can
 * say "negative" rather than "not a duration". Anything else, "Infinity" included, is `None`.
 * @category parsers @since 0.1.0
 */
export const parseDuration = (input: string): Option.Option<Duration.Duration> => {
  const text = input.trim().toLowerCase()
  if (/^-?\d+$/.test(text)) {
    const millis = Number(text)
    return Number.isSafeInteger(millis) ? Option.some(Duration.millis(millis)) : Option.none()
  }
  const negative = text.startsWith("-")
  const body = negative ? text.slice(1).trimStart() : text
  if (body === "") return Option.none()
  let total = Duration.zero
  TERM.lastIndex = 0
  while (TERM.lastIndex < body.length) {
    const at = TERM.lastIndex
    const match = TERM.exec(body)
    if (match === null || match.index !== at) return Option.none()
    const unit = units[match[2]!]
    if (unit === undefined) return Option.none()
    // Effect's own parser keeps sub-millisecond precision exact
    const term = Duration.fromInput(`${Number(match[1])} ${unit}`)
    if (Option.isNone(term)) return Option.none()
    total = Duration.sum(total, term.value)
  }
  return Option.some(negative ? Duration.negate(total) : total)
}

/**
 * Parses a whole number ("42", "-1", "+3"); `None` for anything else or beyond 2^53.
 * @category parsers @since 0.1.0
 */
export const parseInteger = (input: string): Option.Option<number> => {
  const text = input.trim()
  if (!/^[+-]?\d+$/.test(text)) return Option.none()
  const n = Number(text)
  return Number.isSafeInteger(n) ? Option.some(n) : Option.none()
}

/**
 * Splits a comma-separated list, trimming each item and dropping empty ones.
 * @category parsers @since 0.1.0
 */
export const parseList = (input: string): ReadonlyArray<string> =>
  input.split(",").map((s) => s.trim()).filter((s) => s !== "")

const HOST_PORT = /^(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(\d+))?$/i

/**
 * Normalises one NATS server address: `nats://host:port` and `tls://host:port` stay as they are
 * (minus a trailing "/"), a bare `host:port` or `host` becomes `nats://…`. Credentials in the URL
 * are refused so they can only arrive through the secret variables.
 * @category parsers @since 0.1.0
 */
export const parseServer = (input: string): Result.Result<string, string> => {
  const text = input.trim()
  if (text.includes("://")) {
    let url: URL
    try {
      url = new URL(text)
    } catch {
      return Result.fail("not a URL")
    }
    if (url.protocol !== "nats:" && url.protocol !== "tls:") {
      return Result.fail(`scheme ${url.protocol.slice(0, -1)} is not nats or tls`)
    }
    if (url.username !== "" || url.password !== "") {
      return Result.fail("credentials in the URL")
    }
    if (url.hostname === "" || (url.pathname !== "" && url.pathname !== "/") || url.search !== "" || url.hash !== "") {
      return Result.fail("not scheme://host:port")
    }
    return Result.succeed(`${url.protocol}//${url.host}`)
  }
  const match = HOST_PORT.exec(text)
  if (match === null) return Result.fail("not host:port or a nats:// URL")
  if (match[2] !== undefined) {
    const port = Number(match[2])
    if (port < 1 || port > 65535) return Result.fail(`port ${match[2]} outside 1-65535`)
  }
  return Result.succeed(`nats://${text}`)
}

/**
 * Parses a comma-separated server list, every entry normalised by {@link parseServer}.
 * @category parsers @since 0.1.0
 */
export const parseServers = (input: string): Result.Result<ReadonlyArray<string>, string> => {
  const out: Array<string> = []
  const entries = parseList(input)
  for (const entry of entries) {
    const server = parseServer(entry)
    // in a list, say which entry is wrong
    if (Result.isFailure(server)) {
      return Result.fail(entries.length > 1 ? `entry "${redactUrlCredentials(entry)}": ${server.failure}` : server.failure)
    }
    out.push(server.success)
  }
  return out.length === 0 ? Result.fail("no server in the list") : Result.succeed(out)
}

/** Hides `user:password@` in anything that looks like a URL, so a bad value can be shown. */
export const redactUrlCredentials = (text: string): string => text.replace(/\/\/[^/@\s]*@/g, "//<redacted>@")

/** @category models @since 0.1.0 */
export interface PoolBudget {
  readonly name: string
  readonly concurrency: number
}

const POOL_NAME = /^[a-z0-9_-]+$/i

/**
 * Checks a list of pool budgets: names are `[A-Za-z0-9_-]+` and unique, concurrency is an integer
 * of at least 1.
 * @category parsers @since 0.1.0
 */
export const checkPools = (pools: ReadonlyArray<PoolBudget>): Result.Result<ReadonlyArray<PoolBudget>, string> => {
  const seen = new Set<string>()
  for (const { name, concurrency } of pools) {
    if (!POOL_NAME.test(name)) return Result.fail(`pool name "${name}" has characters other than A-Z a-z 0-9 _ -`)
    if (seen.has(name)) return Result.fail(`pool "${name}" is listed twice`)
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      return Result.fail(`pool "${name}" has concurrency ${concurrency}, which is not an integer of at least 1`)
    }
    seen.add(name)
  }
  return Result.succeed(pools)
}

/**
 * Parses "fast=32,slow=4,reports=2" into pool budgets (see {@link checkPools}).
 * @category parsers @since 0.1.0
 */
export const parsePools = (input: string): Result.Result<ReadonlyArray<PoolBudget>, string> => {
  const pools: Array<PoolBudget> = []
  for (const entry of parseList(input)) {
    const eq = entry.indexOf("=")
    if (eq < 0) return Result.fail(`entry "${entry}" is not name=concurrency`)
    const name = entry.slice(0, eq).trim()
    const concurrency = parseInteger(entry.slice(eq + 1))
    if (Option.isNone(concurrency)) return Result.fail(`entry "${entry}" has no integer concurrency`)
    pools.push({ name, concurrency: concurrency.value })
  }
  if (pools.length === 0) return Result.fail("no pool in the list")
  return checkPools(pools)
}

/**
 * Lays `overrides` over `base`: a pool named in both takes the override's concurrency, new pools
 * are appended in the order given.
 * @category combinators @since 0.1.0
 */
export const mergePools = (
  base: ReadonlyArray<PoolBudget>,
  overrides: ReadonlyArray<PoolBudget>
): ReadonlyArray<PoolBudget> => {
  const byName = new Map(overrides.map((p) => [p.name, p]))
  const merged = base.map((p) => byName.get(p.name) ?? p)
  const known = new Set(base.map((p) => p.name))
  return [...merged, ...overrides.filter((p) => !known.has(p.name))]
}

/** Levenshtein distance, for "did you mean" hints on misspelt variable names. */
export const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}
