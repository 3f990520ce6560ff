/**
 * The storage bounds from config (MSGSYS_DLQ_MAX_BYTES, MSGSYS_DLQ_MAX_AGE, MSGSYS_RESULTS_MAX_BYTES)
 * reach the dead-letter stream and the results bucket, on a new server and on an existing
 * deployment, without losing a letter.
 */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Option } from "effect"
import * as Nats from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as Topology from "../../../src/broker/Topology.ts"
import { MsgsysConfig } from "../../../src/config/MsgsysConfig.ts"
import * as ActorTopology from "../../../src/actor/ActorTopology.ts"
import { natsHarness } from "../../support/harness.ts"

const h = natsHarness()

const info = (stream: string) => Effect.flatMap(Nats.Nats, (n) => Effect.promise(() => n.manager.streams.info(stream)))

describe("storage bounds", () => {
  test("the dead-letter stream refuses when full rather than dropping, with the configured age; the results bucket is bounded", () =>
    h.run(Effect.gen(function*() {
      const config = yield* MsgsysConfig
      const names = Subjects.make(config.streamPrefix)
      const n = yield* Nats.Nats
      yield* Topology.apply(ActorTopology.shared(names, {
        ...config,
        dlqMaxBytes: Option.some(64 * 1024 ** 2),
        dlqMaxAge: Option.some(Duration.days(30)),
        resultsMaxBytes: Option.some(32 * 1024 ** 2)
      }))
      const dlq = yield* info(names.deadLetterStream)
      expect(dlq.config.discard).toBe("new")
      expect(dlq.config.max_age).toBe(30 * 86_400 * 1e9)
      // nats-server before 2.10.5 can drop the oldest message of a full discard-new stream: no byte bound there
      expect(dlq.config.max_bytes).toBe(n.atLeast("2.10.5") ? 64 * 1024 ** 2 : -1)
      expect((yield* info(`KV_${names.resultsBucket}`)).config.max_bytes).toBe(32 * 1024 ** 2)
    })))

  test("an existing dead-letter stream that dropped old letters when full is switched to refusing, its letters kept", () =>
    h.run(Effect.gen(function*() {
      const config = yield* MsgsysConfig
      const names = Subjects.make(config.streamPrefix)
      const n = yield* Nats.Nats
      // as msgsys declared it before the bounds existed
      yield* Topology.apply({
        streams: [{ name: names.deadLetterStream, subjects: [names.deadLetterSubjects], retention: "limits", description: "old" }],
        consumers: [],
        kv: []
      })
      yield* Effect.promise(() => n.jetstream.publish(`${config.streamPrefix}.dlq.etl.acme`, "letter"))
      const changes = yield* Topology.apply(ActorTopology.shared(names, config))
      expect(changes[0]).toMatchObject({ resource: `stream ${names.deadLetterStream}`, action: "updated" })
      expect(changes[0]!.fields).toContain("discard")
      const dlq = yield* info(names.deadLetterStream)
      expect(dlq.config.discard).toBe("new")
      expect(dlq.state.messages).toBe(1)
      expect((yield* Topology.apply(ActorTopology.shared(names, config))).every((c) => c.action === "unchanged")).toBe(true)
    })))
})
