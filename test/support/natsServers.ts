/**
 * Helpers for the connection tests: settings for one server, throwaway TLS certificates, a
 * nats-server without JetStream, and a pid check.
 */
import { Duration, Effect, Option, Schedule, type Scope } from "effect"
import { join } from "node:path"
import { createConnection } from "node:net"
import * as EmbeddedNats from "../../src/broker/EmbeddedNats.ts"
import * as MsgsysConfig from "../../src/config/MsgsysConfig.ts"

/** Connection settings for `url`: the defaults, one connect attempt, a short reconnect wait. */
export const natsSettings = (
  url: string,
  overrides: Partial<MsgsysConfig.NatsSettings> = {}
): MsgsysConfig.NatsSettings => ({
  ...MsgsysConfig.defaults.nats,
  servers: [url],
  connectAttempts: 1,
  reconnectWait: Duration.millis(100),
  connectTimeout: Duration.seconds(2),
  ...overrides
})

/** TLS settings that trust `ca`. */
export const tlsSettings = (ca: string): MsgsysConfig.NatsSettings["tls"] =>
  Option.some({ ca: Option.some(ca), cert: Option.none(), key: Option.none() })

/** PEM files of a throwaway CA and a server certificate it signed, for 127.0.0.1 and localhost. */
export interface Certs {
  readonly ca: string
  readonly cert: string
  readonly key: string
}

const openssl = (cwd: string, args: ReadonlyArray<string>) => {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "ignore", stderr: "pipe" })
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`)
}

/** Writes a CA and a server certificate named `<name>-*.pem` into `dir`. */
export const makeCerts = (dir: string, name: string): Certs => {
  const ca = join(dir, `${name}-ca.pem`)
  const caKey = join(dir, `${name}-ca.key`)
  const cert = join(dir, `${name}-server.pem`)
  const key = join(dir, `${name}-server.key`)
  const csr = join(dir, `${name}-server.csr`)
  const ext = join(dir, `${name}-ext.cnf`)
  openssl(dir, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", ca, "-days", "1",
    "-subj", `/CN=msgsys test CA ${name}`])
  openssl(dir, ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost"])
  Bun.spawnSync(["sh", "-c", `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > '${ext}'`])
  openssl(dir, ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", cert,
    "-days", "1", "-extfile", ext])
  return { ca, cert, key }
}

/** The nats-server config lines that make a server require TLS with `certs`. */
export const tlsServerConfig = (certs: Certs) =>
  `tls { cert_file: ${JSON.stringify(certs.cert)}, key_file: ${JSON.stringify(certs.key)} }`

/** Succeeds when something accepts a TCP connection on the loopback `port`. */
export const accepts = (port: number) =>
  Effect.callback<void, Error>((resume) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.void)
    })
    socket.once("error", (e) => {
      socket.destroy()
      resume(Effect.fail(e))
    })
    return Effect.sync(() => socket.destroy())
  })

/** A plain `nats-server` WITHOUT JetStream on a free port; SIGKILLed when the scope closes. */
export const serverWithoutJetStream: Effect.Effect<{ readonly url: string; readonly pid: number }, Error, Scope.Scope> =
  Effect.gen(function*() {
    const binary = yield* EmbeddedNats.findBinary.pipe(Effect.mapError((e) => new Error(e.message)))
    const port = yield* EmbeddedNats.freePort
    const proc = yield* Effect.acquireRelease(
      Effect.sync(() => Bun.spawn([binary, "-a", "127.0.0.1", "-p", String(port)], { stdout: "ignore", stderr: "ignore" })),
      (p) =>
        Effect.promise(() => {
          p.kill("SIGKILL")
          return p.exited
        })
    )
    yield* accepts(port).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ duration: "10 seconds" }))))
    return { url: `nats://127.0.0.1:${port}`, pid: proc.pid }
  })

/** True while a process with this pid exists. */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
