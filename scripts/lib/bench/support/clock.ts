/**
 * A wall clock with sub-millisecond resolution that reads the same in every process of this
 * machine: `performance.timeOrigin + performance.now()`, kept on `Date.now()`. (`process.hrtime`
 * under Bun counts from the process's own start, so it cannot carry a timestamp from one process
 * to another.) The time origin is read once, when the process starts: when the system clock is
 * stepped later (NTP on a VM; a bench run once saw 12 s), processes started before and after the
 * step disagree by the step, so a reading more than 1.5 ms from `Date.now()` follows it.
 */
export const now = (): number => {
  const precise = performance.timeOrigin + performance.now() + stepped
  const wall = Date.now()
  if (Math.abs(wall - precise) <= 1.5) return precise
  stepped += wall - precise
  return wall
}
let stepped = 0

/** `promise`, or a failure naming `what` once `ms` have passed without it settling. */
export const within = <A>(promise: Promise<A>, ms: number, what: () => string): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what()} (no end after ${ms} ms)`)), ms)
    promise.then(
      (a) => {
        clearTimeout(timer)
        resolve(a)
      },
      (e: unknown) => {
        clearTimeout(timer)
        reject(e)
      }
    )
  })
