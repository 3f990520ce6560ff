/**
 * The NATS KV idempotency store against a real nats-server: the shared conformance suite, races
 * between two connections (two hosts), writes whose revision went stale between read and write,
 * keys KV could not hold as they are, and the bucket it opens.
 */
import type { KV } from "@nats-io/kv"
import { describe, expect, test } from "bun:test"
import { type Duration, Effect, Layer, type Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Nats from "../../../src/broker/Nats.ts"
import * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import { type Claim, Idempotency } from "../../../src/idempotency/Idempotency.ts"
import * as KvIdempotency from "../../../src/idempotency/KvIdempotency.ts"
import { natsHarness } from "../../support/harness.ts"
import { idempotencyConformance } from "../../unit/idempotency/conformance.ts"

const h = natsHarness()

/** A store on its own connection and a fresh bucket (unique stream prefix). */
const storeLayer = (retention: Duration.Input = "1 day") =>
  KvIdempotency.layer({ retention }).pipe(Layer.provide(h.layer(h.settings())))

idempotencyConformance("nats kv", () => storeLayer())

/** One "host": its own NATS connection and its own store object on the shared bucket. */
const host = (settings: MsgsysConfig.MsgsysSettings) =>
  Effect.gen(function*() {
    const nats = yield* Nats.make(settings.nats)
    const store = yield* KvIdempotency.make({ retention: "1 day" }).pipe(
      Effect.provideService(Nats.Nats, nats),
      Effect.provideService(MsgsysConfig.MsgsysConfig, settings)
    )
    const kv = yield* Effect.promise(() => nats.kvm.open(KvIdempotency.defaultBucket(settings.streamPrefix)))
    return { nats, store, kv }
  })

const runLive = <A, E>(body: Effect.Effect<A, E, Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(body)).then(() => {})

const tags = (claims: ReadonlyArray<Claim>) => ({
  claimed: claims.filter((c) => c._tag === "Claimed").length,
  held: claims.filter((c) => c._tag === "Held").length
})

describe("KvIdempotency across two connections (two hosts)", () => {
  test("20 claims of one new key raced from two connections give exactly one Claimed; the rest name its owner", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const a = yield* host(settings)
      const b = yield* host(settings)
      const owners = Array.from({ length: 20 }, (_, i) => `${i % 2 === 0 ? "a" : "b"}${i}`)
      const claims = yield* Effect.forEach(
        owners,
        (owner, i) => (i % 2 === 0 ? a : b).store.claim("order 42", owner, "30 seconds"),
        { concurrency: "unbounded" }
      )
      expect(tags(claims)).toEqual({ claimed: 1, held: 19 })
      const winner = owners[claims.findIndex((c) => c._tag === "Claimed")]
      for (const c of claims) if (c._tag === "Held") expect(c.owner).toBe(winner!)
    }))
  }, 20_000)

  test("20 takeovers of an expired claim raced from two connections give exactly one Claimed", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const a = yield* host(settings)
      const b = yield* host(settings)
      yield* a.store.claim("k", "crashed", "50 millis")
      yield* Effect.sleep("150 millis")
      const claims = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => (i % 2 === 0 ? a : b).store.claim("k", `w${i}`, "30 seconds"),
        { concurrency: "unbounded" }
      )
      expect(tags(claims)).toEqual({ claimed: 1, held: 19 })
      expect(yield* a.store.renew("k", "crashed", "30 seconds")).toBe(false)
    }))
  }, 20_000)

  test("a complete racing 20 takeovers on the other host keeps its outcome", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const a = yield* host(settings)
      const b = yield* host(settings)
      yield* a.store.claim("k", "slow", "50 millis")
      yield* Effect.sleep("150 millis")
      const [, claims] = yield* Effect.all([
        a.store.complete("k", "slow", { rows: 7 }),
        Effect.forEach(Array.from({ length: 20 }, (_, i) => `w${i}`), (o) => b.store.claim("k", o, "30 seconds"), {
          concurrency: "unbounded"
        })
      ], { concurrency: "unbounded" })
      expect(tags(claims).claimed).toBeLessThanOrEqual(1)
      const after = yield* b.store.claim("k", "late", "30 seconds")
      expect(after._tag === "Done" && after.outcome.output).toEqual({ rows: 7 })
    }))
  }, 20_000)
})

/**
 * `kv` whose first `get` returns what it read, but only after `interfere` has changed the key:
 * the caller then writes with a revision that is already stale.
 */
