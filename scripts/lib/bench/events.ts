/**
 * `events`: one event stream fanned out to three groups, no-op handlers.
 * - msgsys: three event groups (each a durable consumer, concurrency `--concurrency`, SQLite
 *   idempotency and audit rows on, as a worker runs them) in one worker in this process. N events
 *   are published with `publishMany` while the groups are paused (not timed); the clock runs from
 *   the resume until every group has handled every event and its consumer has nothing pending or
 *   unacknowledged.
 * - raw: the same shape in nats.js: a limits stream with three durable pull consumers, N messages
 *   published first (not timed), then one consume() (max_messages 1024) + ack per consumer, all
 *   three at once on one connection, timed until each consumer has nothing pending or
 *   unacknowledged.
 * Figures are deliveries per second: 3 x N over the time.
 */
import { AckPolicy, type JetStreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import { mkdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { Client, Event, MsgsysConfig, Retry, Subscriber } from "msgsys"
import * as Main from "../../../src/app/Main.ts"
import * as Services from "../../../src/app/Services.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as Worker from "../../../src/runtime/Worker.ts"
import type { Actor } from "msgsys"
import { within } from "./support/clock.ts"
import * as Js from "./support/jetstream.ts"
import type { Env, Runner, Sample, Section } from "./support/Section.ts"
import { perSecond } from "./support/stats.ts"
import * as Logging from "../../../src/trace/Logging.ts"

const groupCount = 3
const groupNames = ["index", "notify", "audit"] as const

const logging = Logging.logging({ logLevel: "Warn", logFormat: "pretty" })

/** Waits until every consumer of `stream` named in `consumers` has nothing pending and nothing unacknowledged. */
const settled = async (jsm: JetStreamManager, stream: string, consumers: ReadonlyArray<string>, timeoutMs: number) => {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const infos = await Promise.all(consumers.map((c) => jsm.consumers.info(stream, c)))
    if (infos.every((i) => i.num_pending === 0 && i.num_ack_pending === 0)) return
    if (performance.now() > deadline) {
      throw new Error(`events: ${infos.map((i) => `${i.name} pending ${i.num_pending}, ack pending ${i.num_ack_pending}`).join("; ")} after ${timeoutMs} ms`)
    }
    await Bun.sleep(2)
  }
}

const measureMsgsys = async (env: Env, n: number, checks: Js.Connection): Promise<Sample> => {
  const tag = env.unique("ev")
  const prefix = tag.toUpperCase()
  const domain = tag.toLowerCase()
  const dir = join(env.dir, tag)
  mkdirSync(dir, { recursive: true })
  const concurrency = env.settings.concurrency
  const settings: MsgsysConfig.MsgsysSettings = {
    ...MsgsysConfig.defaults,
    streamPrefix: prefix,
    dataDir: dir,
    sqlitePath: join(dir, "msgsys.sqlite"),
    httpPort: 0,
    logLevel: "Warn",
    // the three groups share the fast pool: room for all of them at once
    pools: MsgsysConfig.defaults.pools.map((p) => p.name === "fast" ? { ...p, concurrency: groupCount * concurrency } : p),
    nats: { ...MsgsysConfig.defaults.nats, servers: [env.url], connectAttempts: 1 }
  }
  const Happened = Event.make(`${domain}.thing.happened`, { payload: { n: Schema.Int, sentAt: Schema.Number } })
  const handled = groupNames.map(() => 0)
  let done: () => void = () => {}
  const allHandled = new Promise<void>((resolve) => (done = resolve))
  const groups = groupNames.map((name) =>
    Subscriber.make(`${domain}-${name}`, { events: [Happened], concurrency, startAt: "all", retry: Retry.none })
  )
  const handlers = Layer.mergeAll(...groups.map((g, i) =>
    g.toLayer({
      [Happened.subject]: () =>
        Effect.sync(() => {
          if (++handled[i]! === n && handled.every((h) => h >= n)) done()
        })
    } as never) as Layer.Layer<Actor.HandlersOf<string>>
  ) as unknown as [Layer.Layer<Actor.HandlersOf<string>>])
  const layer = Worker.layer({ actors: [], subscribers: groups }).pipe(
    Layer.provide(handlers),
    Layer.provideMerge(Services.layerWith(Layer.succeed(MsgsysConfig.MsgsysConfig, settings)))
  )
  const scope = await Effect.runPromise(Scope.make())
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect.pipe(Effect.provide(logging)))
  try {
    const context = await run(Layer.buildWithScope(layer, scope))
    const worker = Context.get(context, Worker.Worker)
    const client = Context.get(context, Client.Client)
    for (const g of groups) await run(worker.setPaused({ kind: "actor", name: g.name }, true))
    // a pull that began before the pause could still take what is published next: let it end
    await Bun.sleep(100)
    const published = await run(client.publishMany(Happened, Array.from({ length: n }, (_, i) => ({ n: i, sentAt: 0 }))))
    if (published.length !== n) throw new Error(`events: publishMany stored ${published.length} of ${n}`)

    const started = performance.now()
    for (const g of groups) await run(worker.setPaused({ kind: "actor", name: g.name }, false))
    await within(allHandled, Js.stallTimeout(n), () => `events stalled: the groups handled ${handled.join(", ")} of ${n}`)
    await settled(checks.jsm, Subjects.make(prefix).eventStream(domain), groups.map((g) => g.name), Js.stallTimeout(n))
    const ms = performance.now() - started
    if (handled.some((h) => h !== n)) throw new Error(`events: handler runs ${handled.join(", ")} for ${n} events per group`)
    return perSecond(groupCount * n, ms)
  } finally {
    await run(Scope.close(scope, Exit.void))
    await Js.deleteStreams(checks.jsm, `${prefix}_`, `KV_${prefix}_`)
    rmSync(dir, { recursive: true, force: true })
  }
}

