import { describe, expect, test } from "bun:test"
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
