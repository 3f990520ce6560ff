/**
 * Bench child processes (Bun scripts under ../proc): spawned with their settings as JSON, they
 * answer with one JSON object a line on stdout and take commands the same way on stdin. Their
 * stderr goes to ours. Every child is killed by pid when this process exits, however it exits.
 */
import type { Subprocess } from "bun"
import { join } from "node:path"

const procDir = join(import.meta.dir, "..", "proc")

const live = new Set<Subprocess>()
let hooked = false
const hookExit = () => {
  if (hooked) return
  hooked = true
  // children outlive their parent otherwise (PITFALLS §9)
  process.on("exit", () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL")
      } catch {
        // already gone
      }
    }
  })
}

/** A message from a child: `type` names it. */
export interface Message {
  readonly type: string
  readonly [key: string]: unknown
}

export interface Child {
  readonly pid: number
  readonly name: string
  /** Sends one command line. */
  readonly send: (message: Message) => void
  /** The next message of this type (earlier ones of other types are kept for later). */
  readonly next: <M extends Message = Message>(type: string, timeoutMs: number) => Promise<M>
  /** Asks it to stop (`{type: "stop"}`), waits up to `graceMs`, then SIGKILLs it. */
  readonly stop: (graceMs?: number) => Promise<void>
}

/** Spawns `proc/<script>.ts` with `settings`. */
export const spawn = (script: string, settings: unknown): Child => {
  hookExit()
  const name = script
  const proc = Bun.spawn(["bun", join(procDir, `${script}.ts`), JSON.stringify(settings)], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit"
  })
  live.add(proc)
  void proc.exited.then(() => live.delete(proc))

  const inbox: Array<Message> = []
  const waiters: Array<{ type: string; resolve: (m: Message) => void; reject: (e: Error) => void }> = []
  let ended: Error | undefined

  const deliver = () => {
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i]!
      const at = inbox.findIndex((m) => m.type === w.type || m.type === "error")
      if (at < 0) continue
      const [m] = inbox.splice(at, 1)
      waiters.splice(i--, 1)
      if (m!.type === "error" && w.type !== "error") w.reject(new Error(`${name} (pid ${proc.pid}) failed: ${String(m!.message)}`))
      else w.resolve(m!)
    }
    if (ended) for (const w of waiters.splice(0)) w.reject(ended)
  }

  void (async () => {
    const decoder = new TextDecoder()
    let buffered = ""
    for await (const chunk of proc.stdout) {
      buffered += decoder.decode(chunk, { stream: true })
      let nl: number
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl).trim()
        buffered = buffered.slice(nl + 1)
        if (line.length === 0) continue
        try {
          inbox.push(JSON.parse(line) as Message)
        } catch {
          process.stderr.write(`[${name}] ${line}\n`)
        }
      }
      deliver()
    }
    const code = await proc.exited
    ended = new Error(`${name} (pid ${proc.pid}) exited with ${proc.signalCode ?? code} before answering`)
    deliver()
  })()

  return {
    pid: proc.pid,
    name,
    send: (message) => {
      proc.stdin.write(`${JSON.stringify(message)}\n`)
      proc.stdin.flush()
    },
    next: <M extends Message>(type: string, timeoutMs: number) =>
      new Promise<M>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name} (pid ${proc.pid}) sent no "${type}" within ${timeoutMs} ms`)),
          timeoutMs
        )
        waiters.push({
          type,
          resolve: (m) => {
            clearTimeout(timer)
            resolve(m as M)
          },
          reject: (e) => {
            clearTimeout(timer)
            reject(e)
          }
        })
        deliver()
      }),
    stop: async (graceMs = 15_000) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      try {
        proc.stdin.write(`${JSON.stringify({ type: "stop" })}\n`)
        proc.stdin.flush()
      } catch {
        // stdin already closed: it is exiting
      }
      const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(graceMs).then(() => false)])
      if (!exited) {
        proc.kill("SIGKILL")
        await proc.exited
      }
    }
  }
}
