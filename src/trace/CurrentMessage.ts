/**
 * The message a handler runs for, in the context of its fiber. The client reads it, so the tasks
 * and events a handler sends follow the message it handles (its trace, correlation and causation)
 * without a `parent` option; code outside a handler sees `undefined` and pays nothing for it.
 * @since 0.1.0
 */
import { Context, Effect, Option } from "effect"
import type { Envelope } from "../envelope/Envelope.ts"

/**
 * The envelope of the message the current handler runs for; `undefined` outside a handler and in
 * a batch handler (it runs for several: pass `parent` to say which one a message follows).
 * @category references @since 0.1.0
 */
export const CurrentMessage: Context.Reference<Envelope | undefined> = Context.Reference<Envelope | undefined>(
  "msgsys/CurrentMessage",
  { defaultValue: () => undefined }
)

/**
 * The envelope of the message the current handler runs for, if any.
 * @category accessors @since 0.1.0
 */
export const get: Effect.Effect<Option.Option<Envelope>> = Effect.map(CurrentMessage, Option.fromUndefinedOr)
