/**
 * The sales data set and the reports' periods, without a broker: the generator is deterministic
 * and makes each kind of fault the ETL must catch; ISO weeks hold across a year's end.
 */
import { describe, expect, test } from "bun:test"
import { Schema } from "effect"
import { periodOf, renderHtml } from "../reports/Reports.ts"
import { generate, parseLine, Sale } from "./Sales.ts"

describe("the sales data set", () => {
  test("the same seed makes the same file, another seed another one", () => {
    const a = generate({ rows: 2_000, seed: 1 })
    expect(generate({ rows: 2_000, seed: 1 }).csv).toBe(a.csv)
    expect(generate({ rows: 2_000, seed: 2 }).csv).not.toBe(a.csv)
  })

  test("its duplicate and invalid lines are the ones it reports, and the schema rejects every invalid one", () => {
    const set = generate({ rows: 20_000, seed: 9 })
    const lines = set.csv.trim().split("\n").slice(1)
    expect(lines.length).toBe(set.orders + set.duplicates)
    const distinct = new Map(lines.map((l) => [l.split(",")[0], l]))
    expect(distinct.size).toBe(set.orders)
    const invalid = [...distinct.values()].filter((l) => !Schema.is(Sale)(parseLine(l)))
    expect(invalid.length).toBe(set.invalid)
    // each fault kind is there: a negative quantity, a day that does not exist, an unknown region, a zero price
    const reasons = invalid.map((l) => {
      const e = Schema.decodeUnknownExit(Sale)(parseLine(l))
      return e._tag === "Failure" ? String(e.cause) : ""
    })
    for (const r of ["between 1 and 1000", "is not a calendar date", "\"north\"", "greater than 0"]) {
      expect(reasons.some((x) => x.includes(r))).toBe(true)
    }
  })
})

describe("report periods", () => {
  test("a day, its ISO week (Monday to Sunday, named by its Thursday's year) and its month", () => {
    expect(periodOf("daily", "2026-06-30")).toEqual({ from: "2026-06-30", to: "2026-06-30", name: "2026-06-30" })
    expect(periodOf("weekly", "2026-06-30")).toEqual({ from: "2026-06-29", to: "2026-07-05", name: "2026-W27" })
    expect(periodOf("weekly", "2026-01-01")).toEqual({ from: "2025-12-29", to: "2026-01-04", name: "2026-W01" })
    expect(periodOf("weekly", "2027-01-01")).toEqual({ from: "2026-12-28", to: "2027-01-03", name: "2026-W53" })
    expect(periodOf("monthly", "2028-02-10")).toEqual({ from: "2028-02-01", to: "2028-02-29", name: "2028-02" })
  })

  test("a report page escapes what it shows and loads nothing from elsewhere", () => {
    const html = renderHtml("<b>sales</b>", "2026-06-01", "2026-06-30", [{ key: "2026-06-01", orders: 1, units: 2, revenue: 3 }], [], [])
    expect(html).toContain("&#60;b&#62;sales&#60;/b&#62;")
    expect(html).not.toMatch(/<script|\s(src|href)=/)
  })
})