const measureRaw = async (env: Env, n: number, c: Js.Connection): Promise<Sample> => {
  const tag = env.unique("rawev")
  const subject = tag.toLowerCase()
  const stream = `${tag}_EVENTS`
  const consumers = groupNames.map((g) => `${subject}-${g}`)
  await c.jsm.streams.add({ name: stream, subjects: [`${subject}.>`], retention: RetentionPolicy.Limits, storage: StorageType.File })
  try {
    for (const name of consumers) {
      await c.jsm.consumers.add(stream, {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(30_000),
        max_ack_pending: 10_000,
        filter_subject: `${subject}.>`
      })
    }
    await Js.windowed(n, env.settings.inFlight, (i) => c.js.publish(`${subject}.thing.happened`, Js.body(i)))
    const started = performance.now()
    await Promise.all(consumers.map(async (name) => {
      const consumer = await c.js.consumers.get(stream, name)
      const messages = await consumer.consume({ max_messages: 1024 })
      let received = 0
      for await (const m of messages) {
        JSON.parse(m.string())
        m.ack()
        if (++received === n) break
      }
      await messages.close()
    }))
    await settled(c.jsm, stream, consumers, Js.stallTimeout(n))
    return perSecond(groupCount * n, performance.now() - started)
  } finally {
    await Js.deleteStreams(c.jsm, stream)
  }
}

export const section: Section = {
  name: "events",
  title: `events fanned out to ${groupCount} groups`,
  figures: (s) => [
    { key: "msgsys", label: `msgsys, ${groupCount} groups, concurrency ${s.concurrency} each, audit + idempotency`, unit: "deliveries/s" },
    { key: "raw", label: `raw nats.js, ${groupCount} durable consumers, consume + ack`, unit: "deliveries/s" }
  ],
  setup: async (env): Promise<Runner> => {
    const c = await Js.connect(env.url)
    if (env.settings.warmup > 0) {
      await measureMsgsys(env, env.settings.warmup, c)
      await measureRaw(env, env.settings.warmup, c)
    }
    return {
      run: async () => ({
        msgsys: await measureMsgsys(env, env.settings.tasks, c),
        raw: await measureRaw(env, env.settings.tasks, c)
      }),
      close: () => c.nc.drain()
    }
  }
}
