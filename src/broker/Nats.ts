/**
 * The connection to NATS: one connection, its JetStream client and manager, and KV access, as a
 * scoped service. Connects with auth and TLS, reconnects forever with backoff by default, logs
 * state changes, and drains when its scope closes.
 * @since 0.1.0
 */
import { Kvm } from "@nats-io/kv"
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream"
import {
  AuthorizationError,
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection
} from "@nats-io/transport-node"
import { Context, Duration, Effect, Layer, Option, Redacted, Schedule, type Scope } from "effect"
import { readFileSync } from "node:fs"
import { MsgsysConfig, type NatsSettings } from "../config/MsgsysConfig.ts"
import * as Publish from "./Publish.ts"
import {
  JetStreamNotEnabled,
  NatsAuthorizationFailed,
  type NatsConnectError,
  NatsTlsFailed,
  NatsUnreachable,
  retryTransient
} from "./BrokerError.ts"

/** What the server told us about itself. @category models @since 0.1.0 */
export interface ServerFacts {
  readonly version: string
  readonly name: string
  readonly maxPayload: number
}

/** @category services @since 0.1.0 */
export class Nats extends Context.Service<Nats, {
  readonly connection: NatsConnection
  readonly jetstream: JetStreamClient
  readonly manager: JetStreamManager
  readonly kvm: Kvm
  /**
   * KV whose requests wait 2 seconds for an answer instead of nats.js's 5, for callers that ask
   * again what nobody answered: on a cluster, a request that reached a server gone without a word
   * is lost, and each such request would wait out the 5 seconds.
   */
  readonly quickKvm: Kvm
  /** Pipelined JetStream publishing on this connection (see `Publish`). */
  readonly publisher: Publish.Publisher
  readonly server: ServerFacts
  /** True when the server's version is at least `version` ("2.10", "2.11.0"): the gate for newer features. */
  readonly atLeast: (version: string) => boolean
  /** Copies of each stream and bucket msgsys declares (`MSGSYS_NATS_REPLICAS`). */
  readonly replicas: number
  /** False from a disconnect until the reconnect: what is sent meanwhile waits for the server. */
  readonly connected: () => boolean
  /**
   * Calls `f` after each reconnect for as long as the scope lives: what was asked of the server on
   * the lost connection (a long poll, a wait) has no answer coming and is asked again.
   */
  readonly onReconnect: (f: () => void) => Effect.Effect<void, never, Scope.Scope>
}>()("msgsys/Nats") {}

/** Compares dotted versions numerically: `compareVersions("2.9.10", "2.10") < 0`. @category utils @since 0.1.0 */
export const compareVersions = (a: string, b: string): number => {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0)
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

const toConnectionOptions = (s: NatsSettings): ConnectionOptions => {
  const opts: ConnectionOptions = {
    servers: [...s.servers],
    name: s.name,
    timeout: Duration.toMillis(s.connectTimeout),
    reconnect: true,
    maxReconnectAttempts: s.maxReconnectAttempts,
    reconnectTimeWait: Duration.toMillis(s.reconnectWait),
    // nats.js's default, 2 minutes, leaves a worker on a dead server for four or more
    pingInterval: Duration.toMillis(s.pingInterval),
    maxPingOut: 2,
    // msgsys retries the first connection itself, so it can name the problem after N tries
    waitOnFirstConnect: false,
    // nats.js otherwise builds an Error (a stack capture) for every request, to report where it was made
    noAsyncTraces: true
  }
  if (Option.isSome(s.user)) opts.user = s.user.value
  if (Option.isSome(s.password)) opts.pass = Redacted.value(s.password.value)
  if (Option.isSome(s.token)) opts.token = Redacted.value(s.token.value)
  if (Option.isSome(s.nkeySeed)) {
    opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(Redacted.value(s.nkeySeed.value)))
  }
  if (Option.isSome(s.credsFile)) {
    const path = s.credsFile.value
    opts.authenticator = credsAuthenticator(() => readFileSync(path))
  }
  if (Option.isSome(s.tls)) {
    const tls = s.tls.value
    opts.tls = {
      ...(Option.isSome(tls.ca) ? { caFile: tls.ca.value } : {}),
      ...(Option.isSome(tls.cert) ? { certFile: tls.cert.value } : {}),
      ...(Option.isSome(tls.key) ? { keyFile: tls.key.value } : {})
    }
  }
  return opts
}

const describeError = (e: unknown): string => {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code ?? (e.cause as { code?: unknown } | undefined)?.code
    return code !== undefined && !e.message.includes(String(code)) ? `${e.message} (${String(code)})` : e.message
  }
  return String(e)
}

const isTlsProblem = (reason: string): boolean =>
  /tls|ssl|certificate|CERT|WRONG_VERSION_NUMBER|UNABLE_TO_VERIFY|self[- ]signed|EBADF/i.test(reason)

