/**
 * Progress of a long command (prune, replay, bench): a bar redrawn in place on a terminal, and a
 * plain line every few seconds otherwise, so a log or a pipe gets a few readable lines instead of
 * thousands of carriage returns.
 * @since 0.1.0
 */

/** Where progress goes: a stream with `write`, and whether it is a terminal. @category models @since 0.1.0 */
export interface Sink {
  readonly write: (text: string) => unknown
  readonly isTTY?: boolean | undefined
}

/** @category models @since 0.1.0 */
export interface Options {
  /** What is counted, e.g. `"tasks pruned"`. */
  readonly label: string
  /** Default `process.stderr`. */
  readonly sink?: Sink | undefined
  /** On a terminal, the shortest time between two redraws. Default 100 ms. */
  readonly redrawMs?: number | undefined
  /** Elsewhere, the shortest time between two lines. Default 5000 ms. */
  readonly lineMs?: number | undefined
  /** Default `Date.now`; tests pass their own. */
  readonly now?: (() => number) | undefined
}

/** @category models @since 0.1.0 */
export interface Progress {
  /** Reports `done` of `total` (the total may grow). Cheap to call often: output is throttled. */
  readonly update: (done: number, total: number) => void
  /** Draws the final state (on a terminal, ends the bar's line). Call once, at the end. */
  readonly finish: () => void
}

const width = 30

const bar = (label: string, done: number, total: number): string => {
  const share = total <= 0 ? 1 : Math.min(1, done / total)
  const filled = Math.round(share * width)
  return `[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total} ${label} (${(share * 100).toFixed(0)}%)`
}

const line = (label: string, done: number, total: number): string =>
  `${label}: ${done}/${total} (${(total <= 0 ? 100 : Math.min(100, (done / total) * 100)).toFixed(0)}%)\n`

/**
 * A progress reporter on `sink` (stderr by default): a bar on a terminal, a line every `lineMs`
 * otherwise, and the final count on `finish`.
 * @category constructors @since 0.1.0
 */
export const make = (options: Options): Progress => {
  const sink: Sink = options.sink ?? process.stderr
  const tty = sink.isTTY === true
  const now = options.now ?? Date.now
  const every = tty ? (options.redrawMs ?? 100) : (options.lineMs ?? 5000)
  let last = now()
  let done = 0
  let total = 0
  let drawn: string | undefined
  let finished = false
  const draw = () => {
    drawn = tty ? `\r${bar(options.label, done, total)}` : line(options.label, done, total)
    sink.write(drawn)
  }
  return {
    update: (d, t) => {
      done = d
      total = t
      const at = now()
      if (at - last >= every) {
        last = at
        draw()
      }
    },
    finish: () => {
      if (finished) return
      finished = true
      // off a terminal: the final count unless it is the last line already, nothing for an empty run
      if (tty) {
        draw()
        sink.write("\n")
      } else if ((drawn !== undefined || done > 0) && drawn !== line(options.label, done, total)) {
        draw()
      }
    }
  }
}
