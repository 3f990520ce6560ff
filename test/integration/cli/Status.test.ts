/**
 * `msgsys status` speaks msgsys: per actor queued, running, retrying, delayed and dead; pools;
 * the workers alive (from the registry); the last failures from the audit file; the raw streams
 * and durable consumers only under --broker; --json and --watch. Against a real nats-server with
 * a worker running in this process.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Schema } from "effect"
import * as Actor from "../../../src/actor/Actor.ts"
import * as Topology from "../../../src/broker/Topology.ts"
import * as ActorTopology from "../../../src/actor/ActorTopology.ts"
import * as Nats from "../../../src/broker/Nats.ts"
import * as Overview from "../../../src/cli/Overview.ts"
import * as Retry from "../../../src/retry/Retry.ts"
import * as Task from "../../../src/task/Task.ts"
import * as TaskError from "../../../src/task/TaskError.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import { appOf, deadLetters, runTest, start, waitFor } from "../../support/runtimeTools.ts"

const h = natsHarness()

const envOf = (settings: { readonly nats: { readonly servers: ReadonlyArray<string> }; readonly streamPrefix: string; readonly sqlitePath: string; readonly dataDir: string }) => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MSGSYS_"))) as Record<string, string>,
  MSGSYS_NATS_URL: settings.nats.servers.join(","),
  MSGSYS_STREAM_PREFIX: settings.streamPrefix,
  MSGSYS_SQLITE_PATH: settings.sqlitePath,
  MSGSYS_DATA_DIR: settings.dataDir
})

const msgsys = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.promise(async () => {
    const proc = Bun.spawn(["bun", "src/cli/main.ts", ...args], { env, stdout: "pipe", stderr: "pipe" })
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
    return { stdout, stderr, code }
  })

const setup = () => {
  const name = actorName("st")
  const Work = Task.make(`${name}.work`, { input: { mode: Schema.String }, output: { ok: Schema.Boolean } })
  const A = Actor.make(name, { protocol: [Work], pool: "slow", concurrency: 2, retry: Retry.none })
  const app = appOf([A, {
    [Work.subject]: ({ input }) =>
      (input as { mode: string }).mode === "fail"
        ? Effect.fail(TaskError.permanent(new Error("the report template is missing")))
        : Effect.succeed({ ok: true })
  }])
  return { name, Work, app }
}

describe("msgsys status", () => {
  test("shows each actor's queued, delayed and dead tasks, pauses, the pools, the live worker and the last failure; --json says the same", async () => {
    const { name, Work, app } = setup()
    // an actor whose stream exists but no worker runs: its tasks wait
    const idle = setup()
    const settings = h.settings()
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      yield* Topology.apply(ActorTopology.forActor(rt.names, idle.app.actors[0]!, settings)).pipe(Effect.provideService(Nats.Nats, rt.nats))
      yield* rt.client.enqueue(Work, { mode: "fail" })
      yield* waitFor("the dead letter", Effect.map(deadLetters(rt, name), (ls) => ls.length === 1))
      yield* rt.client.enqueue(Work, { mode: "ok" }, { delay: "1 hour" })
      yield* rt.client.enqueue(idle.Work, { mode: "ok" })
      yield* rt.client.enqueue(idle.Work, { mode: "ok" })
      yield* rt.control.pause({ kind: "actor", name })
      const env = envOf(settings)

      const json = yield* msgsys(["status", "--json"], env)
      expect(json.code).toBe(0)
      const s = JSON.parse(json.stdout)
      expect(s.report.actors).toEqual([{
        name,
        queued: 0,
        running: 0,
        retrying: 0,
        delayed: 1,
        dead: 1,
        pools: ["slow"],
        workers: 1,
        paused: true
      }, {
        name: idle.name,
        queued: 2,
        running: 0,
        retrying: 0,
        delayed: 0,
        dead: 0,
        pools: [],
        workers: 0,
        paused: false
      }].sort((a, b) => a.name.localeCompare(b.name)))
      expect(s.report.workers.map((w: { id: string }) => w.id)).toEqual([rt.worker.id])
      expect(s.report.workers[0]).toMatchObject({ pid: process.pid, version: "0.1.0", actors: [{ name, pool: "slow", concurrency: 2 }] })
      expect(s.report.pools).toEqual(expect.arrayContaining([{ name: "slow", inFlight: 0, size: 4, workers: 1 }]))
      expect(s.failures[0]).toMatchObject({ subject: Work.subject, step: "dead_lettered" })
      expect(s.failures[0].error).toContain("the report template is missing")
      expect(s.broker).toBeUndefined()

      const text = yield* msgsys(["status"], env)
      expect(text.code).toBe(0)
      expect(text.stdout).toMatch(new RegExp(`^  ${name} \\(paused\\)\\s+0\\s+0\\s+0\\s+1\\s+1\\s+1\\s+slow$`, "m"))
      expect(text.stdout).toMatch(new RegExp(`^  ${idle.name}\\s+2\\s+0\\s+0\\s+0\\s+0\\s+0\\s+-$`, "m"))
      expect(text.stdout).toContain("workers alive (1):")
      expect(text.stdout).toContain(rt.worker.id)
      expect(text.stdout).toMatch(/^  slow\s+0\s+4\s+1$/m)
      expect(text.stdout).toContain(`${Work.subject}  attempt 1  dead-lettered: `)
      // raw JetStream only when asked
      expect(text.stdout).not.toContain(`${rt.names.taskStream(name)}/`)
    }))
  }, 60_000)

  test("--broker adds this installation's streams and durable consumers, never ephemeral ones", async () => {
    const { name, app } = setup()
    const settings = h.settings()
    await runTest(Effect.gen(function*() {
      const rt = yield* start(app, settings)
      // the worker's own watches (pauses, cancels) are ephemeral consumers on the server now
      const { stdout, code } = yield* msgsys(["status", "--broker"], envOf(settings))
      expect(code).toBe(0)
      expect(stdout).toContain(`  ${rt.names.taskStream(name)}  `)
      expect(stdout).toContain(`  KV_${rt.names.workersBucket}  `)
      expect(stdout).toContain(`${rt.names.taskStream(name)}/${rt.names.taskConsumer(name, "normal")}  pending 0`)
      const raw = yield* Overview.describe(rt.nats, { prefix: `KV_${settings.streamPrefix}_` })
      const ephemeral = raw.consumers.filter((c) => !c.durable)
      expect(ephemeral.length).toBeGreaterThan(0)
      for (const c of ephemeral) expect(stdout).not.toContain(`${c.stream}/${c.name}`)
    }))
  }, 60_000)

  test("--watch --json prints a fresh report every two seconds until stopped", async () => {
    const { app } = setup()
    const settings = h.settings()
    await runTest(Effect.gen(function*() {
      yield* start(app, settings)
      const proc = Bun.spawn(["bun", "src/cli/main.ts", "status", "--watch", "--json"], { env: envOf(settings), stdout: "pipe", stderr: "pipe" })
      const lines: Array<string> = []
      yield* Effect.promise(async () => {
        const reader = proc.stdout.getReader()
        let buffer = ""
        while (lines.length < 2) {
          const { value, done } = await reader.read()
          if (done) break
          buffer += new TextDecoder().decode(value)
          const parts = buffer.split("\n")
          buffer = parts.pop()!
          lines.push(...parts.filter((l) => l.length > 0))
        }
        proc.kill("SIGTERM")
        await proc.exited
      })
      expect(lines).toHaveLength(2)
      const [a, b] = lines.map((l) => JSON.parse(l))
      expect(b.report.at - a.report.at).toBeGreaterThanOrEqual(1900)
      expect(a.report.workers).toHaveLength(1)
    }))
  }, 60_000)
})
