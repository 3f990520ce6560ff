/**
 * A three-node cluster with MSGSYS_NATS_REPLICAS=3: every stream and bucket msgsys declares keeps
 * three copies, and when the node leading the actor's task stream is SIGKILLed in the middle of a
 * load and comes back, every task still completes once (guarantees 1 and 2 on a cluster).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Duration, Effect, Schedule, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { type Cluster, startCluster } from "../../support/cluster.ts"
import { settingsFor, tempDir } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, runTest, Runs, start, waitFor } from "../../support/runtimeTools.ts"

let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster()
}, 60_000)
afterAll(() => cluster?.close())

describe("a three-node cluster", () => {
  test("with three replicas, the leader of the task stream killed mid-load: every task, also those enqueued while it is down, completes once, and the streams and buckets keep three copies", async () => {
    const name = actorName("replicated")
    const Work = Task.make(`${name}.work`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
    const A = Actor.make(name, { protocol: [Work], concurrency: 16, retry: Retry.exponential({ base: "100 millis", maxAttempts: 5 }) })
    const done = new Runs()
    const app = appOf([A, {
      [Work.subject]: ({ input, taskId }) =>
        Effect.sleep("20 millis").pipe(Effect.andThen(Effect.sync(() => done.add(taskId))), Effect.as({ n: input.n }))
    }])
    const base = settingsFor(cluster.urls[0]!, tempDir(), { ackWait: Duration.seconds(3) })
    const settings = {
      ...base,
      nats: { ...base.nats, servers: [...cluster.urls], replicas: 3, reconnectWait: Duration.millis(250) }
    }
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      // a JetStream API request can time out on a loaded cluster: ask again a few times
      const info = (stream: string) =>
        Effect.tryPromise(() => rt.nats.manager.streams.info(stream)).pipe(
          Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 10 }),
          Effect.orDie
        )

      // three copies of what msgsys declared: the task stream, dead letters, the results bucket
      for (const stream of [rt.names.taskStream(name), rt.names.deadLetterStream, `KV_${rt.names.resultsBucket}`]) {
        expect({ stream, replicas: (yield* info(stream)).config.num_replicas }).toEqual({ stream, replicas: 3 })
      }

      const handles = yield* Effect.forEach(Array.from({ length: 200 }, (_, n) => n), (n) => rt.client.enqueue(Work, { n }), {
        concurrency: 16
      })
      yield* waitFor("a quarter of the tasks to finish", Effect.sync(() => done.total >= 50), "30 seconds")
      const leader = (yield* info(rt.names.taskStream(name))).cluster?.leader
      const node = cluster.nodes[cluster.names.indexOf(leader ?? "")]
      expect(node).toBeDefined()
      yield* node!.kill
      // enqueued while the stream has no leader: each waits for the next one
      const during = yield* Effect.forEach(Array.from({ length: 100 }, (_, n) => 200 + n), (n) => rt.client.enqueue(Work, { n }), {
        concurrency: 16
      })
      yield* node!.start
      const all = [...handles, ...during]

      const outs = yield* Effect.forEach(all, (h) => rt.client.result(h, "60 seconds"), { concurrency: 32 })
      expect(outs.map((o) => o.n)).toEqual(all.map((_, n) => n))
      expect(done.total).toBe(300)
      expect(done.twice).toEqual([])
      // a stream's info can time out while a node that came back catches up: ask again
      const stored = Effect.tryPromise(() => rt.nats.manager.streams.info(rt.names.taskStream(name))).pipe(
        Effect.map((i) => i.state.messages),
        Effect.orElseSucceed(() => -1)
      )
      yield* waitFor("the task stream to empty", Effect.map(stored, (n) => n === 0), "30 seconds")
    }))
  }, 120_000)
})
