/**
 * A wall clock with sub-millisecond resolution that reads the same in every process of this
 * machine: `performance.timeOrigin + performance.now()`. (`process.hrtime` under Bun counts from
 * the process's own start, so it cannot carry a timestamp from one process to another.)
 */
export const now = (): number => performance.timeOrigin + performance.now()

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
