/**
 * The sales data set: its row schema (what the ETL validates against), its CSV form, and a
 * generator that makes it from a seeded PRNG — a few hundred thousand orders over half a year,
 * with the faults real exports have: exact duplicate rows (an export retried) and invalid rows
 * (a negative quantity, a date that does not exist, an unknown region, a price of zero).
 */
import { Schema } from "effect"

export const regions = ["north", "south", "east", "west", "central"] as const

export const products = [
  ["P-100", "Widget", 12.5],
  ["P-200", "Gadget", 39.9],
  ["P-300", "Sprocket", 4.25],
  ["P-400", "Gizmo", 89],
  ["P-500", "Doohickey", 17.75],
  ["P-600", "Thingamajig", 249]
] as const

// a data set has few distinct dates: remember each one's verdict
const dateVerdicts = new Map<string, true | string>()
const checkDate = (s: string): true | string => {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) return "expected a date as YYYY-MM-DD"
  const d = new Date(`${s}T00:00:00Z`)
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(s) ? true : `${s} is not a calendar date`
}

/** A calendar date as YYYY-MM-DD. */
export const IsoDate = Schema.String.check(
  Schema.makeFilter((s: string) => {
    let verdict = dateVerdicts.get(s)
    if (verdict === undefined) {
      verdict = checkDate(s)
      if (dateVerdicts.size < 100_000) dateVerdicts.set(s, verdict)
    }
    return verdict
  })
)

/** A valid sale: what the warehouse accepts. */
export const Sale = Schema.Struct({
  orderId: Schema.String.check(Schema.isPattern(/^ORD-\d{7}$/)),
  orderDate: IsoDate,
  region: Schema.Literals(regions),
  productId: Schema.String.check(Schema.isPattern(/^P-\d{3}$/)),
  quantity: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 })),
  unitPrice: Schema.Number.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(100_000)),
  customerId: Schema.String.check(Schema.isPattern(/^C-\d{5}$/))
})
export type Sale = typeof Sale.Type

export const header = "order_id,order_date,region,product_id,quantity,unit_price,customer_id"

/** One CSV line as the raw, unchecked fields of a sale (numbers parsed, or NaN). */
export const parseLine = (line: string): Record<string, unknown> => {
  const [orderId, orderDate, region, productId, quantity, unitPrice, customerId] = line.split(",")
  return { orderId, orderDate, region, productId, quantity: Number(quantity), unitPrice: Number(unitPrice), customerId }
}

/** mulberry32: a small seeded PRNG, so the same seed always makes the same data set. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface GenerateOptions {
  /** Orders before duplicates and faults. Default 250,000. */
  readonly rows?: number
  /** Default 17. */
  readonly seed?: number
  /** First day, YYYY-MM-DD. Default 2026-01-01. */
  readonly from?: string
  /** Days covered. Default 181 (to 2026-06-30). */
  readonly days?: number
}

/** What a generated file holds. */
export interface Generated {
  readonly csv: string
  readonly orders: number
  readonly duplicates: number
  readonly invalid: number
}

/** Makes the data set (about 2% duplicate lines, 1% invalid ones), deterministic for a seed. */
export const generate = (options: GenerateOptions = {}): Generated => {
  const rows = options.rows ?? 250_000
  const random = prng(options.seed ?? 17)
  const start = Date.parse(`${options.from ?? "2026-01-01"}T00:00:00Z`)
  const days = options.days ?? 181
  const pick = <A>(xs: ReadonlyArray<A>) => xs[Math.floor(random() * xs.length)]!
  const lines: Array<string> = [header]
  let duplicates = 0
  let invalid = 0
  for (let i = 0; i < rows; i++) {
    // more orders late in the period, and on weekdays
    const day = Math.floor(Math.sqrt(random()) * days)
    const date = new Date(start + day * 86_400_000)
    if ((date.getUTCDay() === 0 || date.getUTCDay() === 6) && random() < 0.4) {
      date.setUTCDate(date.getUTCDate() - (date.getUTCDay() === 0 ? 2 : 1))
    }
    const [productId, , price] = pick(products)
    const region = pick(regions)
    const quantity = 1 + Math.floor(random() ** 3 * 40)
    const unitPrice = Math.round(price * (0.9 + random() * 0.2) * 100) / 100
    let fields = [
      `ORD-${String(i + 1).padStart(7, "0")}`,
      date.toISOString().slice(0, 10),
      region,
      productId,
      String(quantity),
      unitPrice.toFixed(2),
      `C-${String(1 + Math.floor(random() * 20_000)).padStart(5, "0")}`
    ]
    if (random() < 0.01) {
      invalid++
      const fault = Math.floor(random() * 4)
      fields = [...fields]
      if (fault === 0) fields[4] = String(-quantity)
      else if (fault === 1) fields[1] = `${fields[1]!.slice(0, 4)}-02-30`
      else if (fault === 2) fields[2] = "atlantis"
      else fields[5] = "0.00"
    }
    const line = fields.join(",")
    lines.push(line)
    if (random() < 0.02) {
      duplicates++
      lines.push(line)
    }
  }
  return { csv: lines.join("\n") + "\n", orders: rows, duplicates, invalid }
}
