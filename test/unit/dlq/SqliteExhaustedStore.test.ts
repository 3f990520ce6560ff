import { afterAll, describe, expect, test } from "bun:test"
import { Effect, Option } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Database from "../../../src/sqlite/Database.ts"
import type { ExhaustedInput } from "../../../src/dlq/ExhaustedStore.ts"
import * as SqliteExhaustedStore from "../../../src/dlq/SqliteExhaustedStore.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

const withStore = <A, E>(f: (store: Effect.Success<ReturnType<typeof SqliteExhaustedStore.make>>) => Effect.Effect<A, E>) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* Database.make({ path: join(dir, `exhausted-${++n}.db`) })
    return yield* Effect.flatMap(SqliteExhaustedStore.make(), f).pipe(Effect.provideService(Database.Database, db))
  })))

const letter = (id: string, extra: Partial<ExhaustedInput> = {}): ExhaustedInput => ({
  id,
  originalSubject: "etl.extract.salesforce",
  actor: "etl",
  tenant: "acme",
  headers: { "Msgsys-Id": id, traceparent: "00-abc-def-01" },
  payload: new TextEncoder().encode(JSON.stringify({ since: "2026-01-01" })),
  error: { tag: "SourceUnavailable", message: "salesforce is down" },
  attempts: [
    { attempt: 1, at: 1000, error: { tag: "SourceUnavailable", message: "down" } },
    { attempt: 2, at: 2000, error: "still down" }
  ],
  deadLetteredAt: 3000,
  exhaustedAt: 9000,
  ...extra
})

describe("SqliteExhaustedStore", () => {
  test("stores a letter with its headers, bytes (as base64), error, reason, retries and attempt history", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.add(letter("m1", { reason: "max_deliveries", retries: 5 }))
        const got = Option.getOrThrow(yield* store.get("m1"))
        expect(got).toEqual({
          ...letter("m1"),
          reason: "max_deliveries",
          retries: 5,
          payload: Buffer.from(JSON.stringify({ since: "2026-01-01" })).toString("base64"),
          replayedAt: undefined
        })
        expect(Option.isNone(yield* store.get("nope"))).toBe(true)
        // reason and retries default to a letter whose retries ran out before any replay
        yield* store.add(letter("m2"))
        expect(Option.getOrThrow(yield* store.get("m2"))).toMatchObject({ reason: "exhausted", retries: 0 })
      })))

  test("lists newest first, filtered by actor and tenant, up to the limit", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.add(letter("a1", { exhaustedAt: 1 }))
        yield* store.add(letter("a2", { exhaustedAt: 3 }))
        yield* store.add(letter("b1", { tenant: "globex", exhaustedAt: 2 }))
        yield* store.add(letter("c1", { actor: "reports", exhaustedAt: 4 }))
        const ids = (xs: ReadonlyArray<{ id: string }>) => xs.map((x) => x.id)
        expect(ids(yield* store.list())).toEqual(["c1", "a2", "b1", "a1"])
        expect(ids(yield* store.list({ actor: "etl" }))).toEqual(["a2", "b1", "a1"])
        expect(ids(yield* store.list({ actor: "etl", tenant: "acme" }))).toEqual(["a2", "a1"])
        expect(ids(yield* store.list({ tenant: "acme", limit: 2 }))).toEqual(["c1", "a2"])
        expect(yield* store.count()).toBe(4)
        expect(yield* store.count({ actor: "etl", tenant: "acme" })).toBe(2)
      })))

  test("markReplayed and remove report whether the letter existed", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.add(letter("m1"))
        expect(yield* store.markReplayed("m1", 12345)).toBe(true)
        expect(Option.getOrThrow(yield* store.get("m1")).replayedAt).toBe(12345)
        expect(yield* store.markReplayed("missing", 1)).toBe(false)
        expect(yield* store.remove("m1")).toBe(true)
        expect(yield* store.remove("m1")).toBe(false)
        expect(yield* store.list()).toEqual([])
      })))

  test("adding the same id again replaces the letter and clears its replay mark", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.add(letter("m1"))
        yield* store.markReplayed("m1", 5)
        yield* store.add(letter("m1", { error: "failed again", exhaustedAt: 99, payload: "AAEC" }))
        const got = Option.getOrThrow(yield* store.get("m1"))
        expect(got).toMatchObject({ error: "failed again", exhaustedAt: 99, payload: "AAEC", replayedAt: undefined })
        expect(yield* store.list()).toHaveLength(1)
      })))
})
