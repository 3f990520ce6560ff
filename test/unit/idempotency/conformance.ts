/**
 * The behaviour every Idempotency store must have, as a reusable bun:test suite. It uses only the
 * service interface and the real clock (short leases), so any implementation (memory, SQLite,
 * NATS KV) can run it: `idempotencyConformance("kv", () => KvIdempotency.layer(...))`.
 * Leases are a few hundred ms with generous margins; a store whose time comes from elsewhere
 * (a server clock) should still pass.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Layer } from "effect"
import { Idempotency } from "../../../src/idempotency/Idempotency.ts"

export const idempotencyConformance = (name: string, makeLayer: () => Layer.Layer<Idempotency, unknown>) => {
  let n = 0
  const key = (base: string) => `${base}-${process.pid}-${++n}-${Math.random().toString(36).slice(2, 8)}`
  const it = <A, E>(title: string, body: (idem: Idempotency["Service"]) => Effect.Effect<A, E>, timeout = 10_000) =>
    test(title, () =>
      Effect.runPromise(
        Idempotency.use(body).pipe(Effect.provide(makeLayer(), { local: true }))
      ).then(() => {}), timeout)

  describe(`Idempotency conformance: ${name}`, () => {
    it("the first claim of a new key is Claimed", (idem) =>
      Effect.gen(function*() {
        expect(yield* idem.claim(key("new"), "w1", "30 seconds")).toEqual({ _tag: "Claimed" })
      }))

    it("a claim by another owner while the lease is live is Held, naming the owner and lease end", (idem) =>
      Effect.gen(function*() {
        const k = key("held")
        const before = Date.now()
        yield* idem.claim(k, "w1", "30 seconds")
        const second = yield* idem.claim(k, "w2", "30 seconds")
        expect(second._tag).toBe("Held")
        if (second._tag === "Held") {
          expect(second.owner).toBe("w1")
          expect(second.heldUntil).toBeGreaterThanOrEqual(before + 29_000)
        }
      }))

    it("the same owner claiming again is Claimed (it renews its own claim)", (idem) =>
      Effect.gen(function*() {
        const k = key("again")
        yield* idem.claim(k, "w1", "30 seconds")
        expect(yield* idem.claim(k, "w1", "30 seconds")).toEqual({ _tag: "Claimed" })
      }))

    it("after complete, every claim is Done with the stored output and is not run again", (idem) =>
      Effect.gen(function*() {
        const k = key("done")
        const output = { taskId: "t1", output: { rows: 3, names: ["a", "b"], nested: { ok: true } } }
        yield* idem.claim(k, "w1", "30 seconds")
        yield* idem.complete(k, "w1", output)
        for (const owner of ["w1", "w2"]) {
          const c = yield* idem.claim(k, owner, "30 seconds")
          expect(c._tag).toBe("Done")
          if (c._tag === "Done") {
            expect(c.outcome.output).toEqual(output)
            expect(typeof c.outcome.completedAt).toBe("number")
          }
        }
      }))

    it("a second complete keeps the first outcome", (idem) =>
      Effect.gen(function*() {
        const k = key("first-wins")
        yield* idem.claim(k, "w1", "30 seconds")
        yield* idem.complete(k, "w1", { n: 1 })
        yield* idem.complete(k, "w2", { n: 2 })
        const c = yield* idem.claim(k, "w3", "30 seconds")
        expect(c._tag === "Done" && c.outcome.output).toEqual({ n: 1 })
      }))

    it("a crashed owner's key is claimable by another owner once its lease has expired", (idem) =>
      Effect.gen(function*() {
        const k = key("expire")
        yield* idem.claim(k, "crashed", "100 millis")
        yield* Effect.sleep("300 millis")
        expect(yield* idem.claim(k, "w2", "30 seconds")).toEqual({ _tag: "Claimed" })
        // the old owner learns it lost the key
        expect(yield* idem.renew(k, "crashed", "30 seconds")).toBe(false)
        expect((yield* idem.claim(k, "crashed", "30 seconds"))._tag).toBe("Held")
      }))

    it("release lets another owner claim at once; a release by a non-owner changes nothing", (idem) =>
      Effect.gen(function*() {
        const k = key("release")
        yield* idem.claim(k, "w1", "30 seconds")
        yield* idem.release(k, "intruder")
        expect((yield* idem.claim(k, "w2", "30 seconds"))._tag).toBe("Held")
        yield* idem.release(k, "w1")
        expect(yield* idem.claim(k, "w2", "30 seconds")).toEqual({ _tag: "Claimed" })
      }))

    it("release after complete does not forget the outcome", (idem) =>
      Effect.gen(function*() {
        const k = key("release-done")
        yield* idem.claim(k, "w1", "30 seconds")
        yield* idem.complete(k, "w1", "out")
        yield* idem.release(k, "w1")
        expect((yield* idem.claim(k, "w2", "30 seconds"))._tag).toBe("Done")
      }))

    it("renew keeps the key held past the original lease", (idem) =>
      Effect.gen(function*() {
        const k = key("renew")
        yield* idem.claim(k, "w1", "400 millis")
        yield* Effect.sleep("100 millis")
        expect(yield* idem.renew(k, "w1", "30 seconds")).toBe(true)
        yield* Effect.sleep("500 millis")
        expect((yield* idem.claim(k, "w2", "30 seconds"))._tag).toBe("Held")
        expect(yield* idem.renew(k, "w2", "30 seconds")).toBe(false)
      }))

    it("renew of a done or unknown key is false", (idem) =>
      Effect.gen(function*() {
        const k = key("renew-done")
        yield* idem.claim(k, "w1", "30 seconds")
        yield* idem.complete(k, "w1", 1)
        expect(yield* idem.renew(k, "w1", "30 seconds")).toBe(false)
        expect(yield* idem.renew(key("unknown"), "w1", "30 seconds")).toBe(false)
      }))

    it("prune keeps recent done keys and removes done keys older than the retention", (idem) =>
      Effect.gen(function*() {
        const k = key("prune")
        yield* idem.claim(k, "w1", "30 seconds")
        yield* idem.complete(k, "w1", { kept: true })
        yield* idem.prune()
        expect((yield* idem.claim(k, "w2", "30 seconds"))._tag).toBe("Done")
        // a thousand days on, any sane retention has passed
        const deleted = yield* idem.prune(Date.now() + 1000 * 86_400_000)
        expect(deleted).toBeGreaterThanOrEqual(1)
        expect(yield* idem.claim(k, "w2", "30 seconds")).toEqual({ _tag: "Claimed" })
      }))

    it("a message decided dead answers Dead to every claim for that message, and never runs again", (idem) =>
      Effect.gen(function*() {
        const k = key("dead")
        yield* idem.claim(k, "w1", "30 seconds", 7)
        yield* idem.markDead(k, "w1", 7, { reason: "exhausted", error: "boom" })
        for (const owner of ["w1", "w2"]) {
          const c = yield* idem.claim(k, owner, "30 seconds", 7)
          expect(c._tag).toBe("Dead")
          if (c._tag === "Dead") expect(c.verdict).toEqual({ reason: "exhausted", error: "boom" })
        }
        expect(yield* idem.renew(k, "w1", "30 seconds")).toBe(false)
        yield* idem.release(k, "w1")
        expect((yield* idem.claim(k, "w3", "30 seconds", 7))._tag).toBe("Dead")
      }))

    it("a dead mark gives way to another stored message with the same key (a replay): it is Claimed", (idem) =>
      Effect.gen(function*() {
        const k = key("replay")
        yield* idem.claim(k, "w1", "30 seconds", 7)
        yield* idem.markDead(k, "w1", 7, { reason: "permanent" })
        expect(yield* idem.claim(k, "w2", "30 seconds", 8)).toEqual({ _tag: "Claimed" })
        expect((yield* idem.claim(k, "w3", "30 seconds", 8))._tag).toBe("Held")
        yield* idem.complete(k, "w2", { taskId: "t", output: 1 })
        expect((yield* idem.claim(k, "w3", "30 seconds", 7))._tag).toBe("Done")
      }))

    it("markDead never overwrites a completed outcome", (idem) =>
      Effect.gen(function*() {
        const k = key("done-then-dead")
        yield* idem.claim(k, "w1", "30 seconds", 3)
        yield* idem.complete(k, "w1", { taskId: "t", output: 2 })
        yield* idem.markDead(k, "w2", 3, { reason: "exhausted" })
        const c = yield* idem.claim(k, "w3", "30 seconds", 3)
        expect(c._tag).toBe("Done")
      }))

    it("50 concurrent claims of one key by 50 owners give exactly one Claimed", (idem) =>
      Effect.gen(function*() {
        const k = key("race")
        const claims = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => `w${i}`),
          (owner) => idem.claim(k, owner, "30 seconds"),
          { concurrency: "unbounded" }
        )
        expect(claims.filter((c) => c._tag === "Claimed")).toHaveLength(1)
        expect(claims.filter((c) => c._tag === "Held")).toHaveLength(49)
      }))
  })
}
