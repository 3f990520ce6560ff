/**
 * The behaviour every PipelineStore must have, as a reusable bun:test suite (memory here, the KV
 * bucket in test/integration/pipeline): records are created once, and a gather's outputs are
 * joined so that the set of all of them is seen complete whatever the order and concurrency.
 */
import { describe, expect, test } from "bun:test"
import { Effect, type Layer, Option, type Schema } from "effect"
import { PipelineStore } from "../../../src/pipeline/PipelineStore.ts"

export const storeConformance = (name: string, makeLayer: () => Layer.Layer<PipelineStore, unknown>) => {
  let n = 0
  const id = () => `P${process.pid}x${++n}${Math.random().toString(36).slice(2, 6)}`
  const it = <A, E>(title: string, body: (store: PipelineStore["Service"]) => Effect.Effect<A, E>, timeout = 15_000) =>
    test(title, () => Effect.runPromise(PipelineStore.use(body).pipe(Effect.provide(makeLayer(), { local: true }))).then(() => {}), timeout)

  describe(`PipelineStore conformance: ${name}`, () => {
    it("a record is created once; a second create with its id is refused and the first stays", (store) =>
      Effect.gen(function*() {
        const p = id()
        const record = { id: p, tenant: "default", plan: ["p.a", ["p.b", "p.c"]], createdAt: 1 }
        expect(yield* store.create(record)).toBe(true)
        expect(yield* store.create({ ...record, plan: ["p.z"] })).toBe(false)
        expect(yield* store.get(p)).toEqual(Option.some(record))
        expect(yield* store.get(id())).toEqual(Option.none())
      }))

    it("a join is complete once every task's output is in, in task order, for every later call too; the first output of a task is kept", (store) =>
      Effect.gen(function*() {
        const p = id()
        expect(yield* store.join(p, 2, 3, 3, { c: 3 })).toEqual(Option.none())
        expect(yield* store.join(p, 2, 1, 3, { a: 1 })).toEqual(Option.none())
        // the same task again (a redelivery) with another value: the first stays
        expect(yield* store.join(p, 2, 1, 3, { a: "again" })).toEqual(Option.none())
        const all: ReadonlyArray<Schema.Json> = [{ a: 1 }, { b: 2 }, { c: 3 }]
        expect(yield* store.join(p, 2, 2, 3, { b: 2 })).toEqual(Option.some(all))
        expect(yield* store.join(p, 2, 3, 3, { c: "again" })).toEqual(Option.some(all))
        // another step of the same pipeline is another join
        expect(yield* store.join(p, 3, 1, 2, null)).toEqual(Option.none())
      }))

    it("tasks joining at the same moment: the set is seen complete, with every output", (store) =>
      Effect.gen(function*() {
        const p = id()
        const count = 12
        const answers = yield* Effect.forEach(
          Array.from({ length: count }, (_, i) => i + 1),
          (child) => store.join(p, 1, child, count, { child }),
          { concurrency: "unbounded" }
        )
        const complete = answers.filter(Option.isSome)
        expect(complete.length).toBeGreaterThanOrEqual(1)
        const all: ReadonlyArray<Schema.Json> = Array.from({ length: count }, (_, i) => ({ child: i + 1 }))
        for (const c of complete) expect(c.value).toEqual(all)
        expect(yield* store.join(p, 1, 1, count, { child: 1 })).toEqual(Option.some(all))
      }))
  })
}
