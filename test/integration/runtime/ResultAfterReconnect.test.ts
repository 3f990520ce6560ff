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
import { tcpProxy } from "../../support/tcpProxy.ts"
import { clientRuntime } from "../chaos/support.ts"

let started: Awaited<ReturnType<typeof startServer>>
beforeAll(async () => {
  started = await startServer()
})
afterAll(() => started?.close())

test("a result stored while the waiting client was disconnected ends the wait once the client is back, not at its timeout", async () => {
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
  const base = settingsFor(server.url, tempDir())
  // the client reaches the server through a path the test cuts; the worker directly
  const proxy = tcpProxy({ host: "127.0.0.1", port: server.port })
  const clientSettings = { ...base, nats: { ...base.nats, servers: [proxy.url], reconnectWait: Duration.millis(200) } }

  await runTest(Effect.gen(function*() {
    yield* Effect.addFinalizer(() => Effect.sync(() => proxy.close()))
    const rt = yield* start(app, base)
    const client = clientRuntime(clientSettings)
    yield* Effect.addFinalizer(() => Effect.promise(() => client.dispose()))
    const events: Array<Status["type"]> = []
    const clientNats = yield* Effect.promise(() => client.runPromise(Nats.use(Effect.succeed)))
    void (async () => {
      for await (const s of clientNats.connection.status()) events.push(s.type)
    })()

    const handle = yield* Effect.promise(() => client.runPromise(Client.Client.use((c) => c.enqueue(Work, { n: 7 }))))
    yield* waitFor("the handler to start", Effect.sync(() => running), "10 seconds")
    const waitStarted = Date.now()
    const result = client.runPromise(Client.Client.use((c) => c.result(handle, "45 seconds")))
    // the wait has subscribed and read (no result yet) before the path goes
    yield* Effect.sleep("300 millis")

    proxy.cut()
    yield* waitFor("the client to see the disconnect", Effect.sync(() => events.includes("disconnect")), "10 seconds")
    release = true
    yield* waitFor("the worker to store the result", Effect.map(rt.results.get(handle.id), (r) => r._tag === "Some" && r.value.status === "succeeded"), "20 seconds")
    expect(events).not.toContain("reconnect")
    proxy.restore()

    const out = yield* Effect.promise(() => result)
    const waited = Date.now() - waitStarted
    expect(out).toEqual({ n: 7 })
    expect(events).toContain("reconnect")
    // read again on the reconnect, not at the wait's 45 s timeout
    expect(waited).toBeLessThan(30_000)
  }))
}, 90_000)
