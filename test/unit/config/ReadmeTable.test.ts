import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import { readme, rewrite, table } from "../../../scripts/config-table.ts"

describe("README configuration table", () => {
  test("is the one the code makes (bun scripts/config-table.ts --write updates it)", () => {
    const text = readFileSync(readme, "utf8")
    expect(rewrite(text)).toBe(text)
  })

  test("lists every variable msgsys reads, once", () => {
    const rows = table().split("\n").slice(2)
    expect(rows.map((r) => r.split("`")[1])).toEqual(MsgsysConfig.variables.map((v) => v.name))
  })
})
