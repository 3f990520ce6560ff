/**
 * The worker registry against a real nats-server: a running worker is listed with what it runs,
 * its entry goes when it shuts down gracefully, and an entry whose heartbeats stopped (a crashed
 * worker) is not listed as alive.
 */
import { describe, expect, test } from "bun:test"
import { Clock, Effect, Exit, Schema, Scope } from "effect"
import { hostname } from "node:os"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Nats from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as WorkerRegistry from "../../../src/registry/WorkerRegistry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, runTest, start } from "../../support/runtimeTools.ts"

const h = natsHarness()

const setup = () => {
  const name = actorName("reg")
  const Work = Task.make(`${name}.work`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
  const A = Actor.make(name, { protocol: [Work], pool: "slow", concurrency: 3 })
  return { name, app: appOf([A, { [Work.subject]: ({ input }) => Effect.succeed(input) }]) }
}

describe("the worker registry", () => {
  test("lists a running worker with host, pid, version, actors and pools, and drops it when it shuts down gracefully", async () => {
    const { name, app } = setup()
    const settings = h.settings()
    const names = Subjects.make(settings.streamPrefix)
    await runTest(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const rt = yield* start(app, settings).pipe(Scope.provide(scope))
      const list = WorkerRegistry.list(names).pipe(Effect.provideService(Nats.Nats, rt.nats))
      const [entry, ...others] = yield* list
      expect(others).toEqual([])
      expect(entry).toMatchObject({
        id: rt.worker.id,
        host: hostname(),
        pid: process.pid,
        version: "0.1.0",
        actors: [{ name, pool: "slow", concurrency: 3, inFlight: 0, paused: false, consuming: true }],
        pools: [{ name: "slow", size: 4, inFlight: 0 }],
        inFlight: 0,
        since: rt.worker.startedAt
      })
      yield* Scope.close(scope, Exit.void)
      // the connection is drained with the runtime: read with a fresh one
      const after = yield* WorkerRegistry.list(names).pipe(
        Effect.provide(Nats.layerFrom({ ...settings.nats })),
        Effect.scoped
      )
      expect(after).toEqual([])
    }))
  }, 30_000)

  test("an entry whose heartbeats stopped longer ago than staleAfter is not alive", () =>
    h.run(Effect.gen(function*() {
      const nats = yield* Nats.Nats
      const names = Subjects.make(`REG${process.pid}`)
      const kv = yield* Effect.promise(() => nats.kvm.create(names.workersBucket, { history: 1 }))
      const now = yield* Clock.currentTimeMillis
      const entry = (id: string, heartbeatAt: number): WorkerRegistry.Announcement => ({
        id, host: "h", pid: 1, version: "0.1.0", actors: [], pools: [], inFlight: 0, since: now - 60_000, heartbeatAt
      })
      yield* Effect.promise(() => kv.put("crashed", JSON.stringify(entry("crashed", now - 16_000))))
      yield* Effect.promise(() => kv.put("alive", JSON.stringify(entry("alive", now - 1_000))))
      yield* Effect.promise(() => kv.put("garbage", "{not json"))
      expect((yield* WorkerRegistry.list(names)).map((w) => w.id)).toEqual(["alive"])
    })))
})
