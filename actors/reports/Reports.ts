/**
 * The reports domain of the design guide: daily, weekly and monthly sales reports from the
 * warehouse, on demand or by cron, written as files under `reports/<period>/` — a CSV of the
 * figures and a self-contained HTML page (inline CSS and an SVG chart, nothing fetched). The
 * task's result names the files. A slow-pool actor: rendering a month reads every sale in it.
 */
import { Effect, Option, Schema } from "effect"
import { mkdirSync, renameSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"
import { Actor, Retry, Schedules, Task } from "msgsys"
import { DataDir } from "../shared/DataDir.ts"
import { IsoDate } from "../etl/Sales.ts"
import { type Totals, Warehouse } from "../etl/Warehouse.ts"

export const Period = Schema.Literals(["daily", "weekly", "monthly"])
export type Period = typeof Period.Type

export const Sales = Task.make("reports.sales", {
  input: {
    period: Period,
    /** The warehouse to read (`etl/<destination>.sqlite`). */
    destination: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{1,64}$/)),
    /** A day in the period to report; default: the latest day with sales. */
    date: Schema.optional(IsoDate)
  },
  output: {
    period: Period,
    /** The period's first and last day. */
    from: Schema.String,
    to: Schema.String,
    /** The files, relative to the data directory. */
    csv: Schema.String,
    html: Schema.String,
    orders: Schema.Int,
    revenue: Schema.Number
  }
})

export const Reports = Actor.make("reports", {
  protocol: [Sales],
  pool: "slow",
  concurrency: 2,
  timeout: "5 minutes",
  retry: Retry.exponential({ base: "5 seconds", maxAttempts: 3, cap: "1 minute" })
})

const day = (d: Date) => d.toISOString().slice(0, 10)
const utc = (s: string) => new Date(`${s}T00:00:00Z`)

/** The first and last day of the period holding `date`, and the name of the period. */
export const periodOf = (period: Period, date: string): { readonly from: string; readonly to: string; readonly name: string } => {
  const d = utc(date)
  if (period === "daily") return { from: date, to: date, name: date }
  if (period === "monthly") {
    const from = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1))
    const to = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0))
    return { from: day(from), to: day(to), name: date.slice(0, 7) }
  }
  // ISO week: Monday to Sunday; named after the year and week number of its Thursday
  const monday = new Date(d.getTime() - ((d.getUTCDay() + 6) % 7) * 86_400_000)
  const sunday = new Date(monday.getTime() + 6 * 86_400_000)
  const thursday = new Date(monday.getTime() + 3 * 86_400_000)
  const jan4 = new Date(Date.UTC(thursday.getUTCFullYear(), 0, 4))
  const week = 1 + Math.round((thursday.getTime() - jan4.getTime()) / 86_400_000 / 7 + ((jan4.getUTCDay() + 6) % 7 - 3) / 7)
  return { from: day(monday), to: day(sunday), name: `${thursday.getUTCFullYear()}-W${String(week).padStart(2, "0")}` }
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const money = (n: number) => n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })

/** A bar chart of revenue per key, as SVG. */
const chart = (rows: ReadonlyArray<Totals>, title: string) => {
  const width = 760
  const height = 260
  const max = Math.max(1, ...rows.map((r) => r.revenue))
  const bar = rows.length === 0 ? 0 : (width - 60) / rows.length
  const bars = rows.map((r, i) => {
    const h = Math.round((r.revenue / max) * (height - 60))
    const x = 50 + i * bar
    return `<rect x="${x.toFixed(1)}" y="${height - 30 - h}" width="${Math.max(1, bar - 2).toFixed(1)}" height="${h}" fill="#3b82f6"><title>${escape(r.key)}: ${money(r.revenue)}</title></rect>` +
      (rows.length <= 12 ? `<text x="${(x + bar / 2).toFixed(1)}" y="${height - 12}" font-size="11" text-anchor="middle">${escape(r.key.slice(-5))}</text>` : "")
  }).join("")
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escape(title)}">` +
    `<line x1="48" y1="${height - 30}" x2="${width - 8}" y2="${height - 30}" stroke="#999"/>` +
    `<text x="48" y="16" font-size="12" fill="#555">max ${money(max)}</text>${bars}</svg>`
}

