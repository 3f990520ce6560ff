/**
 * Checks of command-line input that name the flag and what is accepted.
 * @since 0.1.0
 */
import { Data, Duration, Effect, Option } from "effect"

/** @category errors @since 0.1.0 */
export class InvalidJson extends Data.TaggedError("InvalidJson")<{ readonly what: string; readonly reason: string }> {
  override get message() {
    return `${this.what} is not valid JSON (${this.reason}): quote it for the shell, e.g. '{"tenant":"acme"}'`
  }
}

/** @category errors @since 0.1.0 */
export class InvalidDuration extends Data.TaggedError("InvalidDuration")<{ readonly flag: string; readonly value: string }> {
  override get message() {
    return `${this.flag} ${JSON.stringify(this.value)} is not a duration: use e.g. 30s, 500ms, 5m, 2h, 7d or "10 seconds"`
  }
}

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Parses `30s`, `500ms`, `5m`, `2h`, `7d` or an Effect duration string. @category parsing @since 0.1.0 */
export const parseDuration = (flag: string, value: string): Effect.Effect<Duration.Duration, InvalidDuration> => {
  const short = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim())
  if (short) return Effect.succeed(Duration.millis(Number(short[1]) * units[short[2]!]!))
  const decoded = Duration.fromInput(value as Duration.Input)
  return Option.isSome(decoded) ? Effect.succeed(decoded.value) : Effect.fail(new InvalidDuration({ flag, value }))
}
