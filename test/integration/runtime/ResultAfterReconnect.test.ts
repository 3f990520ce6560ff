/**
 * A client waiting on a result hears it through a core subscription, which has no replay: a
 * result stored while the client's connection was away would reach it only when its wait times
 * out. After a reconnect the client reads again what it waits on, so the wait ends once it is back.
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import type { Status } from "@nats-io/transport-node"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Client from "../../../src/client/Client.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { settingsFor, startServer, tempDir } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, runTest, start, waitFor } from "../../support/runtimeTools.ts"
import { clientRuntime } from "../chaos/support.ts"

let started: Awaited<ReturnType<typeof startServer>>
beforeAll(async () => {
  started = await startServer({ storeDir: tempDir(), keepStore: true })
})
afterAll(() => started?.close())

test("a result stored while the waiting client was reconnecting ends the wait once the client is back, not at its timeout", async () => {
  const server = started.server
  const name = actorName("rewait")
  const Work = Task.make(`${name}.work`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
  const A = Actor.make(name, { protocol: [Work], concurrency: 4, retry: Retry.none })
  let running = false
  let release = false
  const app = appOf([A, {
    [Work.subject]: ({ input }) =>
      Effect.gen(function*() {
        running = true
        while (!release) yield* Effect.sleep("20 millis")
        return { n: input.n }
      })
  }])
  const dir = tempDir()
  const base = settingsFor(server.url, dir)
  // the worker is back within a few hundred ms of the restart (JetStream answers it a few seconds
  // later); the client only after 8 s
  const workerSettings = { ...base, nats: { ...base.nats, reconnectWait: Duration.millis(100) } }
  const clientSettings = { ...base, nats: { ...base.nats, reconnectWait: Duration.seconds(8) } }

  await runTest(Effect.gen(function*() {
    const rt = yield* start(app, workerSettings)
    const client = clientRuntime(clientSettings)
    yield* Effect.addFinalizer(() => Effect.promise(() => client.dispose()))
    const events: Array<{ readonly type: Status["type"]; readonly at: number }> = []
    const clientNats = yield* Effect.promise(() => client.runPromise(Nats.use(Effect.succeed)))
    void (async () => {
      for await (const s of clientNats.connection.status()) events.push({ type: s.type, at: Date.now() })
    })()

    const handle = yield* Effect.promise(() => client.runPromise(Client.Client.use((c) => c.enqueue(Work, { n: 7 }))))
    yield* waitFor("the handler to start", Effect.sync(() => running), "10 seconds")
    const waitStarted = Date.now()
    const result = client.runPromise(Client.Client.use((c) => c.result(handle, "45 seconds")))
    // the wait has subscribed and read (no result yet) before the connection goes
    yield* Effect.sleep("300 millis")

    yield* server.restart
    release = true
    // the worker (back first) stores the result while the client is still away
    yield* waitFor("the worker to store the result", Effect.map(rt.results.get(handle.id), (r) => r._tag === "Some" && r.value.status === "succeeded"), "20 seconds")
    const storedAt = Date.now()

    const out = yield* Effect.promise(() => result)
    const waited = Date.now() - waitStarted
    expect(out).toEqual({ n: 7 })
    const reconnected = events.find((e) => e.type === "reconnect")
    // the race this test is about: the client came back after the result was stored
    expect(reconnected).toBeDefined()
    expect(reconnected!.at).toBeGreaterThan(storedAt)
    // back after about 8 s and read again at once, not at the wait's 45 s timeout
    expect(waited).toBeLessThan(30_000)
  }))
}, 90_000)
