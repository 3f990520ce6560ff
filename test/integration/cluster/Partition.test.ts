/**
 * A three-node cluster on a private network (one network namespace a node): the node a worker is
 * connected to loses its link in the middle of a load, the way a switch port or a host dies. No
 * TCP reset tells the worker; only its pings can. It must notice within its ping window, move to
 * a node of the majority, and every task, also those enqueued while the node is cut off, must
 * complete once (guarantees 1 and 2 on a cluster), with keys in SQLite (one host) and in NATS KV
 * (several hosts). Needs root and iproute2; skipped otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Duration, Effect, Schedule } from "effect"
import { join } from "node:path"
import type * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"
import { settingsFor, tempDir } from "../../support/harness.ts"
import { countingApp } from "../../support/cluster.ts"
import { available, type NetnsCluster, startNetnsCluster } from "../../support/netnsCluster.ts"
import { runTest, start, waitFor } from "../../support/runtimeTools.ts"

if (!available) console.warn("Partition.test.ts skipped: it needs root, iproute2 (ip netns) and nats-server on PATH")

let cluster: NetnsCluster | undefined
beforeAll(async () => {
  if (available) cluster = await startNetnsCluster()
}, 60_000)
afterAll(() => cluster?.close())

/** A worker (another actor) connected to `node` alone: its start declares its streams and opens its buckets there. */
const startOnHealed = (c: NetnsCluster, node: string, settings: MsgsysConfig.MsgsysSettings) =>
  Effect.gen(function*() {
    const rejoin = countingApp("rejoin")
    const dir = tempDir()
    const late = yield* start(rejoin.app, {
      ...settings,
      dataDir: dir,
      sqlitePath: join(dir, "msgsys.sqlite"),
      nats: { ...settings.nats, servers: [c.urls[c.names.indexOf(node)]!] }
    })
    expect(late.nats.connection.info?.server_name).toBe(node)
    expect(late.worker.actors).toEqual([rejoin.name])
  })

describe.skipIf(!available)("a three-node cluster on a network", () => {
  test.each(["sqlite", "kv"] as const)("the node a worker is connected to loses its link mid-load: the worker notices by its pings, moves to the majority, and every task, also those enqueued meanwhile, completes once (keys in %s)", async (idempotencyStore) => {
    const c = cluster!
    const { name, Work, done, app } = countingApp("partition")
    const base = settingsFor(c.urls[0]!, tempDir(), { ackWait: Duration.seconds(5), idempotencyStore })
    const settings = {
      ...base,
      nats: {
        ...base.nats,
        servers: [...c.urls],
        replicas: 3,
        reconnectWait: Duration.millis(250),
        connectTimeout: Duration.seconds(2),
        pingInterval: Duration.seconds(1)
      }
    }
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      const handles = yield* Effect.forEach(Array.from({ length: 200 }, (_, n) => n), (n) => rt.client.enqueue(Work, { n }), {
        concurrency: 16
      })
      yield* waitFor("a quarter of the tasks to finish", Effect.sync(() => done.total >= 50), "30 seconds")
      const node = rt.nats.connection.info?.server_name
      expect(c.names).toContain(node ?? "(none)")
      c.cut(node!)
      const cutAt = Date.now()
      // enqueued while the worker's node is cut off: each waits until the worker has moved
      const during = yield* Effect.forEach(Array.from({ length: 100 }, (_, n) => 200 + n), (n) => rt.client.enqueue(Work, { n }), {
        concurrency: 16
      })
      const all = [...handles, ...during]
      const outs = yield* Effect.forEach(all, (h) => rt.client.result(h, "90 seconds"), { concurrency: 32 })
      const settledAfterMs = Date.now() - cutAt
      expect(rt.nats.connection.info?.server_name).not.toBe(node)
      expect(outs.map((o) => o.n)).toEqual(all.map((_, n) => n))
      expect(done.total).toBe(300)
      expect(done.twice).toEqual([])
      // the worker moved within a few ping intervals and the cluster's failover (about 10 s here),
      // not the minutes nats.js's default ping interval takes to notice a dead server
      expect(settledAfterMs).toBeLessThan(60_000)

      c.heal(node!)
      // a worker that starts against the node just back waits for JetStream there (it says nothing,
      // or "temporarily unavailable", while it catches up) instead of failing its start: checked
      // with keys in KV, whose bucket the start opens too
      if (idempotencyStore === "kv") yield* startOnHealed(c, node!, settings)
      // the node comes back and catches up; the task stream empties once every ack is replicated
      const stored = Effect.tryPromise(() => rt.nats.manager.streams.info(rt.names.taskStream(name))).pipe(
        Effect.map((i) => i.state.messages),
        Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 10 }),
        Effect.orElseSucceed(() => -1)
      )
      yield* waitFor("the task stream to empty", Effect.map(stored, (n) => n === 0), "30 seconds")
    }))
  }, 150_000)
})
