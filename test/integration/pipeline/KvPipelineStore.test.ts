/**
 * The pipelines KV bucket against a real nats-server: the store conformance suite (its joins are
 * compare-and-set on 2.9), and a join too large for a stored value, refused with its size.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Layer } from "effect"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import { MsgsysConfig } from "../../../src/config/MsgsysConfig.ts"
import * as KvPipelineStore from "../../../src/pipeline/KvPipelineStore.ts"
import { PipelineStore } from "../../../src/pipeline/PipelineStore.ts"
import { natsHarness } from "../../support/harness.ts"
import { storeConformance } from "../../unit/pipeline/storeConformance.ts"

const h = natsHarness()

storeConformance("NATS KV", () => KvPipelineStore.layer.pipe(Layer.provideMerge(h.layer(h.settings()))))

describe("the pipelines bucket", () => {
  test("a gather's outputs too large to store together are refused, naming the size and the fix", () =>
    h.run(Effect.gen(function*() {
      const store = yield* PipelineStore
      const big = "x".repeat(600 * 1024)
      yield* store.join("big", 2, 1, 2, big)
      const refused = yield* Effect.flip(store.join("big", 2, 2, 2, big))
      expect(refused._tag).toBe("GatherTooLarge")
      expect(refused.message).toMatch(/gather step 2 take \d+ bytes together, over the \d+ .*references to their data/)
    }).pipe(Effect.provide(KvPipelineStore.layer))), 30_000)

  test("the bucket keeps entries as long as task results (its TTL is MSGSYS_RESULT_TTL)", () =>
    h.run(Effect.gen(function*() {
      const store = yield* PipelineStore
      yield* store.create({ id: "ttl", tenant: "default", plan: ["p.a"], createdAt: 1 })
      const nats = yield* Nats
      const config = yield* MsgsysConfig
      const bucket = Subjects.make(config.streamPrefix).pipelinesBucket
      const info = yield* Effect.promise(() => nats.manager.streams.info(`KV_${bucket}`))
      expect(info.config.max_age).toBe(Duration.toMillis(config.resultTtl) * 1e6)
    }).pipe(Effect.provide(KvPipelineStore.layer))), 30_000)
})
