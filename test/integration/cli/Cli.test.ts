import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import * as EmbeddedNats from "../../../src/broker/EmbeddedNats.ts"
import { natsHarness, tempDir } from "../../support/harness.ts"

const h = natsHarness()

/** Runs the CLI with a clean MSGSYS_* environment plus `env`. */
const msgsys = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MSGSYS_")))
  const proc = Bun.spawn(["bun", "src/cli/main.ts", ...args], {
    env: { ...base, MSGSYS_DATA_DIR: tempDir(), ...env },
    stdout: "pipe",
    stderr: "pipe"
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited
  ])
  return { stdout, stderr, code }
}

describe("msgsys command", () => {
  test("--help lists the commands", async () => {
    const { stdout, code } = await msgsys(["--help"])
    expect(code).toBe(0)
    for (const command of ["dev", "worker", "status", "topology", "enqueue", "result", "cancel", "pause", "resume", "dlq", "audit"]) {
      expect(stdout).toMatch(new RegExp(`^\\s+${command}\\s`, "m"))
    }
  }, 30_000)

  test("an unknown command, with --help or without, is named with the commands there are, exit 1", async () => {
    const cases = [[["frobnicate", "--help"], "frobnicate"], [["frobnicate"], "frobnicate"], [["--log-level", "debug", "frob", "-h"], "frob"]] as const
    for (const [args, name] of cases) {
      const { stdout, stderr, code } = await msgsys(args)
      expect({ args, code }).toEqual({ args, code: 1 })
      expect(stdout).toBe("")
      expect(stderr).toContain(`unknown command "${name}" for msgsys: use one of dev, worker`)
    }
    const nested = await msgsys(["dlq", "frob", "--help"])
    expect(nested.code).toBe(1)
    expect(nested.stderr).toContain('unknown command "frob" for msgsys dlq: use one of list, show, replay')
    // known commands still show their help and exit 0
    for (const args of [["dlq", "--help"], ["--log-level", "debug", "--help"], ["enqueue", "--help"]]) {
      const { code, stdout } = await msgsys(args)
      expect({ args, code }).toEqual({ args, code: 0 })
      expect(stdout).toContain("USAGE")
    }
  }, 60_000)

  test("status connects and prints the server version, the streams and the consumers", async () => {
    // declare an app's topology first, so there is something to list
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: "CLITEST" }
    const declared = await msgsys(["topology"], env)
    expect(declared.code).toBe(0)
    expect(declared.stdout).toContain("created   stream CLITEST_TASKS_etl")
    const { stdout, code } = await msgsys(["status"], env)
    expect(code).toBe(0)
    expect(stdout).toMatch(/^nats-server \d+\.\d+\.\d+ at 127\.0\.0\.1:\d+/m)
    expect(stdout).toContain("CLITEST_TASKS_etl")
    expect(stdout).toContain("CLITEST_TASKS_etl/etl-normal")
    // applying again changes nothing
    expect((await msgsys(["topology"], env)).stdout).not.toContain("created")
  }, 30_000)

  test("an unreachable server gives one line naming the address and the fix, exit 1", async () => {
    const port = await Effect.runPromise(EmbeddedNats.freePort)
    const { stderr, code } = await msgsys(["status"], {
      MSGSYS_NATS_URL: `nats://127.0.0.1:${port}`,
      MSGSYS_NATS_RECONNECT_WAIT: "50ms"
    })
    expect(code).toBe(1)
    expect(stderr).toContain(`cannot reach nats://127.0.0.1:${port} after 3 tries`)
    expect(stderr).toContain("MSGSYS_NATS_URL")
  }, 30_000)

  test("bad configuration names every bad variable and what is accepted, exit 1, secrets not shown", async () => {
    const { stderr, code } = await msgsys(["status"], {
      MSGSYS_HTTP_PORT: "70000",
      MSGSYS_ACK_WAIT: "soon",
      MSGSYS_NATS_USER: "svc",
      MSGSYS_NATS_PASSWORD: "hunter2",
      MSGSYS_NATS_TOKEN: "tok-secret"
    })
    expect(code).toBe(1)
    expect(stderr).toContain('MSGSYS_HTTP_PORT="70000"')
    expect(stderr).toContain("0-65535")
    expect(stderr).toContain('MSGSYS_ACK_WAIT="soon"')
    expect(stderr).not.toContain("hunter2")
    expect(stderr).not.toContain("tok-secret")
  }, 30_000)

  test("enqueue with input that is not JSON says so and how to quote it", async () => {
    const { stderr, code } = await msgsys(["enqueue", "etl.extract", "{tenant:acme}"], { MSGSYS_NATS_URL: h.server.url })
    expect(code).toBe(1)
    expect(stderr).toContain("not valid JSON")
  }, 30_000)

  test("a task id or subject with wildcards is refused before it reaches the broker, naming the problem", async () => {
    const env = { MSGSYS_NATS_URL: h.server.url }
    // `result '>' --wait` would otherwise subscribe to every task's record, `cancel '>'` write a wildcard key
    for (const args of [["result", ">", "--wait", "2s"], ["result", "*"], ["cancel", ">"]]) {
      const { stderr, code } = await msgsys(args, env)
      expect({ args, code }).toEqual({ args, code: 1 })
      expect(stderr).toContain(`invalid task id ${JSON.stringify(args[1])}`)
      expect(stderr).toContain("no spaces or wildcards")
    }
    const { stdout, stderr, code } = await msgsys(["enqueue", "etl.>", "{}"], env)
    expect(code).toBe(1)
    expect(stdout).toBe("")
    expect(stderr).toContain('invalid task subject "etl.>"')
  }, 60_000)

  test("a worker whose entry module is missing or exports no app names the file and the fix", async () => {
    const missing = await msgsys(["worker", "--entry", "nope/missing.ts"], { MSGSYS_NATS_URL: h.server.url })
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("cannot run nope/missing.ts: the file does not exist")
    const noApp = await msgsys(["worker", "--entry", "src/broker/Subjects.ts"], { MSGSYS_NATS_URL: h.server.url })
    expect(noApp.code).toBe(1)
    expect(noApp.stderr).toContain("it exports no app")
    expect(noApp.stderr).toContain("export default App.make")
  }, 30_000)

  test("a worker whose selection matches no actor lists the actors there are", async () => {
    const none = await msgsys(["worker", "--actors", "nobody"], { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: "CLIPOOL" })
    expect(none.code).toBe(1)
    expect(none.stderr).toContain("no actor matches the selection")
    expect(none.stderr).toContain("actors: etl, reports")
  }, 30_000)
})
