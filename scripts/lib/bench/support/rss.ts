/** Resident memory of a process, from /proc (Linux). */
import { readFileSync } from "node:fs"

const field = (pid: number, name: string): number | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)
    return match ? Number(match[1]) / 1024 : undefined
  } catch {
    return undefined
  }
}

/** VmRSS of `pid` in MiB; throws when the process is gone (a figure must not silently be 0). */
export const rssMiB = (pid: number): number => {
  const value = field(pid, "VmRSS")
  if (value === undefined) throw new Error(`cannot read VmRSS of process ${pid} from /proc/${pid}/status: has it exited?`)
  return value
}

/** The largest of a few VmRSS samples taken `gapMs` apart: the resident size once it has settled. */
export const settledRssMiB = async (pid: number, samples = 3, gapMs = 200): Promise<number> => {
  let largest = 0
  for (let i = 0; i < samples; i++) {
    if (i > 0) await Bun.sleep(gapMs)
    largest = Math.max(largest, rssMiB(pid))
  }
  return largest
}
