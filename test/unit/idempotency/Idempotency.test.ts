import { afterAll, describe, expect, test } from "bun:test"
import { type Duration, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Database from "../../../src/sqlite/Database.ts"
import { Idempotency, layerMemory } from "../../../src/idempotency/Idempotency.ts"
import * as SqliteIdempotency from "../../../src/idempotency/SqliteIdempotency.ts"
import { idempotencyConformance } from "./conformance.ts"

const dir = mkdtempSync(join(tmpdir(), "msgsys-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const sqliteLayer = (path = join(dir, `idem-${++n}.db`), retention: Duration.Input = "1 day") =>
  SqliteIdempotency.layerSqlite({ retention }).pipe(Layer.provide(Database.layer({ path })))

idempotencyConformance("memory", () => layerMemory())
idempotencyConformance("sqlite", () => sqliteLayer())

const withTestClock = <A, E>(layer: Layer.Layer<Idempotency, unknown>, body: (idem: Idempotency["Service"]) => Effect.Effect<A, E>) =>
  Effect.runPromise(Idempotency.use(body).pipe(
    Effect.provide(layer, { local: true }),
    Effect.provide(TestClock.layer())
  )).then(() => {})

for (const [name, make] of [["memory", () => layerMemory({ retention: "1 day" })], ["sqlite", () => sqliteLayer()]] as const) {
  describe(`Idempotency on the TestClock: ${name}`, () => {
    test("a lease expires exactly when the clock passes it", () =>
      withTestClock(make(), (idem) =>
        Effect.gen(function*() {
          yield* idem.claim("k", "crashed", "30 seconds")
          yield* TestClock.adjust("29 seconds")
          expect((yield* idem.claim("k", "w2", "30 seconds"))._tag).toBe("Held")
          yield* TestClock.adjust("2 seconds")
          expect(yield* idem.claim("k", "w2", "30 seconds")).toEqual({ _tag: "Claimed" })
        })))

    test("prune deletes done keys only once the retention has passed, and counts them", () =>
      withTestClock(make(), (idem) =>
        Effect.gen(function*() {
          yield* idem.claim("a", "w", "1 minute")
          yield* idem.complete("a", "w", 1)
          yield* TestClock.adjust("23 hours")
          yield* idem.claim("b", "w", "1 minute")
          yield* idem.complete("b", "w", 2)
          expect(yield* idem.prune()).toBe(0)
          yield* TestClock.adjust("2 hours")
          expect(yield* idem.prune()).toBe(1)
          expect((yield* idem.claim("a", "w2", "1 minute"))._tag).toBe("Claimed")
          expect((yield* idem.claim("b", "w2", "1 minute"))._tag).toBe("Done")
        })))

    test("prune also deletes claims abandoned longer than the retention", () =>
      withTestClock(make(), (idem) =>
        Effect.gen(function*() {
          yield* idem.claim("abandoned", "crashed", "1 minute")
          yield* TestClock.adjust("25 hours")
          expect(yield* idem.prune()).toBe(1)
        })))
  })
}

describe("SqliteIdempotency across connections", () => {
  test("two connections to one file (two processes) see each other's claims and outcomes", async () => {
    const path = join(dir, "shared.db")
    const open = () =>
      Effect.flatMap(Database.make({ path }), (db) =>
        SqliteIdempotency.make({ retention: "1 day" }).pipe(Effect.provideService(Database.Database, db)))
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const a = yield* open()
      const b = yield* open()
      expect(yield* a.claim("k", "pa", "30 seconds")).toEqual({ _tag: "Claimed" })
      expect((yield* b.claim("k", "pb", "30 seconds"))._tag).toBe("Held")
      yield* a.complete("k", "pa", { v: 1 })
      const done = yield* b.claim("k", "pb", "30 seconds")
      expect(done._tag === "Done" && done.outcome.output).toEqual({ v: 1 })
    })))
  })

  test("an output JSON cannot encode fails complete with an IdempotencyError and keeps the claim", async () => {
    await Effect.runPromise(Effect.gen(function*() {
      const idem = yield* Idempotency
      yield* idem.claim("k", "w", "30 seconds")
      const error = yield* Effect.flip(idem.complete("k", "w", { n: 1n }))
      expect(error._tag).toBe("IdempotencyError")
      expect(error.message).toContain("retried")
      expect((yield* idem.claim("k", "w2", "30 seconds"))._tag).toBe("Held")
    }).pipe(Effect.provide(sqliteLayer(), { local: true })))
  })
})
