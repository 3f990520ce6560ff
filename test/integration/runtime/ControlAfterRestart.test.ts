/**
 * Control after a broker restart: pausing, resuming and cancelling reach a worker through KV
 * watches (the control bucket, cancel requests), which must outlive the restart: what is asked
 * after the broker came back still reaches the worker. (nats.js's watch resumes by itself here;
 * `KvWatch` reopens one that ends.)
 */
import { expect, test } from "bun:test"
import { Duration, Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, Runs, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

test("after a broker restart, a pause, a resume and a cancel asked of the control buckets still reach the worker", async () => {
  const name = actorName("ctlrestart")
  const Nap = Task.make(`${name}.nap`, { input: { ms: Schema.Number }, output: { ok: Schema.Boolean } })
  const A = Actor.make(name, { protocol: [Nap], concurrency: 4, retry: Retry.none })
  const runs = new Runs()
  const app = appOf([A, {
    [Nap.subject]: ({ input, taskId }) => Effect.sync(() => runs.add(taskId)).pipe(Effect.andThen(Effect.sleep(Duration.millis(input.ms))), Effect.as({ ok: true }))
  }])
  const s = h.settings({ ackWait: Duration.seconds(3), shutdownGrace: Duration.seconds(2) })
  const base = { ...s, nats: { ...s.nats, reconnectWait: Duration.millis(200) } }
  await runTest(Effect.gen(function*() {
    const rt = yield* start(app, base)
    expect(yield* rt.client.result(yield* rt.client.enqueue(Nap, { ms: 1 }), "10 seconds")).toEqual({ ok: true })

    let reconnects = 0
    yield* rt.nats.onReconnect(() => reconnects++)
    const pid = h.server.pid()
    yield* Effect.promise(() => Effect.runPromise(h.server.restart))
    expect(h.server.pid()).not.toBe(pid)
    yield* waitFor("the worker to reconnect", Effect.sync(() => reconnects >= 1), "20 seconds", "50 millis")
    // a task before the pause shows the worker takes work again
    expect(yield* rt.client.result(yield* rt.client.enqueue(Nap, { ms: 1 }), "20 seconds")).toEqual({ ok: true })

    yield* rt.control.pause({ kind: "actor", name })
    yield* waitFor("the pause to reach the worker", Effect.map(rt.worker.state, (st) => st[0]!.paused), "10 seconds", "50 millis")
    const held = yield* rt.client.enqueue(Nap, { ms: 1 })
    yield* Effect.sleep("1 second")
    expect(runs.count(held.id)).toBe(0)
    yield* rt.control.resume({ kind: "actor", name })
    expect(yield* rt.client.result(held, "10 seconds")).toEqual({ ok: true })

    const long = yield* rt.client.enqueue(Nap, { ms: 60_000 })
    yield* waitFor("the long task to run", Effect.sync(() => runs.count(long.id) === 1), "10 seconds", "50 millis")
    yield* rt.client.cancel(long.id)
    expect((yield* rt.client.wait(long.id, "10 seconds")).status).toBe("cancelled")
  }))
}, 90_000)
