/**
 * `msgsys dev` (what ./scripts/dev runs) includes a scheduler: a schedule added from the shell
 * enqueues its task, which the dev workers run.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { rmSync } from "node:fs"
import * as Ticks from "../../../src/scheduler/Ticks.ts"
import { tempDir } from "../../support/harness.ts"
import { cleanEnv, killAll, spawn, waitFor } from "../chaos/support.ts"

const dirs: Array<string> = []
afterEach(async () => {
  await killAll()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe("msgsys dev", () => {
  test("runs a scheduler: a schedule added with `msgsys schedule add` enqueues its task, and the dev workers run it", async () => {
    const dataDir = tempDir("msgsys-dev-")
    dirs.push(dataDir)
    const env = { ...cleanEnv(), MSGSYS_DATA_DIR: dataDir, MSGSYS_HTTP_PORT: "0", DEMO_SALES_ROWS: "20000" }
    const cli = async (args: ReadonlyArray<string>) => {
      const p = spawn(args[0]!, ["bun", "src/cli/main.ts", ...args], env)
      const code = await p.exited
      return { code, stdout: p.stdout(), stderr: p.stderr() }
    }
    const dev = spawn("dev", ["bun", "src/cli/main.ts", "dev"], env)
    await waitFor(`msgsys dev to run its workers and a scheduler\n${dev.output()}`, () => {
      if (!dev.alive()) throw new Error(`msgsys dev exited early:\n${dev.output()}`)
      return dev.output().includes("msgsys dev is running") && /scheduler \S+ running/.test(dev.output())
    }, 30_000)

    const added = await cli(["schedule", "add", "demo", "omniq.run", "{\"func\":\"add\",\"args\":[1,2]}", "--every", "1s", "--missed", "skip"])
    expect(added.stderr).toBe("")
    expect(added.code).toBe(0)
    const lastTick = await waitFor("a tick of the schedule", async () => {
      const listed = await cli(["schedule", "list", "--json"])
      const [view] = JSON.parse(listed.stdout) as Array<{ lastTick: string | null }>
      return view?.lastTick ?? undefined
    }, 30_000, 250)
    const taskId = Ticks.taskId("demo", Date.parse(lastTick))
    const result = await cli(["result", taskId, "--wait", "20s", "--json"])
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ id: taskId, subject: "omniq.run", status: "succeeded", output: { value: 3 } })

    dev.proc.kill("SIGINT")
    expect(await dev.exited).toBe(0)
  }, 90_000)
})
