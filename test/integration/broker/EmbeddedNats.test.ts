/**
 * The embedded nats-server: starts with JetStream, survives SIGKILL with its store, stops with its
 * scope, and says how to install it when it is missing.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Exit, Scope } from "effect"
import { existsSync, rmSync } from "node:fs"
import { join } from "node:path"
import * as EmbeddedNats from "../../../src/broker/EmbeddedNats.ts"
import * as Nats from "../../../src/broker/Nats.ts"
import { liveTest, tempDir } from "../../support/harness.ts"
import { accepts, isAlive, natsSettings } from "../../support/natsServers.ts"

/** Runs `body` with a connection to `url` that is drained before this returns. */
const withConnection = <A, E>(url: string, body: (nats: Nats.Nats["Service"]) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(Nats.make(natsSettings(url)), body))

describe("EmbeddedNats", () => {
  liveTest("starts on a free loopback port and accepts connections with JetStream on", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedNats.make()
      expect(server.url).toBe(`nats://127.0.0.1:${server.port}`)
      const info = yield* withConnection(server.url, (nats) => Effect.promise(() => nats.manager.getAccountInfo()))
      expect(info.limits).toBeDefined()
    }))

  liveTest("keeps a file stream and its messages across SIGKILL and start on the same port and store", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedNats.make()
      const port = server.port
      const firstPid = server.pid()
      yield* withConnection(server.url, (nats) =>
        Effect.promise(async () => {
          await nats.manager.streams.add({ name: "KEEP", subjects: ["keep.>"], storage: "file" })
          for (let i = 0; i < 10; i++) await nats.jetstream.publish("keep.x", `m${i}`)
        }))

      yield* server.kill
      expect(isAlive(firstPid)).toBe(false)
      yield* server.start

      expect(server.port).toBe(port)
      expect(server.pid()).not.toBe(firstPid)
      const info = yield* withConnection(server.url, (nats) => Effect.promise(() => nats.manager.streams.info("KEEP")))
      expect(info.state.messages).toBe(10)
    }))

  test("closing the scope stops the process and removes its temp store", async () => {
    const scope = Effect.runSync(Scope.make())
    const server = await Effect.runPromise(EmbeddedNats.make().pipe(Scope.provide(scope)))
    const pid = server.pid()
    expect(isAlive(pid)).toBe(true)
    expect(existsSync(server.storeDir)).toBe(true)

    await Effect.runPromise(Scope.close(scope, Exit.void))

    expect(isAlive(pid)).toBe(false)
    expect(existsSync(server.storeDir)).toBe(false)
  })

  test("keeps a store directory it was given after the scope closes", async () => {
    const dir = tempDir("msgsys-store-")
    try {
      const scope = Effect.runSync(Scope.make())
      const server = await Effect.runPromise(EmbeddedNats.make({ storeDir: dir }).pipe(Scope.provide(scope)))
      await Effect.runPromise(Scope.close(scope, Exit.void))
      expect(isAlive(server.pid())).toBe(false)
      expect(existsSync(join(dir, "msgsys-nats.conf"))).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  liveTest("start while the server runs leaves the same process serving", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedNats.make()
      const pid = server.pid()
      yield* server.start
      expect(server.pid()).toBe(pid)
      expect(isAlive(pid)).toBe(true)
    }))

  test("a missing binary on an empty search path fails with NatsServerNotFound saying how to install", async () => {
    const empty = tempDir("msgsys-nobin-")
    try {
      const error = await Effect.runPromise(Effect.flip(EmbeddedNats.findBinaryIn([empty])))
      expect(error._tag).toBe("NatsServerNotFound")
      expect(error.message).toContain("apt-get install nats-server")
      expect(error.message).toContain(empty)
      expect(error.message).toContain("MSGSYS_NATS_URL")

      const viaMake = await Effect.runPromise(
        Effect.scoped(Effect.flip(EmbeddedNats.make({ searchPath: [empty] })))
      )
      expect(viaMake._tag).toBe("NatsServerNotFound")
    } finally {
      rmSync(empty, { recursive: true, force: true })
    }
  })

  test("a binary option that does not exist fails with NatsServerNotFound naming it", async () => {
    const missing = "/nonexistent/msgsys/nats-server"
    const error = await Effect.runPromise(Effect.scoped(Effect.flip(EmbeddedNats.make({ binary: missing }))))
    expect(error._tag).toBe("NatsServerNotFound")
    expect(error.message).toContain(missing)
    expect(error.message).toContain("apt-get install nats-server")
  })

  liveTest("a config the server rejects fails with NatsServerFailedToStart carrying the server's log", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(EmbeddedNats.make({ config: "this is { not a valid config" }))
      expect(error._tag).toBe("NatsServerFailedToStart")
      expect(error.message).toContain("Parse error")
    }))

  liveTest("a server that comes up without JetStream is refused and not left running", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(EmbeddedNats.make({ config: "jetstream: disabled" }))
      expect(error._tag).toBe("NatsServerFailedToStart")
      if (error._tag !== "NatsServerFailedToStart") return
      expect(error.message).toContain("JetStream is not enabled")
      expect(yield* Effect.result(accepts(error.port))).toMatchObject({ _tag: "Failure" })
    }))
})
