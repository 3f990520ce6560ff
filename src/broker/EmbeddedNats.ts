/**
 * A `nats-server -js` child process on a free loopback port with its own store directory: the
 * broker of `msgsys dev` when `MSGSYS_NATS_URL` is unset, and of every integration test.
 *
 * The server is a scoped resource: closing the scope stops it (SIGTERM, then SIGKILL). It can be
 * killed and restarted on the same port and store, which is how tests break the broker.
 * @since 0.1.0
 */
import { Data, Effect, Schedule, Scope } from "effect"
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** No `nats-server` binary was found. @category errors @since 0.1.0 */
export class NatsServerNotFound extends Data.TaggedError("NatsServerNotFound")<{
  readonly searched: ReadonlyArray<string>
}> {
  override get message() {
    return `nats-server was not found (looked in ${this.searched.join(", ")}): install it with ` +
      "`apt-get install nats-server` (Debian/Ubuntu) or from https://github.com/nats-io/nats-server/releases, " +
      "or set MSGSYS_NATS_URL to a running server"
  }
}

/** The server process started but never accepted connections, or exited at once. @category errors @since 0.1.0 */
export class NatsServerFailedToStart extends Data.TaggedError("NatsServerFailedToStart")<{
  readonly port: number
  readonly reason: string
  readonly log: string
}> {
  override get message() {
    return `nats-server did not start on 127.0.0.1:${this.port}: ${this.reason}` +
      (this.log ? `\n--- server log ---\n${this.log.slice(-2000)}` : "")
  }
}

/** @category models @since 0.1.0 */
export interface Options {
  /** Store directory for JetStream; default: a fresh temp dir, removed when the scope closes. */
  readonly storeDir?: string
  /** Port; default: a free loopback port. */
  readonly port?: number
  /** Extra lines for the server's config file (auth, tls, limits). */
  readonly config?: string
  /** Path of the binary; default: `nats-server` found in `searchPath`. */
  readonly binary?: string
  /** Directories searched for `nats-server` when `binary` is not given; default: PATH, then /usr/sbin, /usr/local/bin. */
  readonly searchPath?: ReadonlyArray<string>
  /** Keep the store dir after the scope closes (for `msgsys dev`). Default: only when `storeDir` is given. */
  readonly keepStore?: boolean
}

/** A running embedded server. @category models @since 0.1.0 */
export interface EmbeddedNats {
  readonly url: string
  readonly port: number
  readonly storeDir: string
  /** The pid of the current process (changes after `restart`). */
  readonly pid: () => number
  /** SIGKILL the server: it loses nothing that JetStream had synced, and connections drop at once. */
  readonly kill: Effect.Effect<void>
  /** Stop gracefully (SIGTERM, then SIGKILL after 5 s). */
  readonly stop: Effect.Effect<void>
  /** Start again on the same port and store after `kill` or `stop`. */
  readonly start: Effect.Effect<void, NatsServerFailedToStart>
  /** `kill` then `start`. */
  readonly restart: Effect.Effect<void, NatsServerFailedToStart>
}

/** PATH, then the usual install directories. @category utils @since 0.1.0 */
export const defaultSearchPath = (): ReadonlyArray<string> => {
  const fromPath = (process.env.PATH ?? "").split(":").filter((d) => d.length > 0)
  return [...fromPath, "/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"]
}

/** Finds the `nats-server` binary in the given directories. @category constructors @since 0.1.0 */
export const findBinaryIn = (dirs: ReadonlyArray<string>): Effect.Effect<string, NatsServerNotFound> =>
  Effect.suspend(() => {
    const found = dirs.map((d) => join(d, "nats-server")).find((p) => existsSync(p))
    return found ? Effect.succeed(found) : Effect.fail(new NatsServerNotFound({ searched: [...new Set(dirs)] }))
  })

/** Finds the `nats-server` binary on PATH or in the usual install directories. @category constructors @since 0.1.0 */
export const findBinary: Effect.Effect<string, NatsServerNotFound> = Effect.suspend(() =>
  findBinaryIn(defaultSearchPath())
)

/** The binary `options` name: `binary` if it exists, else a search of `searchPath`. */
const resolveBinary = (options: Options): Effect.Effect<string, NatsServerNotFound> => {
  if (options.binary !== undefined) {
    const binary = options.binary
    return Effect.suspend(() =>
      existsSync(binary) ? Effect.succeed(binary) : Effect.fail(new NatsServerNotFound({ searched: [binary] }))
    )
  }
  return options.searchPath !== undefined ? findBinaryIn(options.searchPath) : findBinary
}

