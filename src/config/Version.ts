/**
 * The msgsys version, from package.json, as workers announce it.
 * @since 0.1.0
 */
import pkg from "../../package.json" with { type: "json" }

/** @category constants @since 0.1.0 */
export const version: string = pkg.version
