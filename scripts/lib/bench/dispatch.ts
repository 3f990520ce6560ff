/**
 * `dispatch`: microseconds per message of decode + route + claim + handler call + settle + ack,
 * in-process, with no broker: the in-memory broker of `msgsys/testing` feeds the actor's real
 * dispatcher, and the ledger and results live in memory. The tasks are enqueued while the actor is
 * paused (not timed); the clock runs from resume until every task is acked.
 */
import { Effect, Exit, Layer, Schema, Scope } from "effect"
import { Actor, Client, Retry, Task } from "msgsys"
import * as Memory from "../../../src/testing/MemoryBroker.ts"
import { MemoryBroker } from "../../../src/testing/MemoryBroker.ts"
import type { Env, Runner, Section } from "./support/Section.ts"

export const section: Section = {
  name: "dispatch",
  title: "msgsys dispatch in-process",
  figures: () => [{ key: "perMessage", label: "decode + route + claim + handler + settle + ack", unit: "µs/msg", digits: 2 }],
  setup: async (env: Env): Promise<Runner> => {
    const n = env.settings.quick ? 2_000 : Math.max(env.settings.tasks, 20_000)
    const measure = async (count: number) => {
      const name = env.unique("disp").toLowerCase()
      const Echo = Task.make(`${name}.echo`, { input: { n: Schema.Int }, output: { n: Schema.Int }, result: false })
      const A = Actor.make(name, { protocol: [Echo], concurrency: env.settings.concurrency, retry: Retry.none })
      let done = 0
      let finished: () => void = () => {}
      const allDone = new Promise<void>((resolve) => (finished = resolve))
      const handlers = A.toLayer({
        [Echo.subject]: ({ input }: { input: { n: number } }) =>
          Effect.sync(() => {
            if (++done === count) finished()
            return { n: input.n }
          })
      } as never)
      const scope = Effect.runSync(Scope.make())
      const layer = Memory.layer([A]).pipe(Layer.provide(handlers)) as Layer.Layer<Client.Client | MemoryBroker>
      const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
      const run = <A, E>(e: Effect.Effect<A, E, Client.Client | MemoryBroker>) => Effect.runPromise(Effect.provide(e, context))
      await run(Effect.gen(function*() {
        const broker = yield* MemoryBroker
        const c = yield* Client.Client
        yield* broker.setPaused(name, true)
        yield* c.enqueueMany(Echo, Array.from({ length: count }, (_, i) => ({ n: i })))
      }))
      const started = performance.now()
      await run(Effect.flatMap(MemoryBroker, (b) => b.setPaused(name, false)))
      await allDone
      // until the last message is acked, not only handled
      await run(Effect.gen(function*() {
        const broker = yield* MemoryBroker
        while ((yield* broker.pending(name)) > 0) yield* Effect.yieldNow
      }))
      const micros = ((performance.now() - started) * 1000) / count
      await Effect.runPromise(Scope.close(scope, Exit.void))
      return micros
    }
    // one untimed round warms the JIT
    await measure(Math.min(n, 2_000))
    return { run: async () => ({ perMessage: await measure(n) }), close: async () => {} }
  }
}
