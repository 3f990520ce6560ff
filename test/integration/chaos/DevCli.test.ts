/**
 * The `msgsys` command end to end, as a developer runs it: `msgsys dev` starts its own embedded
 * nats-server and the workers of actors/, `msgsys enqueue --wait` finds it through
 * <dataDir>/dev.json, and Ctrl-C (SIGINT) stops everything with exit 0, the server included.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { existsSync, readFileSync, rmSync } from "node:fs"
import { createConnection } from "node:net"
import { processAlive, tempDir } from "../../support/harness.ts"
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
  // a smaller sales data set than the demo's default 250,000 orders: the test checks the round, not the volume
  return { dataDir, env: { ...cleanEnv(), MSGSYS_DATA_DIR: dataDir, MSGSYS_HTTP_PORT: "0", DEMO_SALES_ROWS: "20000" } }
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
      "webapp.email.send",
      "{\"to\":\"ada@example.com\",\"subject\":\"hello\",\"text\":\"from the CLI\",\"messageId\":\"cli-1\"}",
      "--wait"
    ], env)
    expect(await finished(enqueue, 45_000)).toBe(0)
    const printed = enqueue.stdout().trim()
    const output = JSON.parse(printed.slice(printed.indexOf("{"))) as { file: string; messageId: string; alreadySent: boolean }
    expect(output).toEqual({ file: "webapp/outbox/cli-1.eml", messageId: "cli-1", alreadySent: false })
    expect(readFileSync(`${dataDir}/actors/${output.file}`, "utf8")).toContain("from the CLI")

    dev.proc.kill("SIGINT")
    expect(await finished(dev, 30_000)).toBe(0)
    // the embedded server went with it, and dev.json with it
    await waitFor("the embedded nats-server to exit", () => !processAlive(nats[0]!.pid), 10_000)
    expect(await accepts(port)).toBe(false)
    expect(existsSync(devJson)).toBe(false)
  }, 90_000)

  test("`msgsys dev --once` runs one checked round of every system of actors/ against its own embedded server and exits 0", async () => {
    const { dataDir, env } = devEnv()
    const once = spawn("dev --once", ["bun", "src/cli/main.ts", "dev", "--once"], env)
    const code = await finished(once, 150_000)
    // what it said, for a failure to be read from CI's output
    if (code !== 0) console.error(`--- dev --once exited ${code}:\n${once.output()}`)
    expect(code).toBe(0)
    const out = once.stdout()
    expect(out).toMatch(/demo round \S+: (\d+) of \1 checks passed/)
    for (const system of ["guide", "chat", "taskq", "academic", "bus", "dead"]) expect(out).toContain(`\n  ${system.padEnd(10)}`)
    expect(out).toMatch(/etl: pipeline \S+ \(extract -> transform -> load\)/)
    expect(out).toContain("demo finished")
    expect(existsSync(`${dataDir}/actors/reports/monthly/sales-warehouse-2026-06.html`)).toBe(true)
  }, 180_000)
})
