/**
 * Logs go to stderr at the configured level, for programs that embed msgsys as well as for its
 * own processes: stdout stays the program's own; JSON lines unless stderr is a terminal.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Schema } from "effect"
import { join } from "node:path"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness, tempDir } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, type LogLine, runTest, start } from "../../support/runtimeTools.ts"
import * as Logging from "../../../src/trace/Logging.ts"

const h = natsHarness()
const fixture = join(import.meta.dir, "..", "..", "fixtures", "loggingClient.ts")

const run = async (mode: "promise" | "app", level: string) => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MSGSYS_")))
  const proc = Bun.spawn(["bun", fixture, mode, h.server.url, level, tempDir()], { env, stdout: "pipe", stderr: "pipe" })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { stdout, stderr, code }
}

describe("logging", () => {
  for (const mode of ["promise", "app"] as const) {
    const what = mode === "promise" ? "the Promise client" : "App.layer"
    test(`${what} logs nothing to stdout, and only what the configured level lets through to stderr`, async () => {
      const warn = await run(mode, "Warn")
      expect(warn.code).toBe(0)
      expect(warn.stdout).toBe("")
      expect(warn.stderr).not.toContain("INFO")
      const info = await run(mode, "Info")
      expect(info.code).toBe(0)
      expect(info.stdout).toBe("")
      expect(info.stderr).toContain("connected to")
    }, 30_000)
  }

  test("by default (auto) a process whose stderr is no terminal writes one JSON object a line", async () => {
    const { stderr, code } = await run("promise", "Info")
    expect(code).toBe(0)
    const lines = stderr.trim().split("\n")
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ level: expect.any(String), message: expect.anything() })
    expect(lines.some((l) => JSON.parse(l).message.includes("connected to"))).toBe(true)
    expect(Logging.resolveLogFormat("auto", true)).toBe("pretty")
    expect(Logging.resolveLogFormat("logfmt", false)).toBe("logfmt")
  }, 30_000)

  test("App.layer keeps a program's own logger and applies the configured level to it", async () => {
    for (const [level, expectRunning] of [["Info", true], ["Warn", false]] as const) {
      const name = actorName("logs")
      const Ping = Task.make(`${name}.ping`, { input: Schema.Void, output: Schema.Void })
      const app = appOf([Actor.make(name, { protocol: [Ping] }), { [Ping.subject]: () => Effect.void }])
      const logs: Array<LogLine> = []
      await runTest(Effect.asVoid(start(app, h.settings({ logLevel: level }))), logs)
      expect(logs.some((l) => /worker \S+ running/.test(l.message))).toBe(expectRunning)
      expect(logs.some((l) => l.level === "Info")).toBe(expectRunning)
    }
  }, 30_000)
})
