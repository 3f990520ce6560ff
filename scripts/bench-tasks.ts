/**
 * Task throughput, measured against a baseline in the same run (the machines are noisy).
 *
 *   bun scripts/bench-tasks.ts [--tasks 3000] [--concurrency 64]
 *
 * Runs on its own embedded nats-server and temp SQLite file:
 *   baseline   raw nats.js: publish N messages with JetStream acks, then pull and ack them
 *              (no envelope, no schema, no status, no audit): the floor of what JetStream costs
 *   msgsys     N typed tasks through the full runtime (envelope, decode, idempotency claim and
 *              outcome, status in KV, group-committed audit, ack), audit in SQLite
 *   no-audit   the same with the audit log off (AuditLog.layerNoop): the cost of audit
 * Prints tasks/s for each and the ratios. Nothing here is asserted; tests never time things.
 */
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Actor from "../src/actor/Actor.ts"
import * as AuditLog from "../src/audit/AuditLog.ts"
import * as EmbeddedNats from "../src/broker/EmbeddedNats.ts"
import * as MsgsysConfig from "../src/config/MsgsysConfig.ts"
import * as Retry from "../src/retry/Retry.ts"
import * as Services from "../src/runtime/Services.ts"
import * as Worker from "../src/runtime/Worker.ts"
import * as Client from "../src/task/Client.ts"
import * as Task from "../src/task/Task.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const N = arg("tasks", 3000)
const CONCURRENCY = arg("concurrency", 64)

// one actor per run: two runs on one server must not share subjects
const benchActor = (name: string) => {
  const Echo = Task.make(`${name}.echo`, { input: { n: Schema.Int }, output: { n: Schema.Int } })
  const Bench = Actor.make(name, { protocol: [Echo], concurrency: CONCURRENCY, retry: Retry.none })
  const BenchLive = Bench.toLayer({
    [`${name}.echo`]: ({ input }: { input: { n: number } }) => Effect.succeed({ n: input.n })
  } as never)
  return { Echo, Bench, BenchLive }
}

const baseline = async (url: string) => {
  const nc = await connect({ servers: url })
  const jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: "BASELINE", subjects: ["baseline.>"], retention: RetentionPolicy.Workqueue })
  await jsm.consumers.add("BASELINE", { durable_name: "b", ack_policy: AckPolicy.Explicit })
  const js = jetstream(nc)
  const started = performance.now()
  const body = JSON.stringify({ n: 1 })
  for (let i = 0; i < N; i += CONCURRENCY) {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, N - i) }, () => js.publish("baseline.echo", body)))
  }
  const consumer = await js.consumers.get("BASELINE", "b")
  let done = 0
  const messages = await consumer.consume({ max_messages: CONCURRENCY })
  for await (const m of messages) {
    JSON.parse(m.string())
    m.ack()
    if (++done === N) break
  }
  const ms = performance.now() - started
  await nc.drain()
  return ms
}

const runtime = (url: string, dir: string, prefix: string, audit: boolean) =>
  Effect.gen(function*() {
    const { Bench, BenchLive, Echo } = benchActor(prefix.toLowerCase())
    const settings = yield* MsgsysConfig.make({
      nats: { servers: [url] },
      streamPrefix: prefix,
      sqlitePath: join(dir, `${prefix}.sqlite`),
      pools: [{ name: "fast", concurrency: CONCURRENCY }],
      logLevel: "Warn"
    } as never)
    const config = Layer.succeed(MsgsysConfig.MsgsysConfig, settings)
    const services = audit
      ? Services.layerWith(config)
      : Client.layer.pipe(
        Layer.provideMerge(Layer.mergeAll(AuditLog.layerNoop, Services.idempotency)),
        Layer.provideMerge(Services.database),
        Layer.provideMerge(Services.broker),
        Layer.provideMerge(config)
      )
    const layer = Worker.layer({ actors: [Bench] }).pipe(Layer.provide(BenchLive), Layer.provideMerge(services))
    const scope = yield* Scope.make()
    const ctx = yield* Layer.buildWithScope(layer, scope)
    const client = Context.get(ctx, Client.Client)
    const started = performance.now()
    const handles = yield* Effect.forEach(
      Array.from({ length: N }, (_, n) => n),
      (n) => client.enqueue(Echo, { n }),
      { concurrency: CONCURRENCY }
    )
    const enqueued = performance.now()
    yield* Effect.forEach(handles, (h) => client.result(h, "120 seconds"), { concurrency: CONCURRENCY, discard: true })
    if (process.env.BENCH_DEBUG) console.log(`enqueue ${Math.round(enqueued - started)} ms, results ${Math.round(performance.now() - enqueued)} ms`)
    const ms = performance.now() - started
    yield* Scope.close(scope, Exit.void)
    return ms
  })

const main = Effect.gen(function*() {
  const dir = mkdtempSync(join(tmpdir(), "msgsys-bench-"))
  const server = yield* EmbeddedNats.make()
  const rate = (ms: number) => Math.round(N / (ms / 1000))
  const base = yield* Effect.promise(() => baseline(server.url))
  const full = yield* runtime(server.url, dir, "BENCHA", true)
  const noAudit = yield* runtime(server.url, dir, "BENCHB", false)
  rmSync(dir, { recursive: true, force: true })
  console.log(`tasks: ${N}, concurrency: ${CONCURRENCY}, bun ${Bun.version}`)
  console.log(`baseline (raw JetStream publish + pull + ack): ${rate(base)} msgs/s`)
  console.log(`msgsys, audit in SQLite:                      ${rate(full)} tasks/s  (${(base / full).toFixed(2)}x baseline)`)
  console.log(`msgsys, audit off:                            ${rate(noAudit)} tasks/s  (${(base / noAudit).toFixed(2)}x baseline)`)
  console.log(`cost of audit: ${(((full - noAudit) / noAudit) * 100).toFixed(1)}% more time with audit on`)
})

Effect.runPromise(Effect.scoped(main)).catch((e) => {
  console.error(e)
  process.exit(1)
})
