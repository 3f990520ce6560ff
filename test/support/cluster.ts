/**
 * A three-node nats-server cluster with JetStream for the tests: three `EmbeddedNats` processes on
 * free loopback ports, routed to each other, each with its own store. A node can be SIGKILLed and
 * started again on its port and store, as one machine of a cluster fails and comes back.
 */
import { connect } from "@nats-io/transport-node"
import { jetstreamManager } from "@nats-io/jetstream"
import { Effect, Exit, Schema, Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Actor from "../../src/actor/Actor.ts"
import * as EmbeddedNats from "../../src/broker/EmbeddedNats.ts"
import * as Retry from "../../src/retry/Retry.ts"
import * as Task from "../../src/task/Task.ts"
import { actorName } from "./runtime.ts"
import { appOf, Runs } from "./runtimeTools.ts"

/** Free loopback ports, held open together so no two are the same. */
const freePorts = (n: number): Array<number> => {
  const sockets = Array.from({ length: n }, () => Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }))
  const ports = sockets.map((s) => s.port)
  for (const s of sockets) s.stop(true)
  return ports
}

export interface Cluster {
  readonly nodes: ReadonlyArray<EmbeddedNats.EmbeddedNats>
  /** The nodes' server names, n1..n3, in the order of `nodes`. */
  readonly names: ReadonlyArray<string>
  readonly urls: ReadonlyArray<string>
  readonly close: () => Promise<void>
}

/** Starts three routed nodes and waits until JetStream has a meta leader (an R3 stream can be made). */
export const startCluster = async (): Promise<Cluster> => {
  const routes = freePorts(3)
  const dir = mkdtempSync(join(tmpdir(), "msgsys-cluster-"))
  const scope = Effect.runSync(Scope.make())
  const names = ["n1", "n2", "n3"]
  const nodes = await Promise.all(names.map((name, i) =>
    Effect.runPromise(EmbeddedNats.make({
      storeDir: join(dir, name),
      keepStore: true,
      config: [
        `server_name: ${name}`,
        "cluster {",
        "  name: msgsys-test",
        `  listen: "127.0.0.1:${routes[i]}"`,
        `  routes: [${routes.filter((_, j) => j !== i).map((p) => `"nats-route://127.0.0.1:${p}"`).join(", ")}]`,
        "}"
      ].join("\n")
    }).pipe(Scope.provide(scope)))
  ))
  const close = async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitForJetStream(nodes.map((n) => n.url))
  } catch (e) {
    await close()
    throw e
  }
  return { nodes, names, urls: nodes.map((n) => n.url), close }
}

/** Until a replicated stream can be created (the nodes found each other and elected a meta leader). */
export const waitForJetStream = async (urls: ReadonlyArray<string>, timeoutMs = 30_000) => {
  const nc = await connect({ servers: [...urls] })
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false })
    const deadline = Date.now() + timeoutMs
    const probe = `PROBE_${process.pid}_${Date.now()}`
    for (;;) {
      try {
        await jsm.streams.add({ name: probe, subjects: [`probe.${probe}`], num_replicas: 3 })
        await jsm.streams.delete(probe)
        return
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`the cluster did not form within ${timeoutMs} ms: ${String(e)}`)
        await Bun.sleep(250)
      }
    }
  } finally {
    await nc.close()
  }
}

/**
 * The cluster tests' load: an actor (concurrency 16, five attempts) whose task takes 20 ms and
 * counts its runs in `done`, so a test can say that every task ran once.
 */
export const countingApp = (base: string) => {
  const name = actorName(base)
  const Work = Task.make(`${name}.work`, { input: { n: Schema.Number }, output: { n: Schema.Number } })
  const A = Actor.make(name, { protocol: [Work], concurrency: 16, retry: Retry.exponential({ base: "100 millis", maxAttempts: 5 }) })
  const done = new Runs()
  const app = appOf([A, {
    [Work.subject]: ({ input, taskId }) =>
      Effect.sleep("20 millis").pipe(Effect.andThen(Effect.sync(() => done.add(taskId))), Effect.as({ n: input.n }))
  }])
  return { name, Work, done, app }
}
