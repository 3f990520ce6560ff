/**
 * Writes the sales data set as CSV (seeded: the same options give the same file).
 *
 *   bun actors/etl/generate.ts [--rows 250000] [--seed 17] [--out FILE]
 *
 * Default FILE: `etl/sources/sales-2026h1.csv` under the actors' data directory
 * (`ACTORS_DATA_DIR`, default `.msgsys/actors`), where the ETL job's `source: "sales-2026h1"` reads it.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { generate } from "./Sales.ts"

const flag = (name: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? undefined : process.argv[i + 1]
}
const number = (name: string, fallback: number) => {
  const v = flag(name)
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`--${name} ${v}: expected a whole number of at least 1`)
    process.exit(1)
  }
  return n
}

const root = process.env.ACTORS_DATA_DIR || join(process.env.MSGSYS_DATA_DIR || ".msgsys", "actors")
const out = flag("out") ?? join(root, "etl", "sources", "sales-2026h1.csv")
const set = generate({ rows: number("rows", 250_000), seed: number("seed", 17) })
mkdirSync(dirname(out), { recursive: true })
writeFileSync(`${out}.tmp`, set.csv)
renameSync(`${out}.tmp`, out)
console.log(`${out}: ${set.orders} orders, ${set.duplicates} duplicate lines, ${set.invalid} invalid rows (${(set.csv.length / 1e6).toFixed(1)} MB)`)