const table = (rows: ReadonlyArray<Totals>, label: string) =>
  `<table><thead><tr><th>${label}</th><th>orders</th><th>units</th><th>revenue</th></tr></thead><tbody>` +
  rows.map((r) => `<tr><td>${escape(r.key)}</td><td>${r.orders}</td><td>${r.units}</td><td>${money(r.revenue)}</td></tr>`).join("") +
  "</tbody></table>"

/** The report page: self-contained (inline CSS and SVG, no script, nothing fetched). */
export const renderHtml = (
  title: string,
  from: string,
  to: string,
  byDay: ReadonlyArray<Totals>,
  byRegion: ReadonlyArray<Totals>,
  byProduct: ReadonlyArray<Totals>
) => {
  const orders = byDay.reduce((n, r) => n + r.orders, 0)
  const revenue = byDay.reduce((n, r) => n + r.revenue, 0)
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title><style>
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#111}h1{font-size:1.4rem}table{border-collapse:collapse;margin:1rem 0}
td,th{border-bottom:1px solid #ddd;padding:.25rem .75rem;text-align:right}td:first-child,th:first-child{text-align:left}
.kpi{display:inline-block;margin-right:2rem}.kpi b{display:block;font-size:1.6rem}svg{max-width:100%;height:auto}
</style></head><body><h1>${escape(title)}</h1><p>${from} to ${to}</p>
<div class="kpi"><b>${orders}</b>orders</div><div class="kpi"><b>${money(revenue)}</b>revenue</div>
<h2>Revenue by day</h2>${chart(byDay, "revenue by day")}
<h2>By region</h2>${table(byRegion, "region")}<h2>By product</h2>${table(byProduct, "product")}
</body></html>
`
}

const writeAtomic = (path: string, text: string) => {
  writeFileSync(`${path}.tmp`, text)
  renameSync(`${path}.tmp`, path)
}

export const ReportsLive = Reports.toLayer(Effect.gen(function*() {
  const data = yield* DataDir
  const warehouse = yield* Warehouse
  return Reports.of({
    "reports.sales": ({ input, envelope }) =>
      Effect.gen(function*() {
        // a scheduled run reports the latest period with sales as of its tick; on demand, the given day
        const tick = Schedules.tickOf(envelope)
        const latest = yield* warehouse.latestDate(input.destination)
        const date = input.date ?? latest ?? day(new Date(Option.isSome(tick) ? tick.value.at : envelope.createdAt))
        const { from, to, name } = periodOf(input.period, date)
        const [byDay, byRegion, byProduct] = yield* Effect.all([
          warehouse.totals(input.destination, "day", from, to),
          warehouse.totals(input.destination, "region", from, to),
          warehouse.totals(input.destination, "product", from, to)
        ])
        const dir = join(data.root, "reports", input.period)
        mkdirSync(dir, { recursive: true })
        const base = join(dir, `sales-${input.destination}-${name}`)
        const csv = ["day,orders,units,revenue", ...byDay.map((r) => `${r.key},${r.orders},${r.units},${r.revenue.toFixed(2)}`)].join("\n") + "\n"
        writeAtomic(`${base}.csv`, csv)
        writeAtomic(`${base}.html`, renderHtml(`${input.period} sales report ${name} (${input.destination})`, from, to, byDay, byRegion, byProduct))
        return {
          period: input.period,
          from,
          to,
          csv: relative(data.root, `${base}.csv`),
          html: relative(data.root, `${base}.html`),
          orders: byDay.reduce((n, r) => n + r.orders, 0),
          revenue: Math.round(byDay.reduce((n, r) => n + r.revenue, 0) * 100) / 100
        }
      })
  })
}))

/** The cron schedules of the three reports (UTC): daily at 06:00, weekly on Monday, monthly on the 1st. */
export const schedules = (destination: string) => [
  { name: "sales-daily", cron: "0 6 * * *", input: { period: "daily" as const, destination } },
  { name: "sales-weekly", cron: "0 6 * * MON", input: { period: "weekly" as const, destination } },
  { name: "sales-monthly", cron: "0 6 1 * *", input: { period: "monthly" as const, destination } }
]
