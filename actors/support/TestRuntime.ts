/**
 * What the actors' tests share, written as a user of msgsys would: a real nats-server per test
 * file (`EmbeddedNats` from msgsys/testing), an app's whole runtime (`App.layer`) started in a
 * test's scope with its own stream prefix, SQLite file and data directory, and a plain NATS
 * connection to look at the broker as any other client does.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll } from "bun:test"
import { Effect, Exit, Layer, Logger, Scope } from "effect"
import type { Context } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { App, MsgsysConfig } from "msgsys"
import { EmbeddedNats } from "msgsys/testing"

let counter = 0
/** A name unique in this process: stream prefixes, bus names, domains. */
export const unique = (base: string) => `${base}${process.pid}x${++counter}`

/** A temp directory, removed when the file's tests end. */
export const tempDir = (dirs: Array<string>) => {
  const dir = mkdtempSync(join(tmpdir(), "msgsys-actors-"))
  dirs.push(dir)
  return dir
}

/** Warnings and errors only (MSGSYS_TEST_LOGS=1 for everything): test output stays readable. */
export const quietLogs = Logger.layer([
  Logger.make((o) => {
    if (process.env.MSGSYS_TEST_LOGS === "1" || o.logLevel === "Error" || o.logLevel === "Fatal") {
      console.error(`[${o.logLevel}] ${Array.isArray(o.message) ? o.message.join(" ") : String(o.message)}`)
    }
  })
])

/**
 * One nats-server for the test file. `start(app)` builds the app's runtime in the current scope
 * (closed at the end of the test: graceful shutdown) and returns its services and its directory.
 */
export const natsServer = () => {
  let scope: Scope.Closeable | undefined
  let server: EmbeddedNats.EmbeddedNats | undefined
  const dirs: Array<string> = []
  beforeAll(async () => {
    scope = Effect.runSync(Scope.make())
    server = await Effect.runPromise(EmbeddedNats.make().pipe(Scope.provide(scope)))
  })
  afterAll(async () => {
    if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })
  const self = {
    get url(): string {
      if (!server) throw new Error("the nats-server is not started yet: use it inside a test")
      return server.url
    },
    /** A fresh directory for one test's files. */
    dir: () => tempDir(dirs),
    /** Settings for one runtime: this server, a unique prefix, files under `dir`, no HTTP, no DLQ worker unless asked. */
    settings: (dir: string, overrides: MsgsysConfig.Overrides = {}): MsgsysConfig.Overrides => ({
      streamPrefix: unique("A"),
      dataDir: dir,
      httpPort: 0,
      dlqWorker: false,
      ...overrides,
      nats: { servers: [self.url], connectAttempts: 1, ...overrides.nats }
    }),
    /** Starts `app` in the current scope; with `scheduler`, a scheduler replica beside it (and `Schedules`). */
    start: <Actors extends ReadonlyArray<any>, E, Groups extends ReadonlyArray<any>>(
      app: App.App<Actors, E, Groups>,
      settings: MsgsysConfig.Overrides,
      options: { readonly scheduler?: boolean } = {}
    ): Effect.Effect<Context.Context<any>, unknown, Scope.Scope> => {
      const runtime = App.layer(app, { config: MsgsysConfig.layerFrom(settings) })
      return options.scheduler
        ? Layer.build(App.scheduler(app).pipe(Layer.provideMerge(runtime)))
        : Layer.build(runtime)
    }
  }
  return self
}

/**
 * A plain nats.js connection to `url`, closed with the scope: what a client that knows nothing
 * of msgsys sees and sends (a foreign publisher, `nats stream info`).
 */
export const plainConnection = (url: string): Effect.Effect<NatsConnection, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => connect({ servers: url })),
    (nc) => Effect.promise(() => nc.close())
  )

/** Polls `check` until it is true; dies naming `what` after `timeout` ms. */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, timeout = 15_000) =>
  Effect.gen(function*() {
    const until = Date.now() + timeout
    while (!(yield* check)) {
      if (Date.now() > until) return yield* Effect.die(new Error(`timed out after ${timeout} ms waiting for ${what}`))
      yield* Effect.sleep("20 millis")
    }
  })
