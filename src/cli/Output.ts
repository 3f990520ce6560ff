/**
 * Output of commands whose result is data: a `--json` flag that every such command spells the
 * same, a JSON document for one result, and one JSON object a line for a stream of them (`audit
 * tail -f --json`), so scripts can `jq` whatever msgsys prints.
 * @since 0.1.0
 */
import { Console, type Effect } from "effect"
import { Flag } from "effect/cli"

/** `--json`, off by default, with what it prints. @category flags @since 0.1.0 */
export const jsonFlag = (prints: string): Flag.Flag<boolean> =>
  Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription(prints))

/** One JSON document on stdout, indented. @category printing @since 0.1.0 */
export const json = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value, null, 2))

/** One JSON object on one line of stdout (JSON Lines). @category printing @since 0.1.0 */
export const jsonLine = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value))