const staleOnFirstRead = (kv: KV, interfere: () => Promise<unknown>) => {
  const state = { interfered: false }
  const wrapped: KV = Object.create(kv)
  wrapped.get = async (k, opts) => {
    const entry = await kv.get(k, opts)
    if (!state.interfered) {
      state.interfered = true
      await interfere()
    }
    return entry
  }
  return { kv: wrapped, state }
}

describe("KvIdempotency with a revision gone stale between read and write", () => {
  const options = (settings: MsgsysConfig.MsgsysSettings) => ({
    retention: "1 day" as Duration.Input,
    bucket: KvIdempotency.defaultBucket(settings.streamPrefix)
  })

  test("a takeover of an expired claim that another host took first answers Held by that host", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const other = yield* host(settings)
      yield* other.store.claim("k", "crashed", "50 millis")
      yield* Effect.sleep("150 millis")
      const racing = staleOnFirstRead(
        other.kv,
        () => Effect.runPromise(other.store.claim("k", "fast", "30 seconds"))
      )
      const store = KvIdempotency.fromKv(racing.kv, options(settings))
      const c = yield* store.claim("k", "slow", "30 seconds")
      expect(racing.state.interfered).toBe(true)
      expect(c).toMatchObject({ _tag: "Held", owner: "fast" })
      expect((yield* other.store.claim("k", "third", "30 seconds"))).toMatchObject({ _tag: "Held", owner: "fast" })
    }))
  }, 20_000)

  test("renew after the lease was taken over between read and write answers false and keeps the new owner", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const other = yield* host(settings)
      yield* other.store.claim("k", "w1", "50 millis")
      yield* Effect.sleep("150 millis")
      const racing = staleOnFirstRead(other.kv, () => Effect.runPromise(other.store.claim("k", "w2", "30 seconds")))
      const store = KvIdempotency.fromKv(racing.kv, options(settings))
      expect(yield* store.renew("k", "w1", "30 seconds")).toBe(false)
      expect(racing.state.interfered).toBe(true)
      expect(yield* other.store.claim("k", "w3", "30 seconds")).toMatchObject({ _tag: "Held", owner: "w2" })
    }))
  }, 20_000)

  test("complete whose read went stale (the owner renewed meanwhile) retries and records the outcome", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const other = yield* host(settings)
      yield* other.store.claim("k", "w1", "30 seconds")
      const racing = staleOnFirstRead(other.kv, () => Effect.runPromise(other.store.renew("k", "w1", "1 minute")))
      const store = KvIdempotency.fromKv(racing.kv, options(settings))
      yield* store.complete("k", "w1", "out")
      expect(racing.state.interfered).toBe(true)
      const c = yield* other.store.claim("k", "w2", "30 seconds")
      expect(c._tag === "Done" && c.outcome.output).toBe("out")
    }))
  }, 20_000)

  test("release whose read went stale (another owner took over) leaves the new owner's claim", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const other = yield* host(settings)
      yield* other.store.claim("k", "w1", "50 millis")
      yield* Effect.sleep("150 millis")
      const racing = staleOnFirstRead(other.kv, () => Effect.runPromise(other.store.claim("k", "w2", "30 seconds")))
      const store = KvIdempotency.fromKv(racing.kv, options(settings))
      yield* store.release("k", "w1")
      expect(racing.state.interfered).toBe(true)
      expect(yield* other.store.claim("k", "w3", "30 seconds")).toMatchObject({ _tag: "Held", owner: "w2" })
    }))
  }, 20_000)
})

