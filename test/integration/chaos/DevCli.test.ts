/**
 * The `msgsys` command end to end, as a developer runs it: `msgsys dev` starts its own embedded
 * nats-server and the workers of actors/, `msgsys enqueue --wait` finds it through
 * <dataDir>/dev.json, and Ctrl-C (SIGINT) stops everything with exit 0, the server included.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { existsSync, readFileSync, rmSync } from "node:fs"
import { createConnection } from "node:net"
import { tempDir } from "../../support/harness.ts"
import { cleanEnv, killAll, type Proc, spawn, waitFor } from "./support.ts"

const dirs: Array<string> = []
afterEach(async () => {
  await killAll()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A fresh MSGSYS_DATA_DIR and the environment for the CLI (no MSGSYS_NATS_URL: embedded server). */
const devEnv = () => {
  const dataDir = tempDir("msgsys-dev-")
  dirs.push(dataDir)
  return { dataDir, env: { ...cleanEnv(), MSGSYS_DATA_DIR: dataDir, MSGSYS_HTTP_PORT: "0" } }
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Direct children of `pid` (from /proc), e.g. the embedded nats-server of `msgsys dev`. */
const childrenOf = (pid: number): Array<{ pid: number; comm: string }> => {
  const out = Bun.spawnSync(["ps", "-o", "pid=,comm=", "--ppid", String(pid)]).stdout.toString()
  return out.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
    const [p, ...comm] = l.split(/\s+/)
    return { pid: Number(p), comm: comm.join(" ") }
  })
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const finished = async (p: Proc, timeoutMs: number) => {
  const code = await Promise.race([p.exited, Bun.sleep(timeoutMs).then(() => undefined)])
  if (code === undefined) throw new Error(`${p.label} did not exit within ${timeoutMs} ms:\n${p.output()}`)
  return code
}

describe("msgsys CLI against msgsys dev", () => {
  test("`msgsys enqueue --wait` works against ./scripts/dev (`msgsys dev` with an embedded server), and SIGINT stops dev and its embedded nats-server with exit 0", async () => {
    const { dataDir, env } = devEnv()
    const dev = spawn("dev", ["bun", "src/cli/main.ts", "dev"], env)
    const devJson = `${dataDir}/dev.json`
    const state = await waitFor(`dev.json of msgsys dev\n${dev.output()}`, () => {
      if (!dev.alive()) throw new Error(`msgsys dev exited early:\n${dev.output()}`)
      return existsSync(devJson) ? JSON.parse(readFileSync(devJson, "utf8")) as { url: string; pid: number } : undefined
    }, 30_000)
    expect(state.pid).toBe(dev.pid)
    const port = Number(new URL(state.url).port)
    await waitFor(`msgsys dev to run its workers\n${dev.output()}`, () => dev.output().includes("msgsys dev is running"), 30_000)
    const nats = childrenOf(dev.pid).filter((c) => c.comm.includes("nats-server"))
    expect(nats.length).toBe(1)

    const enqueue = spawn("enqueue", [
      "bun",
      "src/cli/main.ts",
      "enqueue",
      "reports.render",
      "{\"tenant\":\"acme\",\"period\":\"2026-11\",\"format\":\"pdf\"}",
      "--wait"
    ], env)
    expect(await finished(enqueue, 45_000)).toBe(0)
    const printed = enqueue.stdout().trim()
    const output = JSON.parse(printed.slice(printed.indexOf("{"))) as { pages: number; url: string }
    expect(output.pages).toBe(3)
    expect(output.url).toContain("acme/2026-11")

    dev.proc.kill("SIGINT")
    expect(await finished(dev, 30_000)).toBe(0)
    // the embedded server went with it, and dev.json with it
    await waitFor("the embedded nats-server to exit", () => !isAlive(nats[0]!.pid), 10_000)
    expect(await accepts(port)).toBe(false)
    expect(existsSync(devJson)).toBe(false)
  }, 90_000)

  test("`msgsys dev --once` runs the demo against its own embedded server and exits 0", async () => {
    const { env } = devEnv()
    const once = spawn("dev --once", ["bun", "src/cli/main.ts", "dev", "--once"], env)
    expect(await finished(once, 60_000)).toBe(0)
    expect(once.stdout()).toContain("demo finished")
    expect(once.stdout()).toContain("\"pages\":3")
    expect(once.stdout()).toMatch(/pipeline \S+ \(extract -> plan -> render\): \{"url":"file:\/\/\/reports\/acme\/2026-11-\S+\.3\.pdf"/)
  }, 90_000)
})
