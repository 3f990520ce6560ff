import { describe, expect, test } from "bun:test"
import { Runtime } from "effect"
import * as Style from "../../../src/cli/Style.ts"
import * as Usage from "../../../src/cli/Usage.ts"

describe("Style", () => {
  const tty = { isTTY: true }
  const pipe = { isTTY: false }

  test("colours only on a terminal, and never with NO_COLOR set or TERM=dumb", () => {
    expect(Style.enabled(tty, {})).toBe(true)
    expect(Style.enabled(pipe, {})).toBe(false)
    expect(Style.enabled({}, {})).toBe(false)
    expect(Style.enabled(tty, { NO_COLOR: "1" })).toBe(false)
    expect(Style.enabled(tty, { TERM: "dumb" })).toBe(false)
    // an empty NO_COLOR is unset (no-color.org)
    expect(Style.enabled(tty, { NO_COLOR: "" })).toBe(true)
  })

  test("FORCE_COLOR turns colours on in a pipe, unless it says 0 or false; NO_COLOR still wins", () => {
    expect(Style.enabled(pipe, { FORCE_COLOR: "1" })).toBe(true)
    expect(Style.enabled(pipe, { FORCE_COLOR: "0" })).toBe(false)
    expect(Style.enabled(pipe, { FORCE_COLOR: "false" })).toBe(false)
    expect(Style.enabled(pipe, { FORCE_COLOR: "1", NO_COLOR: "1" })).toBe(false)
  })

  test("painters off return the text unchanged; on, they wrap it in SGR codes that reset only their own attribute", () => {
    expect(Style.make(false).red("dead")).toBe("dead")
    expect(Style.make(true).red("dead")).toBe("\x1b[31mdead\x1b[39m")
    expect(Style.make(true).bold("#1")).toBe("\x1b[1m#1\x1b[22m")
  })
})

describe("Usage", () => {
  test("--verbose counts anywhere before a `--`, not after it", () => {
    expect(Usage.isVerbose(["--verbose", "dlq", "list"])).toBe(true)
    expect(Usage.isVerbose(["worker", "--verbose"])).toBe(true)
    expect(Usage.isVerbose(["worker", "--verbose=true"])).toBe(true)
    expect(Usage.isVerbose(["worker"])).toBe(false)
    expect(Usage.isVerbose(["enqueue", "x", "--", "--verbose"])).toBe(false)
  })

  test("a usage error exits 2 and is not printed again by the runner (the presenter showed it)", () => {
    const e = new Usage.UsageError({ commandPath: ["msgsys", "dlq"], problems: [] })
    expect(Runtime.getErrorExitCode(e)).toBe(2)
    expect(Runtime.getErrorReported(e)).toBe(false)
    expect(e.message).toBe("msgsys dlq needs a subcommand: `msgsys dlq --help` lists them")
  })
})