describe("KvIdempotency keys and values", () => {
  const awkward = [
    "",
    "order 42 for tenant acme",
    "a/b/c",
    "a.b.*.>",
    "ünïcødé ✓ 日本語 🚀",
    "tab\tnew\nline",
    "x".repeat(10_000)
  ]

  test("keys with spaces, slashes, dots, wildcards, unicode or any length work, each on its own", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const a = yield* host(settings)
      for (const [i, key] of awkward.entries()) {
        expect(yield* a.store.claim(key, "w1", "30 seconds")).toEqual({ _tag: "Claimed" })
        expect(yield* a.store.claim(key, "w2", "30 seconds")).toMatchObject({ _tag: "Held", owner: "w1" })
        yield* a.store.complete(key, "w1", { i })
      }
      for (const [i, key] of awkward.entries()) {
        const c = yield* a.store.claim(key, "w2", "30 seconds")
        expect(c._tag === "Done" && c.outcome.output).toEqual({ i })
        // the value keeps the original key for people reading the bucket
        const entry = yield* Effect.promise(() => a.kv.get(KvIdempotency.kvKey(key)))
        expect(entry?.json<{ key: string }>().key).toBe(key)
      }
      // "a b" and "a_b" must not meet in one KV key
      yield* a.store.claim("a b", "w1", "30 seconds")
      expect(yield* a.store.claim("a_b", "w2", "30 seconds")).toEqual({ _tag: "Claimed" })
    }))
  }, 20_000)

  test("a value that is not an idempotency record fails with an IdempotencyError saying how to delete it", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const a = yield* host(settings)
      yield* Effect.promise(() => a.kv.put(KvIdempotency.kvKey("k"), "not json"))
      const error = yield* Effect.flip(a.store.claim("k", "w1", "30 seconds"))
      expect(error._tag).toBe("IdempotencyError")
      expect(error.message).toContain(`nats kv del ${KvIdempotency.defaultBucket(settings.streamPrefix)}`)
      expect(error.message).toContain("retried")
    }))
  }, 20_000)

  test("an output JSON cannot encode fails complete with an IdempotencyError and keeps the claim", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const a = yield* host(settings)
      yield* a.store.claim("k", "w1", "30 seconds")
      const error = yield* Effect.flip(a.store.complete("k", "w1", { n: 1n }))
      expect(error._tag).toBe("IdempotencyError")
      expect(yield* a.store.claim("k", "w2", "30 seconds")).toMatchObject({ _tag: "Held", owner: "w1" })
    }))
  }, 20_000)
})

describe("KvIdempotency bucket", () => {
  test("opens <streamPrefix>_idempotency with the retention as its ttl and one value per key", () => {
    const settings = h.settings()
    return runLive(Effect.gen(function*() {
      const a = yield* host(settings)
      const status = yield* Effect.promise(() => a.kv.status())
      expect(status.bucket).toBe(`${settings.streamPrefix}_idempotency`)
      expect(status.ttl).toBe(86_400_000)
      expect(status.history).toBe(1)
    }))
  }, 20_000)

  test("uses the bucket it is given", () => {
    const settings = h.settings()
    const bucket = `${settings.streamPrefix}_custom`
    return h.run(Effect.gen(function*() {
      const store = yield* KvIdempotency.make({ retention: "2 hours", bucket })
      yield* store.claim("k", "w1", "30 seconds")
      const nats = yield* Nats.Nats
      const kv = yield* Effect.promise(() => nats.kvm.open(bucket))
      expect((yield* Effect.promise(() => kv.status())).ttl).toBe(7_200_000)
      expect(yield* Effect.promise(() => kv.get(KvIdempotency.kvKey("k")))).not.toBeNull()
    }))
  }, 20_000)

  test("rejects a zero, infinite or unparsable retention with an IdempotencyError that names an accepted value", () =>
    h.run(Effect.gen(function*() {
      for (const retention of ["0 millis", "Infinity", "7 dayz"] as Array<Duration.Input>) {
        const error = yield* Effect.flip(KvIdempotency.make({ retention }))
        expect(error._tag).toBe("IdempotencyError")
        expect(error.message).toContain("retention must be")
        expect(error.message).toContain("7 days")
      }
    })), 20_000)
})

describe("KvIdempotency on the TestClock (leases live in the value, not in KV ttl)", () => {
  const withTestClock = <A, E>(body: (idem: Idempotency["Service"]) => Effect.Effect<A, E>) =>
    Effect.runPromise(Idempotency.use(body).pipe(
      Effect.provide(storeLayer(), { local: true }),
      Effect.provide(TestClock.layer())
    )).then(() => {})

  test("a lease expires exactly when the clock passes it", () =>
    withTestClock((idem) =>
      Effect.gen(function*() {
        yield* idem.claim("k", "crashed", "30 seconds")
        yield* TestClock.adjust("29 seconds")
        expect((yield* idem.claim("k", "w2", "30 seconds"))._tag).toBe("Held")
        yield* TestClock.adjust("2 seconds")
        expect(yield* idem.claim("k", "w2", "30 seconds")).toEqual({ _tag: "Claimed" })
      })), 20_000)

  test("prune deletes done keys only once the retention has passed, and counts them", () =>
    withTestClock((idem) =>
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
      })), 20_000)

  test("prune also deletes claims abandoned longer than the retention", () =>
    withTestClock((idem) =>
      Effect.gen(function*() {
        yield* idem.claim("abandoned", "crashed", "1 minute")
        yield* idem.claim("live", "w", "1 minute")
        yield* TestClock.adjust("25 hours")
        yield* idem.claim("live", "w", "1 minute")
        expect(yield* idem.prune()).toBe(1)
        expect((yield* idem.claim("live", "w2", "1 minute"))._tag).toBe("Held")
      })), 20_000)
})
