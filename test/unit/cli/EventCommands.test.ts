/** `--since` reads a duration back from now or a time with a date and a time of day, nothing else. */
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { parseSince } from "../../../src/cli/EventCommands.ts"

const now = Date.parse("2026-11-30T12:00:00Z")
const since = (value: string) => Effect.runPromise(Effect.result(parseSince(value, now)))

describe("events replay --since", () => {
  test("a duration counts back from now", async () => {
    expect(await since("1h")).toMatchObject({ success: new Date("2026-11-30T11:00:00Z") })
    expect(await since("90 minutes")).toMatchObject({ success: new Date("2026-11-30T10:30:00Z") })
  })

  test("a time is read as given, in its zone (UTC with Z)", async () => {
    expect(await since("2026-11-30T10:00Z")).toMatchObject({ success: new Date("2026-11-30T10:00:00Z") })
    expect(await since("2026-11-30T10:00:00+01:00")).toMatchObject({ success: new Date("2026-11-30T09:00:00Z") })
  })

  test("anything else is refused with both forms named", async () => {
    for (const value of ["yesterday", "5", "May", "2026-11-30"]) {
      const r = await since(value)
      expect(r._tag).toBe("Failure")
      if (r._tag === "Failure") expect(r.failure.message).toContain("neither a duration back from now (1h, 30m, 2d) nor a time")
    }
  })
})