const classify = (servers: ReadonlyArray<string>, attempts: number, e: unknown): NatsConnectError => {
  const reason = describeError(e)
  if (e instanceof AuthorizationError || /authorization violation|authentication/i.test(reason)) {
    return new NatsAuthorizationFailed({ servers, reason })
  }
  if (isTlsProblem(reason)) return new NatsTlsFailed({ servers, reason })
  return new NatsUnreachable({ servers, attempts, reason })
}

/**
 * Connects to the given servers, retrying the first connection `connectAttempts` times.
 * @category constructors @since 0.1.0
 */
export const make = Effect.fn("Nats.make")(function*(settings: NatsSettings) {
  const servers = settings.servers.length > 0 ? settings.servers : ["nats://127.0.0.1:4222"]
  const attempts = Math.max(1, settings.connectAttempts)
  const options = toConnectionOptions({ ...settings, servers })

  // kept by the status watch below; a connection that is away is closed at once at the end (a
  // drain would wait for the server to come back, which a shutdown should not)
  let connected = true
  const connection = yield* Effect.acquireRelease(
    Effect.tryPromise({ try: () => connect(options), catch: (e) => classify(servers, attempts, e) }).pipe(
      Effect.retry({
        schedule: Schedule.spaced(settings.reconnectWait),
        times: attempts - 1,
        // a wrong password or certificate will not fix itself
        while: (e) => e._tag === "NatsUnreachable"
      })
    ),
    (nc) =>
      Effect.promise(() => nc.isClosed() ? Promise.resolve() : connected ? nc.drain().catch(() => nc.close()) : nc.close()).pipe(
        Effect.timeoutOption("10 seconds"),
        Effect.andThen(Effect.logDebug("nats connection drained"))
      )
  )

  const info = connection.info
  const server: ServerFacts = {
    version: info?.version ?? "0.0.0",
    name: info?.server_name ?? servers[0]!,
    maxPayload: info?.max_payload ?? 1024 * 1024
  }
  // A node of a cluster that has just come back answers nothing, or "temporarily unavailable",
  // for a few seconds: asked again there. A lone server that does not answer has no JetStream.
  const check = Effect.tryPromise({ try: () => jetstreamManager(connection, { checkAPI: true }), catch: (cause) => cause })
  const manager = yield* (info?.cluster !== undefined ? retryTransient(check) : check).pipe(
    Effect.mapError(() => new JetStreamNotEnabled({ server: connection.getServer() }))
  )

  const publisher = yield* Effect.acquireRelease(
    Effect.sync(() => Publish.make(connection)),
    (p) => Effect.sync(() => p.close())
  )

  yield* Effect.logInfo(`connected to ${connection.getServer()} (nats-server ${server.version})`)
  const context = yield* Effect.context<never>()
  const reconnectListeners = new Set<() => void>()
  yield* watchStatus(connection, (log) => Effect.runForkWith(context)(log), (up) => {
    connected = up
    if (!up) return publisher.disconnected()
    publisher.reconnected()
    for (const f of reconnectListeners) {
      try {
        f()
      } catch {
        // one listener must not keep the others from hearing of the reconnect
      }
    }
  }).pipe(Effect.forkScoped)

  return Nats.of({
    connection,
    jetstream: jetstream(connection),
    manager,
    kvm: new Kvm(connection),
    quickKvm: new Kvm(jetstream(connection, { timeout: quickRequestMs })),
    publisher,
    server,
    atLeast: (version) => compareVersions(server.version, version) >= 0,
    replicas: settings.replicas,
    connected: () => connected,
    onReconnect: (f) =>
      Effect.acquireRelease(Effect.sync(() => void reconnectListeners.add(f)), () => Effect.sync(() => void reconnectListeners.delete(f)))
  })
})

/** How long a request of `quickKvm` waits for its answer. */
const quickRequestMs = 2_000

/** Logs connection state changes, and says whether it is connected, for as long as the connection lives. */
const watchStatus = (nc: NatsConnection, log: (effect: Effect.Effect<void>) => void, connected: (up: boolean) => void) =>
  Effect.promise(async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case "disconnect":
          connected(false)
          log(Effect.logWarning(`nats disconnected from ${s.server}; reconnecting`))
          break
        case "reconnect":
          connected(true)
          log(Effect.logInfo(`nats reconnected to ${s.server}`))
          break
        case "error":
          log(Effect.logError(`nats error: ${describeError(s.error)}`))
          break
        case "ldm":
          log(Effect.logWarning(`nats server ${s.server} entered lame duck mode`))
          break
        default:
          break
      }
    }
  })

/** The connection described by `MsgsysConfig`. @category layers @since 0.1.0 */
export const layer: Layer.Layer<Nats, NatsConnectError, MsgsysConfig> = Layer.effect(
  Nats,
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    return yield* make(config.nats)
  })
)

/** A connection from explicit settings. @category layers @since 0.1.0 */
export const layerFrom = (settings: NatsSettings): Layer.Layer<Nats, NatsConnectError> =>
  Layer.effect(Nats, make(settings))