/** Asks the kernel for a free loopback port. @category utils @since 0.1.0 */
export const freePort: Effect.Effect<number> = Effect.callback<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Resolves with the first line the server sends (its INFO), or fails if nothing listens. */
const readInfo = (port: number): Effect.Effect<string, Error> =>
  Effect.callback<string, Error>((resume) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    let data = ""
    const done = (effect: Effect.Effect<string, Error>) => {
      socket.removeAllListeners()
      socket.destroy()
      resume(effect)
    }
    socket.setTimeout(1000, () => done(Effect.fail(new Error("no INFO within 1 s"))))
    socket.on("data", (chunk) => {
      data += chunk.toString()
      if (data.includes("\r\n")) done(Effect.succeed(data.slice(0, data.indexOf("\r\n"))))
    })
    socket.on("error", (e) => done(Effect.fail(e)))
    return Effect.sync(() => socket.destroy())
  })

// Children outlive the parent after process.exit or an uncaught throw (PITFALLS §9): kill them by pid.
const livePids = new Set<number>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on("exit", () => {
    for (const pid of livePids) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
  })
}

/**
 * Starts `nats-server -js` and waits until it accepts connections with JetStream on.
 * @category constructors @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<
  EmbeddedNats,
  NatsServerNotFound | NatsServerFailedToStart,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const binary = yield* resolveBinary(options)
    const port = options.port ?? (yield* freePort)
    const ownsStore = options.storeDir === undefined
    const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), "msgsys-nats-"))
    mkdirSync(storeDir, { recursive: true })
    const confPath = join(storeDir, "msgsys-nats.conf")
    writeFileSync(
      confPath,
      [
        `listen: "127.0.0.1:${port}"`,
        `jetstream { store_dir: ${JSON.stringify(join(storeDir, "jetstream"))} }`,
        options.config ?? ""
      ].join("\n")
    )
    installExitHook()

    let child: ReturnType<typeof Bun.spawn> | undefined
    let log = ""

    const drainLog = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder()
      for await (const chunk of stream) log = (log + decoder.decode(chunk)).slice(-20_000)
    }

    const signal = (sig: "SIGKILL" | "SIGTERM") =>
      Effect.promise(async () => {
        const proc = child
        if (!proc) return
        if (proc.exitCode !== null || proc.signalCode !== null) {
          livePids.delete(proc.pid)
          return
        }
        proc.kill(sig)
        const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(5000).then(() => false)])
        if (!exited) {
          proc.kill("SIGKILL")
          await proc.exited
        }
        livePids.delete(proc.pid)
      })

    const kill = signal("SIGKILL")
    const stop = signal("SIGTERM")

    const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null

    const start: Effect.Effect<void, NatsServerFailedToStart> = Effect.gen(function*() {
      // a second process could not bind the port, and the INFO check would then see the first one
      if (isRunning()) return
      log = ""
      const proc = yield* Effect.try({
        try: () => Bun.spawn([binary, "-c", confPath], { stdout: "ignore", stderr: "pipe" }),
        catch: (e) => new NatsServerFailedToStart({ port, reason: `cannot run ${binary}: ${String(e)}`, log: "" })
      })
      child = proc
      livePids.add(proc.pid)
      void drainLog(proc.stderr as ReadableStream<Uint8Array>)
      const exited = () =>
        proc.exitCode !== null || proc.signalCode !== null
          ? new Error(`exited with ${proc.exitCode ?? proc.signalCode}`)
          : undefined
      const info = yield* Effect.suspend(() => {
        const gone = exited()
        return gone ? Effect.fail(gone) : readInfo(port)
      }).pipe(
        // an exited process will not start listening: give up at once instead of after 15 s
        Effect.retry({
          schedule: Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "15 seconds" })),
          while: () => exited() === undefined
        }),
        Effect.flatMap((line) => {
          const gone = exited()
          return gone ? Effect.fail(gone) : Effect.succeed(line)
        }),
        Effect.mapError((e) => new NatsServerFailedToStart({ port, reason: e.message, log }))
      )
      if (!info.includes("\"jetstream\":true")) {
        return yield* new NatsServerFailedToStart({ port, reason: "JetStream is not enabled", log })
      }
    }).pipe(
      // acquireRelease does not release a failed acquire: do not leave a half-started server behind
      Effect.tapError(() => kill)
    )

    // registered first so it runs last, after the server stopped, and also when the start failed
    if (ownsStore && options.keepStore !== true) {
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(storeDir, { recursive: true, force: true })))
    }
    yield* Effect.acquireRelease(start, () => stop)

    return {
      url: `nats://127.0.0.1:${port}`,
      port,
      storeDir,
      pid: () => child?.pid ?? -1,
      kill,
      stop,
      start,
      restart: Effect.andThen(kill, start)
    } satisfies EmbeddedNats
  })
