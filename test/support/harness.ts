/**
 * Test harness: a real `nats-server -js` per test file (or per test, for tests that kill it), a
 * temp directory for SQLite files, and helpers to run Effect tests under bun:test.
 */
import { afterAll, beforeAll, test } from "bun:test"
import { Effect, Exit, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as EmbeddedNats from "../../src/broker/EmbeddedNats.ts"
import * as Nats from "../../src/broker/Nats.ts"
import * as MsgsysConfig from "../../src/config/MsgsysConfig.ts"

/** Runs an Effect as a bun test with the TestClock. */
export const effectTest = <A, E>(name: string, body: () => Effect.Effect<A, E>, timeout?: number) =>
  test(name, () => Effect.runPromise(Effect.provide(Effect.suspend(body), TestClock.layer())).then(() => {}), timeout)

/** Runs an Effect as a bun test on the real clock. */
export const liveTest = <A, E>(name: string, body: () => Effect.Effect<A, E, Scope.Scope>, timeout?: number) =>
  test(name, () => Effect.runPromise(Effect.scoped(Effect.suspend(body))).then(() => {}), timeout)

let counter = 0
/** A name unique in this process, usable in stream names. */
export const uniqueName = (base = "T") => `${base}${process.pid}_${++counter}`

/** A fresh temp directory, removed by the returned cleanup. */
export const tempDir = (prefix = "msgsys-test-") => mkdtempSync(join(tmpdir(), prefix))

/** Whether a process with this pid is alive (signal 0 checks without sending anything). */
export const processAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts a server in a scope of its own; returns it with a closer. */
export const startServer = async (options: EmbeddedNats.Options = {}) => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(EmbeddedNats.make(options).pipe(Scope.provide(scope)))
  return { server, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/**
 * Settings pointing at `url`, with a unique stream prefix and SQLite file in `dir`. The DLQ worker
 * is off unless a test turns it on (`dlqWorker: true`): tests of dead-lettering look at the
 * letters it would otherwise retry or move to exhausted.
 */
export const settingsFor = (url: string, dir: string, overrides: Partial<MsgsysConfig.MsgsysSettings> = {}):
  MsgsysConfig.MsgsysSettings => ({
    ...MsgsysConfig.defaults,
    streamPrefix: uniqueName("T"),
    dataDir: dir,
    sqlitePath: join(dir, "msgsys.sqlite"),
    httpPort: 0,
    dlqWorker: false,
    ...overrides,
    nats: { ...MsgsysConfig.defaults.nats, servers: [url], connectAttempts: 1, ...overrides.nats }
  })

/**
 * One embedded server for the whole test file. `run` gives each test its own connection, config
 * (a unique stream prefix, so tests never share streams) and temp dir.
 */
export const natsHarness = (options: EmbeddedNats.Options = {}) => {
  let started: Awaited<ReturnType<typeof startServer>> | undefined
  const dirs: Array<string> = []
  beforeAll(async () => {
    started = await startServer(options)
  })
  afterAll(async () => {
    await started?.close()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })
  const harness = {
    get server(): EmbeddedNats.EmbeddedNats {
      if (!started) throw new Error("the harness server is not started yet (use it inside a test)")
      return started.server
    },
    settings: (overrides: Partial<MsgsysConfig.MsgsysSettings> = {}) => {
      const dir = tempDir()
      dirs.push(dir)
      return settingsFor(harness.server.url, dir, overrides)
    },
    /** A layer with the config and a live connection for one test. */
    layer: (settings: MsgsysConfig.MsgsysSettings) => {
      const config = Layer.succeed(MsgsysConfig.MsgsysConfig, settings)
      return Layer.provideMerge(Nats.layer, config)
    },
    /** Runs `body` with a fresh config + connection, scoped to the test. */
    run: <A, E>(
      body: Effect.Effect<A, E, Nats.Nats | MsgsysConfig.MsgsysConfig | Scope.Scope>,
      overrides: Partial<MsgsysConfig.MsgsysSettings> = {}
    ) =>
      Effect.runPromise(
        Effect.scoped(body).pipe(Effect.provide(harness.layer(harness.settings(overrides)), { local: true }))
      )
  }
  return harness
}
