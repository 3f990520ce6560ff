/**
 * Logs go to stderr at the configured level, for programs that embed msgsys as well as for its
 * own processes: stdout stays the program's own.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { natsHarness, tempDir } from "../../support/harness.ts"

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
})
