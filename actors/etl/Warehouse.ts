/**
 * The warehouse: a SQLite file (`etl/<destination>.sqlite`) with one `sales` table keyed by order
 * id. Loading inserts a batch in one transaction and skips orders already there, so loading the
 * same data twice changes nothing. The reports read it.
 */
import { Database } from "bun:sqlite"
import { Context, Effect, Layer } from "effect"
import { DataDir } from "../shared/DataDir.ts"
import type { Sale } from "./Sales.ts"

/** Revenue and units of one group of sales. */
export interface Totals {
  readonly key: string
  readonly orders: number
  readonly units: number
  readonly revenue: number
}

export class Warehouse extends Context.Service<Warehouse, {
  /** Inserts the batch in one transaction; returns how many orders were new. */
  readonly load: (destination: string, batch: ReadonlyArray<Sale>) => Effect.Effect<number>
  /** Orders, units and revenue per key (`day`, `region` or `product`) between two dates (inclusive). */
  readonly totals: (
    destination: string,
    by: "day" | "region" | "product",
    from: string,
    to: string
  ) => Effect.Effect<ReadonlyArray<Totals>>
  /** The latest order date, if any order is loaded. */
  readonly latestDate: (destination: string) => Effect.Effect<string | undefined>
  /** Rows, and a checksum of every row: equal checksums mean equal tables. */
  readonly fingerprint: (destination: string) => Effect.Effect<{ readonly rows: number; readonly checksum: string }>
  /** The file of a destination. */
  readonly path: (destination: string) => string
}>()("actors/etl/Warehouse") {}

const schema = `
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = NORMAL;
  PRAGMA busy_timeout = 5000;
  CREATE TABLE IF NOT EXISTS sales (
    order_id TEXT PRIMARY KEY, order_date TEXT NOT NULL, region TEXT NOT NULL, product_id TEXT NOT NULL,
    quantity INTEGER NOT NULL, unit_price REAL NOT NULL, customer_id TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS sales_date ON sales (order_date);
`

const column = { day: "order_date", region: "region", product: "product_id" } as const

export const layer: Layer.Layer<Warehouse, never, DataDir> = Layer.effect(
  Warehouse,
  Effect.gen(function*() {
    const data = yield* DataDir
    const open = new Map<string, { readonly db: Database; readonly insert: (batch: ReadonlyArray<Sale>) => number }>()
    yield* Effect.addFinalizer(() => Effect.sync(() => {
      for (const { db } of open.values()) db.close()
    }))
    const path = (destination: string) => data.file("etl", `${destination}.sqlite`)
    const get = (destination: string) => {
      let w = open.get(destination)
      if (w === undefined) {
        const db = new Database(path(destination), { create: true })
        db.exec(schema)
        const insert = db.prepare("INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING")
        w = {
          db,
          insert: db.transaction((batch: ReadonlyArray<Sale>) => {
            let inserted = 0
            for (const s of batch) {
              inserted += insert.run(s.orderId, s.orderDate, s.region, s.productId, s.quantity, s.unitPrice, s.customerId).changes
            }
            return inserted
          })
        }
        open.set(destination, w)
      }
      return w
    }
    return Warehouse.of({
      path,
      load: (destination, batch) => Effect.sync(() => get(destination).insert(batch)),
      totals: (destination, by, from, to) =>
        Effect.sync(() =>
          get(destination).db.query<Totals, [string, string]>(
            `SELECT ${column[by]} AS key, count(*) AS orders, sum(quantity) AS units,
               round(sum(quantity * unit_price), 2) AS revenue
             FROM sales WHERE order_date BETWEEN ? AND ? GROUP BY key ORDER BY key`
          ).all(from, to)
        ),
      latestDate: (destination) =>
        Effect.sync(() => get(destination).db.query<{ d: string | null }, []>("SELECT max(order_date) AS d FROM sales").get()?.d ?? undefined),
      fingerprint: (destination) =>
        Effect.sync(() => {
          const hash = new Bun.CryptoHasher("sha256")
          let rows = 0
          for (const r of get(destination).db.query<Record<string, unknown>, []>("SELECT * FROM sales ORDER BY order_id").iterate()) {
            hash.update(JSON.stringify(r))
            rows++
          }
          return { rows, checksum: hash.digest("hex") }
        })
    })
  })
)
