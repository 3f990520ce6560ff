import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import * as Subjects from "../../../src/broker/Subjects.ts"

describe("matchesFilter", () => {
  test("a message belongs to the consumer whose filter matches it, as the server decides", () => {
    const names = Subjects.make("MSGSYS")
    const filters = names.actorSubjects("etl")
    const owner = (stored: string) =>
      (Object.keys(filters) as Array<keyof typeof filters>).filter((k) => Subjects.matchesFilter(stored, filters[k]))
    expect(owner("etl.extract.salesforce")).toEqual(["normal"])
    expect(owner(names.taskSubject("etl.extract", "high"))).toEqual(["high"])
    expect(owner(names.taskSubject("etl.extract", "low"))).toEqual(["low"])
    expect(owner(names.delayedSubject("etl.extract"))).toEqual(["delayed"])
    expect(owner("reports.render")).toEqual([])
  })

  test("'>' needs at least one more token; '*' matches exactly one", () => {
    expect(Subjects.matchesFilter("etl", "etl.>")).toBe(false)
    expect(Subjects.matchesFilter("etl.a.b", "etl.>")).toBe(true)
    expect(Subjects.matchesFilter("etl.a", "etl.*")).toBe(true)
    expect(Subjects.matchesFilter("etl.a.b", "etl.*")).toBe(false)
    expect(Subjects.matchesFilter("etl.a.b", "etl.*.b")).toBe(true)
    expect(Subjects.matchesFilter("etl.a.b", "etl.a.b")).toBe(true)
    expect(Subjects.matchesFilter("etl.a", "etl.a.b")).toBe(false)
    expect(Subjects.matchesFilter("anything.at.all", ">")).toBe(true)
  })
})

describe("validateSubject", () => {
  const problem = (subject: string, prefix?: string) =>
    Effect.runSync(Effect.flip(Subjects.validateSubject(subject, prefix)))

  test("accepts the subject of one task", () => {
    expect(Effect.runSync(Subjects.validateSubject("etl.extract.salesforce", "MSGSYS"))).toBe("etl.extract.salesforce")
  })

  test("refuses wildcards, which would reach many subjects, and says what a subject looks like", () => {
    for (const subject of ["etl.*", "etl.>", ">", "*.x", "etl.extract.*"]) {
      const err = problem(subject)
      expect(err._tag).toBe("InvalidSubject")
      expect(err.message).toContain(`invalid task subject ${JSON.stringify(subject)}`)
      expect(err.message).toContain("wildcards")
      expect(err.message).toContain("etl.extract.salesforce")
    }
  })

  test("refuses a single token, an empty token and spaces", () => {
    expect(problem("etl").message).toContain("at least two tokens")
    expect(problem("etl..x").message).toContain("empty token")
    expect(problem("etl.a b").message).toContain("spaces")
  })

  test("refuses msgsys's own subjects under the stream prefix (dead letters, priorities, delays)", () => {
    const names = Subjects.make("MSGSYS")
    for (const subject of [names.deadLetterSubject("etl", "default"), names.taskSubject("etl.x", "high"), names.delayedSubject("etl.x")]) {
      expect(problem(subject, "MSGSYS").message).toContain("stream prefix MSGSYS")
    }
  })
})
