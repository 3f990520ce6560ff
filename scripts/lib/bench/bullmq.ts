/**
 * `bullmq`: what msgsys is pitched against. BullMQ (pinned devDependency, its default ioredis
 * driver) on a private redis-server this section starts: a free loopback port, its own folder,
 * AOF with fsync every second, no RDB snapshots; stopped and removed at the end. (Never the shared
 * Redis on 6379.) The same no-op jobs and N as msgsys:
 * - addBulk: one `queue.addBulk` call with N jobs;
 * - add one by one: `queue.add`, `--in-flight` calls at once;
 * - processing: a Worker (concurrency 64, removeOnComplete, so no result is kept) drains the N jobs
 *   added by addBulk; timed from `worker.run()` to the N-th "completed" event, and the queue is
 *   checked empty after.
 * Skipped, with the reason, only when no redis-server is installed (./scripts/bench installs it).
 */
import { type Job, Queue, Worker } from "bullmq"
import { mkdtempSync, rmSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { EmbeddedNats } from "msgsys/testing"
import { within } from "./support/clock.ts"
import * as Js from "./support/jetstream.ts"
import type { Env, Runner, Section } from "./support/Section.ts"
import { perSecond } from "./support/stats.ts"

const workerConcurrency = 64

const findRedisServer = () =>
  Bun.which("redis-server") ??
    ["/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"].find((p) => Bun.file(p).size > 0)

/** A redis-server of our own; killed by pid if this process exits without stopping it. */
const startRedis = async (binary: string, parent: string) => {
  const dir = mkdtempSync(join(parent, "redis-"))
  const port = await Effect.runPromise(EmbeddedNats.freePort)
  const proc = Bun.spawn([
    binary,
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--dir", dir,
    "--appendonly", "yes",
    "--appendfsync", "everysec",
    "--save", "",
    "--maxmemory-policy", "noeviction",
    "--daemonize", "no"
  ], { stdout: "pipe", stderr: "pipe" })
  const kill = () => {
    try {
      proc.kill("SIGKILL")
    } catch {
      // gone
    }
  }
  process.on("exit", kill)
  // ready once it answers a PING
  const deadline = performance.now() + 10_000
  for (;;) {
    if (proc.exitCode !== null) {
      throw new Error(`redis-server exited with ${proc.exitCode}: ${await new Response(proc.stdout).text()}`)
    }
    try {
      const client = new Bun.RedisClient(`redis://127.0.0.1:${port}`)
      await client.send("PING", [])
      client.close()
      break
    } catch {
      if (performance.now() > deadline) throw new Error(`redis-server did not answer on 127.0.0.1:${port} within 10 s`)
      await Bun.sleep(50)
    }
  }
  return {
    connection: { host: "127.0.0.1", port, maxRetriesPerRequest: null },
    stop: async () => {
      proc.kill("SIGTERM")
      const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(5_000).then(() => false)])
      if (!exited) kill()
      process.off("exit", kill)
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

type Connection = Awaited<ReturnType<typeof startRedis>>["connection"]

const jobs = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ name: "echo", data: { n: i, sentAt: 0 } }))

const queueOf = (name: string, connection: Connection) =>
  new Queue(name, { connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } })

const runOnce = async (env: Env, connection: Connection, n: number) => {
  const name = env.unique("bull")
  const queue = queueOf(name, connection)
  const oneByOne = queueOf(`${name}one`, connection)
  let worker: Worker | undefined
  try {
    await queue.waitUntilReady()
    await oneByOne.waitUntilReady()

    let started = performance.now()
    await queue.addBulk(jobs(n))
    const addBulkMs = performance.now() - started
    const waiting = await queue.count()
    if (waiting !== n) throw new Error(`BullMQ addBulk: ${waiting} jobs waiting after adding ${n}`)

    const all = jobs(n)
    started = performance.now()
    await Js.windowed(n, env.settings.inFlight, (i) => oneByOne.add(all[i]!.name, all[i]!.data))
    const addMs = performance.now() - started
    const added = await oneByOne.count()
    if (added !== n) throw new Error(`BullMQ add one by one: ${added} jobs waiting after adding ${n}`)
    // only the addBulk jobs are processed: Redis should hold nothing else meanwhile
    await oneByOne.obliterate({ force: true })

    let completed = 0
    let resolve: () => void = () => {}
    const finished = new Promise<void>((r) => (resolve = r))
    worker = new Worker(name, async (job: Job) => job.data.n, { connection, concurrency: workerConcurrency, autorun: false })
    worker.on("completed", () => {
      if (++completed === n) resolve()
    })
    await worker.waitUntilReady()
    started = performance.now()
    void worker.run()
    await within(finished, Js.stallTimeout(n), () => `BullMQ processing stalled: ${completed} of ${n} completed`)
    const processMs = performance.now() - started
    const left = await queue.getJobCounts()
    const remaining = Object.values(left).reduce((a, b) => a + b, 0)
    if (remaining !== 0) throw new Error(`BullMQ processing: jobs left after the drain: ${JSON.stringify(left)}`)

    return {
      addBulk: perSecond(n, addBulkMs),
      addOneByOne: perSecond(n, addMs),
      process: perSecond(n, processMs)
    }
  } finally {
    await worker?.close()
    await oneByOne.obliterate({ force: true }).catch(() => {}) // after a failure before the one above
    await queue.obliterate({ force: true }).catch(() => {})
    await oneByOne.close()
    await queue.close()
  }
}

export const section: Section = {
  name: "bullmq",
  title: `BullMQ (redis AOF everysec, worker concurrency ${workerConcurrency})`,
  figures: (s) => [
    { key: "addBulk", label: "queue.addBulk, one call", unit: "jobs/s" },
    { key: "addOneByOne", label: `queue.add, ${s.inFlight} in flight`, unit: "jobs/s" },
    { key: "process", label: `Worker, concurrency ${workerConcurrency}, removeOnComplete`, unit: "jobs/s" }
  ],
  setup: async (env): Promise<Runner | string> => {
    const binary = findRedisServer()
    if (!binary) return "redis-server is not installed and could not be (apt-get install redis-server)"
    const redis = await startRedis(binary, env.dir)
    try {
      if (env.settings.warmup > 0) await runOnce(env, redis.connection, env.settings.warmup)
    } catch (e) {
      await redis.stop()
      throw e
    }
    return {
      run: () => runOnce(env, redis.connection, env.settings.tasks),
      close: redis.stop
    }
  }
}
