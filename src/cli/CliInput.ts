/**
 * Checks of command-line input that name the flag and what is accepted.
 * @since 0.1.0
 */
import { Data, type Duration, Effect, Option, Runtime } from "effect"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import { ExitCode } from "./Usage.ts"

/** @category errors @since 0.1.0 */
export class InvalidJson extends Data.TaggedError("InvalidJson")<{ readonly what: string; readonly reason: string }> {
  // a malformed argument: the command line is wrong
  override readonly [Runtime.errorExitCode] = ExitCode.usage
  override get message() {
    return `${this.what} is not valid JSON (${this.reason}): quote it for the shell, e.g. '{"tenant":"acme"}'`
  }
}

/** @category errors @since 0.1.0 */
export class InvalidDuration extends Data.TaggedError("InvalidDuration")<{ readonly flag: string; readonly value: string }> {
  override readonly [Runtime.errorExitCode] = ExitCode.usage
  override get message() {
    return `${this.flag} ${JSON.stringify(this.value)} is not a duration: use e.g. 30s, 500ms, 5m, 2h, 7d or "10 seconds"`
  }
}

/** Arguments that do not go together, or one that is missing. @category errors @since 0.1.0 */
export class InvalidArguments extends Data.TaggedError("InvalidArguments")<{ readonly problem: string; readonly fix: string }> {
  override readonly [Runtime.errorExitCode] = ExitCode.usage
  override get message() {
    return `${this.problem}: ${this.fix}`
  }
}

/** Parses a duration flag with the config's parser (`30s`, `500ms`, `5m`, "10 seconds"). @category parsing @since 0.1.0 */
export const parseDuration = (flag: string, value: string): Effect.Effect<Duration.Duration, InvalidDuration> =>
  Option.match(MsgsysConfig.parseDuration(value), {
    onNone: () => Effect.fail(new InvalidDuration({ flag, value })),
    onSome: Effect.succeed
  })
