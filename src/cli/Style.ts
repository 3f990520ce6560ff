/**
 * Colours for the command's output, only where a person reads it: a stream that is a terminal,
 * with `NO_COLOR` unset (https://no-color.org) and `TERM` not `dumb`. `FORCE_COLOR` turns them on
 * anywhere, as `effect/cli`'s help does. Piped or redirected output never carries escape codes.
 * @since 0.1.0
 */

/** A stream as far as colours care. @category models @since 0.1.0 */
export interface Stream {
  readonly isTTY?: boolean | undefined
}

/** Text painters; each returns its input unchanged when colours are off. @category models @since 0.1.0 */
export interface Style {
  readonly enabled: boolean
  readonly bold: (text: string) => string
  readonly dim: (text: string) => string
  readonly red: (text: string) => string
  readonly green: (text: string) => string
  readonly yellow: (text: string) => string
  readonly cyan: (text: string) => string
}

const set = (value: string | undefined): value is string => value !== undefined && value.length > 0

/**
 * Whether output to `stream` may carry colours under `env`.
 * @category predicates @since 0.1.0
 */
export const enabled = (stream: Stream, env: Record<string, string | undefined> = process.env): boolean => {
  if (set(env.NO_COLOR) || env.TERM === "dumb") return false
  if (set(env.FORCE_COLOR) && env.FORCE_COLOR !== "0" && env.FORCE_COLOR.toLowerCase() !== "false") return true
  return stream.isTTY === true
}

const paint = (on: boolean, open: number, close: number) => (text: string) =>
  on ? `\x1b[${open}m${text}\x1b[${close}m` : text

/** Painters that are on or off as given. @category constructors @since 0.1.0 */
export const make = (on: boolean): Style => ({
  enabled: on,
  bold: paint(on, 1, 22),
  dim: paint(on, 2, 22),
  red: paint(on, 31, 39),
  green: paint(on, 32, 39),
  yellow: paint(on, 33, 39),
  cyan: paint(on, 36, 39)
})

/** Painters for standard output. @category constructors @since 0.1.0 */
export const stdout = (): Style => make(enabled(process.stdout))

/** Painters for standard error. @category constructors @since 0.1.0 */
export const stderr = (): Style => make(enabled(process.stderr))
