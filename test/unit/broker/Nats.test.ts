import { describe, expect, test } from "bun:test"
import { compareVersions } from "../../../src/broker/Nats.ts"

describe("compareVersions", () => {
  test("orders components numerically, not as text: 2.9.10 is older than 2.10", () => {
    expect(compareVersions("2.9.10", "2.10")).toBeLessThan(0)
    expect(compareVersions("2.10", "2.9.10")).toBeGreaterThan(0)
  })

  test("treats missing components as zero: 2.10.0 equals 2.10", () => {
    expect(compareVersions("2.10.0", "2.10")).toBe(0)
    expect(compareVersions("2.10", "2.10.0")).toBe(0)
  })

  test("a later minor wins over a larger patch: 2.11.1 is newer than 2.10.22", () => {
    expect(compareVersions("2.11.1", "2.10.22")).toBeGreaterThan(0)
    expect(compareVersions("2.10.22", "2.11.1")).toBeLessThan(0)
  })

  test("a prerelease counts as its release line for feature gates, and stays below the next minor", () => {
    expect(compareVersions("2.11.0-RC.1", "2.11")).toBeGreaterThanOrEqual(0)
    expect(compareVersions("2.11.0-RC.1", "2.12")).toBeLessThan(0)
  })
})
