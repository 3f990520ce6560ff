/**
 * `latency`: enqueue -> handler start at a steady rate (1,000/s) for ~10 s, producer and worker in
 * separate processes, the send time carried in the payload (a clock all processes share, see
 * support/clock.ts). msgsys: a client process enqueues, a worker process runs the handler (audit,
 * idempotency and results on; one SQLite file for both, as on one host, unless --separate-sqlite).
 * Raw: a js.publish process and a consume() process, in the same shape. The sender keeps its
 * schedule whatever the receiver does (open loop). The first second (--latency-rate messages)
 * warms both sides up and is not counted. Also reported: the receiving process's largest RSS while
 * the run lasted, and the rate the sender achieved (below the asked rate, the figure is void).
 */
import { rmSync } from "node:fs"
import { join } from "node:path"
import * as Children from "./support/children.ts"
import * as Js from "./support/jetstream.ts"
import type { Paced } from "./support/pace.ts"
import { rssMiB } from "./support/rss.ts"
import type { Env, Runner, Section } from "./support/Section.ts"
import { latencySummary } from "./support/stats.ts"

type Side = "raw" | "msgsys"

/** Samples the RSS of `pid` every 500 ms until stopped; returns the largest seen. */
const watchRss = (pid: number) => {
  let largest = 0
  const sample = () => {
    try {
      largest = Math.max(largest, rssMiB(pid))
    } catch {
      // exited between two samples: keep what was seen
    }
  }
  sample()
  const timer = setInterval(sample, 500)
  return () => {
    clearInterval(timer)
    sample()
    return largest
  }
}

const runSide = async (env: Env, c: Js.Connection, side: Side) => {
  const { latencyRate: rate, latencySeconds: seconds, latencyWarmup: warmup } = env.settings
  const total = warmup + rate * seconds
  const timeout = Math.ceil(total / rate) * 1000 + 60_000
  const tag = env.unique(side === "raw" ? "lraw" : "lmsg")
  const prefix = tag.toUpperCase()
  const actor = tag.toLowerCase()
  const dir = join(env.dir, tag)
  const children: Array<Children.Child> = []
  try {
    let receiver: Children.Child
    let sender: Children.Child
    if (side === "raw") {
      const stream = `${prefix}_TASKS`
      await Js.createWorkQueue(c.jsm, stream, actor)
      receiver = Children.spawn("raw-consumer", { url: env.url, stream, mode: "latency", total, warmup })
      children.push(receiver)
      await receiver.next("ready", 30_000)
      sender = Children.spawn("raw-publisher", { url: env.url, subject: `${actor}.echo`, rate, total })
    } else {
      const common = { url: env.url, dir, prefix, actor }
      receiver = Children.spawn("msgsys-worker", { ...common, concurrency: env.settings.concurrency, mode: "latency", total, warmup })
      children.push(receiver)
      await receiver.next("ready", 30_000)
      const producerDir = env.settings.separateSqlite ? join(dir, "producer") : dir
      sender = Children.spawn("msgsys-producer", { ...common, dir: producerDir, rate, total })
    }
    children.push(sender)
    await sender.next("ready", 30_000)
    const stopRss = watchRss(receiver.pid)
    const sent = await sender.next<Children.Message & Paced>("done", timeout)
    if (sent.failures > 0) throw new Error(`${side} latency: ${sent.failures} sends failed: ${sent.firstError}`)
    // a receiver that fell behind still works off its backlog: give it time
    const done = await receiver.next<Children.Message & { latencies: Array<number> }>("done", timeout)
    const rss = stopRss()
    const summary = latencySummary(done.latencies)
    if (summary.count !== rate * seconds) throw new Error(`${side} latency: ${summary.count} measured, expected ${rate * seconds}`)
    if (summary.min < 0) env.log(`${side} latency: a negative latency (${summary.min.toFixed(3)} ms): the process clocks disagree`)
    env.log(`${side} latency: sent at ${sent.rate.toFixed(0)}/s (latest send ${sent.maxLagMs.toFixed(1)} ms behind its slot)`)
    if (sent.rate < rate * 0.95) {
      env.log(`${side} latency: the sender fell behind ${rate}/s (${sent.rate.toFixed(0)}/s): the machine is too busy for this figure`)
    }
    return { ...summary, rss, sendRate: sent.rate }
  } finally {
    for (const child of children) await child.stop()
    await Js.deleteStreams(c.jsm, `${prefix}_`, `KV_${prefix}_`)
    rmSync(dir, { recursive: true, force: true })
  }
}

export const section: Section = {
  name: "latency",
  title: "enqueue -> handler start, separate processes",
  figures: (s) => [
    { key: "rawP50", label: "raw nats.js p50", unit: "ms", digits: 2 },
    { key: "rawP99", label: "raw nats.js p99", unit: "ms", digits: 2 },
    { key: "rawMax", label: "raw nats.js max", unit: "ms", digits: 2 },
    { key: "msgsysP50", label: "msgsys p50", unit: "ms", digits: 2 },
    { key: "msgsysP99", label: "msgsys p99", unit: "ms", digits: 2 },
    { key: "msgsysMax", label: "msgsys max", unit: "ms", digits: 2 },
    { key: "rawRss", label: `raw consumer RSS at ${s.latencyRate}/s (largest)`, unit: "MiB", digits: 1 },
    { key: "msgsysRss", label: `msgsys worker RSS at ${s.latencyRate}/s (largest)`, unit: "MiB", digits: 1 },
    // below the asked rate, the sender (a busy machine) and not the receiver set the pace
    { key: "rawSendRate", label: "raw sender's achieved rate", unit: "msgs/s" },
    { key: "msgsysSendRate", label: "msgsys sender's achieved rate", unit: "tasks/s" }
  ],
  setup: async (env): Promise<Runner> => {
    const c = await Js.connect(env.url)
    return {
      run: async () => {
        const raw = await runSide(env, c, "raw")
        const msgsys = await runSide(env, c, "msgsys")
        return {
          rawP50: raw.p50,
          rawP99: raw.p99,
          rawMax: raw.max,
          msgsysP50: msgsys.p50,
          msgsysP99: msgsys.p99,
          msgsysMax: msgsys.max,
          rawRss: raw.rss,
          msgsysRss: msgsys.rss,
          rawSendRate: raw.sendRate,
          msgsysSendRate: msgsys.sendRate
        }
      },
      close: () => c.nc.drain()
    }
  }
}
