/**
 * Exhausted dead letters in the msgsys SQLite file (table `exhausted`).
 * @since 0.1.0
 */
import { Effect, Layer, Option } from "effect"
import * as Database from "../sqlite/Database.ts"
import { type Exhausted, type ExhaustedInput, ExhaustedStore, ExhaustedStoreError } from "./ExhaustedStore.ts"

interface Row {
  readonly id: string
  readonly original_subject: string
  readonly actor: string
  readonly tenant: string
  readonly headers: string
  readonly payload: string
  readonly error: string
  readonly attempts: string
  readonly dead_lettered_at: number
  readonly exhausted_at: number
  readonly replayed_at: number | null
  readonly reason: string
  readonly retries: number
}

const fromRow = (r: Row): Exhausted => ({
  id: r.id,
  originalSubject: r.original_subject,
  actor: r.actor,
  tenant: r.tenant,
  headers: JSON.parse(r.headers),
  payload: r.payload,
  error: JSON.parse(r.error),
  reason: r.reason,
  retries: r.retries,
  attempts: JSON.parse(r.attempts),
  deadLetteredAt: r.dead_lettered_at,
  exhaustedAt: r.exhausted_at,
  replayedAt: r.replayed_at ?? undefined
})

const base64 = (payload: Uint8Array | string): string =>
  typeof payload === "string" ? payload : Buffer.from(payload).toString("base64")

const columns =
  "id, original_subject, actor, tenant, headers, payload, error, reason, retries, attempts, dead_lettered_at, exhausted_at, replayed_at"

/**
 * The store on the `Database`.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("SqliteExhaustedStore.make")(function*() {
  const db = yield* Database.Database
  const h = db.handle
  const s = yield* Effect.orDie(db.use("preparing exhausted-store statements", () => ({
    add: h.prepare<never, [string, string, string, string, string, string, string, string, number, string, number, number]>(
      `INSERT INTO exhausted (id, original_subject, actor, tenant, headers, payload, error, reason, retries, attempts,
         dead_lettered_at, exhausted_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET original_subject = excluded.original_subject, actor = excluded.actor,
         tenant = excluded.tenant, headers = excluded.headers, payload = excluded.payload, error = excluded.error,
         reason = excluded.reason, retries = excluded.retries, attempts = excluded.attempts,
         dead_lettered_at = excluded.dead_lettered_at, exhausted_at = excluded.exhausted_at, replayed_at = NULL`
    ),
    list: h.prepare<Row, [string | null, string | null, number]>(
      `SELECT ${columns} FROM exhausted
       WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR tenant = ?2)
       ORDER BY exhausted_at DESC, id LIMIT ?3`
    ),
    count: h.prepare<{ n: number }, [string | null, string | null]>(
      "SELECT count(*) AS n FROM exhausted WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR tenant = ?2)"
    ),
    get: h.prepare<Row, [string]>(`SELECT ${columns} FROM exhausted WHERE id = ?`),
    replayed: h.prepare<never, [number, string]>("UPDATE exhausted SET replayed_at = ? WHERE id = ?"),
    remove: h.prepare<never, [string]>("DELETE FROM exhausted WHERE id = ?")
  })))
  const fail = (operation: string, id?: string) => (cause: unknown) => new ExhaustedStoreError({ operation, id, cause })

  return ExhaustedStore.of({
    add: (letter: ExhaustedInput) =>
      Effect.try({
        try: () =>
          [
            JSON.stringify(letter.headers),
            JSON.stringify(letter.error ?? null),
            JSON.stringify(letter.attempts)
          ] as const,
        catch: fail("encoding", letter.id)
      }).pipe(
        Effect.flatMap(([headers, error, attempts]) =>
          db.write("adding an exhausted dead letter", () =>
            s.add.run(
              letter.id,
              letter.originalSubject,
              letter.actor,
              letter.tenant,
              headers,
              base64(letter.payload),
              error,
              letter.reason ?? "exhausted",
              letter.retries ?? 0,
              attempts,
              letter.deadLetteredAt,
              letter.exhaustedAt
            )).pipe(Effect.mapError(fail("add", letter.id)))
        ),
        Effect.asVoid
      ),
    list: (options = {}) =>
      db.use("listing exhausted dead letters", () =>
        s.list.all(options.actor ?? null, options.tenant ?? null, Math.max(1, options.limit ?? 100)).map(fromRow)
      ).pipe(Effect.mapError(fail("list"))),
    count: (options = {}) =>
      db.use("counting exhausted dead letters", () => s.count.get(options.actor ?? null, options.tenant ?? null)?.n ?? 0).pipe(
        Effect.mapError(fail("count"))
      ),
    get: (id) =>
      db.use("reading an exhausted dead letter", () => Option.map(Option.fromNullishOr(s.get.get(id)), fromRow)).pipe(
        Effect.mapError(fail("get", id))
      ),
    markReplayed: (id, at) =>
      db.write("marking a dead letter replayed", () => s.replayed.run(at, id).changes > 0).pipe(
        Effect.mapError(fail("markReplayed", id))
      ),
    remove: (id) =>
      db.write("removing an exhausted dead letter", () => s.remove.run(id).changes > 0).pipe(
        Effect.mapError(fail("remove", id))
      )
  })
})

/**
 * The SQLite exhausted store as a layer over the `Database`.
 * @category layers @since 0.1.0
 */
export const layerSqlite: Layer.Layer<ExhaustedStore, never, Database.Database> = Layer.effect(ExhaustedStore, make())
