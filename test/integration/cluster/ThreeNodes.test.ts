/**
 * A three-node cluster with MSGSYS_NATS_REPLICAS=3: every stream and bucket msgsys declares keeps
 * three copies, and when the node leading the actor's task stream is SIGKILLed in the middle of a
 * load and comes back, every task still completes once (guarantees 1 and 2 on a cluster): in one
 * process with keys in SQLite, and in two worker processes as on two hosts, keys in NATS KV.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { join } from "node:path"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as Client from "../../../src/client/Client.ts"
import { define } from "../../fixtures/chaosApp.ts"
import { clientRuntime, finalRecords, killAll, notSucceeded, readLog, ready, spawnWorker, tally, waitFor as waitUntil } from "../chaos/support.ts"
import { Duration, Effect, Schedule } from "effect"
import { type Cluster, countingApp, startCluster, waitForJetStream } from "../../support/cluster.ts"
import { settingsFor, tempDir } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { runTest, start, waitFor } from "../../support/runtimeTools.ts"

let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster()
}, 60_000)
afterAll(() => cluster?.close())
afterEach(async () => {
  await killAll()
  // a node the test restarted is whole again (it can hold a copy of a new stream) before the next test
  await waitForJetStream(cluster.urls)
}, 60_000)

/** The server name of the node leading `stream`, asked again while the cluster is too busy to say. */
const leaderOf = async (stream: string): Promise<string | undefined> => {
  const nc = await connect({ servers: [...cluster.urls] })
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false })
    for (let i = 0; ; i++) {
      try {
        return (await jsm.streams.info(stream)).cluster?.leader
      } catch (e) {
        if (i === 10) throw e
        await Bun.sleep(200)
      }
    }
  } finally {
    await nc.close()
  }
}

describe("a three-node cluster", () => {
  test("with three replicas, the leader of the task stream killed mid-load: every task, also those enqueued while it is down, completes once, and the streams and buckets keep three copies", async () => {
    const { name, Work, done, app } = countingApp("replicated")
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

  test("two worker processes with keys in NATS KV, as on two hosts: the leader of the task stream killed mid-load, every task completes once", async () => {
    const actor = actorName("hosts")
    const { Sleep } = define(actor)
    const shared = tempDir()
    const log = join(shared, "chaos.log")
    const host = (label: string, servers: ReadonlyArray<string>) => {
      const dir = tempDir()
      // ack_wait well above what a loaded cluster takes to move a stream's leader (seconds)
      const base = settingsFor(servers[0]!, dir, { ackWait: Duration.seconds(10) })
      return spawnWorker({
        label,
        actor,
        log,
        settings: { ...base, streamPrefix: prefix, nats: { ...base.nats, servers: [...servers] } },
        env: {
          MSGSYS_IDEMPOTENCY_STORE: "kv",
          MSGSYS_NATS_REPLICAS: "3",
          MSGSYS_NATS_RECONNECT_WAIT: "250ms",
          CHAOS_CONCURRENCY: "8"
        }
      })
    }
    const prefix = settingsFor(cluster.urls[0]!, shared).streamPrefix
    // each host starts from another node
    const workers = [host("h1", cluster.urls), host("h2", [...cluster.urls].reverse())]
    await Promise.all(workers.map((w) => ready(w, 40_000)))

    const clientSettings = settingsFor(cluster.urls[0]!, shared, { streamPrefix: prefix })
    const rt = clientRuntime({ ...clientSettings, nats: { ...clientSettings.nats, servers: [...cluster.urls], replicas: 3 } })
    try {
      const ids = Array.from({ length: 200 }, (_, i) => `h-${i}`)
      const handles = await rt.runPromise(Effect.forEach(ids, (id) =>
        Client.Client.use((c) => c.enqueue(Sleep, { id, ms: 20 })), { concurrency: 16 }))
      await waitUntil("a quarter of the tasks to finish", () => readLog(log).filter((l) => l.kind === "done").length >= 50, 30_000, 10)
      const leader = await leaderOf(Subjects.make(prefix).taskStream(actor))
      const node = cluster.nodes[cluster.names.indexOf(leader ?? "")]
      expect(node).toBeDefined()
      await Effect.runPromise(node!.kill)
      await Bun.sleep(1000)
      await Effect.runPromise(node!.start)

      const records = await finalRecords(rt, handles.map((h) => h.id), 60_000)
      expect(notSucceeded(records, handles.map((h) => h.id))).toEqual([])
      const t = tally(log, ids)
      // what the workers said, for a failure to be read from CI's output
      if (t.twice.length + t.lost.length > 0) for (const w of workers) console.error(`--- ${w.label}\n${w.output()}`)
      expect(t.lost).toEqual([])
      expect(t.twice).toEqual([])
      for (const w of workers) expect(w.alive()).toBe(true)
    } finally {
      await rt.dispose()
    }
  }, 120_000)
})
