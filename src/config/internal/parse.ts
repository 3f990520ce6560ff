/**
 * Text parsers for configuration values. Each failure says what is wrong in a few words; the caller names the variable and
 * what it accepts. @since 0.1.0
 */
import { ByteSize, Duration, Option, Result } from "effect"

const units: Readonly<Record<string, Duration.Unit>> = {
  ns: "nanos", nanosecond: "nanos", nanoseconds: "nanos", us: "micros", "µs": "micros", microsecond: "micros", microseconds: "micros",
  ms: "millis", millisecond: "millis", milliseconds: "millis", s: "seconds", sec: "seconds", secs: "seconds", m: "minutes",
  min: "minutes", mins: "minutes", h: "hours", hr: "hours", hrs: "hours", d: "days", w: "weeks", wk: "weeks"
}

/**
 * Parses a duration as Effect writes it ("2 seconds", "1.5 minutes"), in short form ("2s", "500ms", "1h30m", "1m 30s": what
 * `Duration.format` prints), or as an integer of milliseconds ("1500"). A leading "-" makes it negative, so a range check can
 * say "negative" rather than "not a duration". @category parsers @since 0.1.0
 */
export const parseDuration = (input: string): Option.Option<Duration.Duration> => {
  const text = input.trim().toLowerCase()
  if (/^-?\d+$/.test(text)) return Number.isSafeInteger(+text) ? Option.some(Duration.millis(+text)) : Option.none()
  const [, minus, body = ""] = /^(-?)\s*(.*)$/.exec(text)!
  const terms = [...body.matchAll(/(\d+(?:\.\d+)?)\s*([a-zµ]+)\s*/g)]
  // the terms must cover the whole text: "2 seconds ago" and "5 m s" are not durations
  if (body === "" || terms.map((t) => t[0]).join("") !== body) return Option.none()
  // Effect's own parser reads each term, and keeps sub-millisecond precision exact
  const each = terms.map(([, amount, unit]) => Duration.fromInput(`${Number(amount)} ${units[unit!] ?? unit}` as Duration.Input))
  const total = Option.map(Option.all(each), (ds) => ds.reduce((a, b) => Duration.sum(a, b)))
  return minus === "" ? total : Option.map(total, Duration.negate)
}

/** A whole number ("42", "-1"); `None` for anything else or beyond 2^53. */
export const parseInteger = (input: string): Option.Option<number> =>
  /^[+-]?\d+$/.test(input.trim()) && Number.isSafeInteger(+input) ? Option.some(+input) : Option.none()

/** Splits a comma-separated list, trimming each item and dropping empty ones. */
export const parseList = (input: string): ReadonlyArray<string> =>
  input.split(",").map((s) => s.trim()).filter((s) => s !== "")

/** A byte count: an integer, or a size such as "512MB", "1GiB" or "1.5 GB". */
export const parseBytes = (input: string): Option.Option<number> =>
  Option.orElse(parseInteger(input), () => Option.flatMap(ByteSize.fromString(input), ByteSize.toNumber))

/**
 * Hides credentials in anything that looks like a URL, so a bad value can be shown: everything from the first `scheme://` (or
 * the start) up to the LAST `@`, since a password may itself hold `@`, `/`, `:` or `,`. In a list with credentials that hides
 * more than the password, never less.
 */
export const redactUrlCredentials = (text: string): string => {
  const at = text.lastIndexOf("@")
  const scheme = /[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(text)
  const from = scheme !== null && scheme.index < at ? scheme.index + scheme[0].length : 0
  return at < 0 ? text : `${text.slice(0, from)}<redacted>${text.slice(at)}`
}

/** `text` as a URL of one of `schemes` (`notUrl` if it is none). Credentials are refused: they only arrive as secrets. */
export const parseUrl = (text: string, schemes: ReadonlyArray<string>, notUrl = "not a URL"): Result.Result<URL, string> => {
  const url = URL.parse(text)
  const scheme = url?.protocol.slice(0, -1)
  return url === null ? Result.fail(notUrl)
    : !schemes.includes(scheme!) ? Result.fail(`scheme ${scheme} is not ${schemes.join(" or ")}`)
    : url.username !== "" || url.password !== "" ? Result.fail("credentials in the URL")
    : Result.succeed(url)
}

/** One NATS server: a `nats://` or `tls://` URL stays as it is (minus a trailing "/"), a bare `host:port` or `host` becomes `nats://…`. */
const parseServer = (text: string): Result.Result<string, string> => {
  const bare = !text.includes("://")
  const port = /:(\d+)\/?$/.exec(text)?.[1]
  if (port !== undefined && (+port < 1 || +port > 65535)) return Result.fail(`port ${port} outside 1-65535`)
  const notAddress = bare ? "not host:port or a nats:// URL" : "not scheme://host:port"
  return Result.flatMap(parseUrl(bare ? `nats://${text}` : text, ["nats", "tls"], bare ? notAddress : "not a URL"), (url) =>
    url.hostname === "" || !["", "/"].includes(url.pathname) || url.search !== "" || url.hash !== ""
      ? Result.fail(notAddress)
      : Result.succeed(`${url.protocol}//${url.host}`))
}

/** A comma-separated server list, each entry normalised by {@link parseServer}. */
export const parseServers = (input: string): Result.Result<ReadonlyArray<string>, string> => {
  const entries = parseList(input)
  if (entries.length === 0) return Result.fail("no server in the list")
  // a password holding a comma splits into two entries: name entries by position then, never by text
  const secretive = input.includes("@")
  return Result.all(entries.map((entry, i) =>
    Result.mapError(parseServer(entry), (p) =>
      entries.length === 1 ? p : secretive ? `entry ${i + 1} of ${entries.length}: ${p}` : `entry "${entry}": ${p}`)
  ))
}

export type PoolBudget = { readonly name: string; readonly concurrency: number }

/** Parses "fast=32,slow=4,reports=2": names of `[A-Za-z0-9_-]`, each once, concurrency at least 1. */
export const parsePools = (input: string): Result.Result<ReadonlyArray<PoolBudget>, string> => {
  const pools: Array<PoolBudget> = []
  for (const entry of parseList(input)) {
    const eq = entry.indexOf("=")
    if (eq < 0) return Result.fail(`entry "${entry}" is not name=concurrency`)
    const name = entry.slice(0, eq).trim()
    const concurrency = Option.getOrUndefined(parseInteger(entry.slice(eq + 1)))
    if (concurrency === undefined) return Result.fail(`entry "${entry}" has no integer concurrency`)
    if (!/^[a-z0-9_-]+$/i.test(name)) return Result.fail(`pool name "${name}" has characters other than A-Z a-z 0-9 _ -`)
    if (pools.some((p) => p.name === name)) return Result.fail(`pool "${name}" is listed twice`)
    if (concurrency < 1) return Result.fail(`pool "${name}" has concurrency ${concurrency}, which is not an integer of at least 1`)
    pools.push({ name, concurrency })
  }
  return pools.length === 0 ? Result.fail("no pool in the list") : Result.succeed(pools)
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
