/**
 * `memory`: resident memory (VmRSS from /proc/<pid>/status) of a worker process holding
 * `--memory-tasks` (10,000) slow tasks in flight, beside a raw nats.js consumer process holding as
 * many unacked messages. msgsys: actor concurrency 10,000 in a pool sized for it; each handler
 * waits until the parent says "release". The idle RSS (connected, nothing in flight) is reported
 * too, to tell the runtime's fixed cost from its cost per task. The tasks are enqueued by this
 * process; RSS is the largest of three samples 200 ms apart once all are in flight.
 */
import { rmSync } from "node:fs"
import { join } from "node:path"
import { enqueueBatch } from "./enqueue.ts"
import * as Children from "./support/children.ts"
import * as Js from "./support/jetstream.ts"
import * as Runtime from "./support/runtime.ts"
import { settledRssMiB } from "./support/rss.ts"
import type { Env, Runner, Section } from "./support/Section.ts"

type Side = "raw" | "msgsys"

const runSide = async (env: Env, c: Js.Connection, side: Side) => {
  const total = env.settings.memoryTasks
  const tag = env.unique(side === "raw" ? "mraw" : "mmsg")
  const prefix = tag.toUpperCase()
  const actor = tag.toLowerCase()
  const dir = join(env.dir, tag)
  const timeout = Js.stallTimeout(total)
  let child: Children.Child | undefined
  let client: Runtime.Runtime | undefined
  try {
    let fill: () => Promise<unknown>
    if (side === "raw") {
      const stream = `${prefix}_TASKS`
      await Js.createWorkQueue(c.jsm, stream, actor, total * 2)
      child = Children.spawn("raw-consumer", { url: env.url, stream, mode: "hold", total, warmup: 0 })
      fill = () => Js.windowed(total, env.settings.inFlight, (i) => c.js.publish(`${actor}.echo`, Js.body(i)))
    } else {
      const common = { url: env.url, dir, prefix, actor }
      child = Children.spawn("msgsys-worker", { ...common, concurrency: total, mode: "hold", total, warmup: 0 })
      fill = async () => {
        client = await Runtime.make({ ...common, concurrency: 1, audit: true, results: true })
        await enqueueBatch(client, total)
      }
    }
    await child.next("ready", 30_000)
    await Bun.sleep(300)
    const idle = await settledRssMiB(child.pid)
    await fill()
    await child.next("holding", timeout)
    const held = await settledRssMiB(child.pid)
    child.send({ type: "release" })
    if (side === "raw") await child.next("released", 30_000)
    return { idle, held }
  } finally {
    await child?.stop(timeout)
    if (client) await client.close()
    await Js.deleteStreams(c.jsm, `${prefix}_`, `KV_${prefix}_`)
    rmSync(dir, { recursive: true, force: true })
  }
}

export const section: Section = {
  name: "memory",
  title: "worker RSS with slow tasks in flight",
  figures: (s) => [
    { key: "rawRss", label: `raw consumer, ${s.memoryTasks} unacked`, unit: "MiB", digits: 1 },
    { key: "msgsysRss", label: `msgsys worker, ${s.memoryTasks} in flight`, unit: "MiB", digits: 1 },
    { key: "rawIdleRss", label: "raw consumer, idle", unit: "MiB", digits: 1 },
    { key: "msgsysIdleRss", label: "msgsys worker, idle", unit: "MiB", digits: 1 }
  ],
  setup: async (env): Promise<Runner> => {
    const c = await Js.connect(env.url)
    return {
      run: async () => {
        const raw = await runSide(env, c, "raw")
        const msgsys = await runSide(env, c, "msgsys")
        return { rawRss: raw.held, msgsysRss: msgsys.held, rawIdleRss: raw.idle, msgsysIdleRss: msgsys.idle }
      },
      close: () => c.nc.drain()
    }
  }
}
