/**
 * Medians and percentiles for the bench: every figure is the median of its runs, latencies are
 * read as nearest-rank percentiles.
 */

/** The middle value (the mean of the two middle ones for an even count). */
export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Nearest-rank percentile of an ascending array: the smallest value with at least `p` of them at or below it. */
export const percentile = (sorted: ArrayLike<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)))
  return sorted[rank - 1]!
}

/** p50, p99 and max of a set of latencies. */
export const latencySummary = (values: ArrayLike<number>) => {
  const sorted = Float64Array.from(values).sort()
  return {
    count: sorted.length,
    min: sorted[0] ?? Number.NaN,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN
  }
}

/** Per second, from a count and milliseconds. */
export const perSecond = (count: number, ms: number) => count / (ms / 1000)
