/**
 * The catalogue of msgsys variables: one `Spec` each, in the order they are documented and
 * checked.
 * @since 0.1.0
 */
import { Duration, Option, Predicate, Result } from "effect"
import {
  checkPools,
  mergePools,
  parseList,
  parsePools,
  parseServer,
  parseServers,
  type PoolBudget,
  redactUrlCredentials
} from "./parse.ts"
import { duration, integer, literal, optional, secret, type Spec, text } from "./spec.ts"

/** The pools that always exist; `MSGSYS_POOLS` adds to them or changes their size. */
export const defaultPools: ReadonlyArray<PoolBudget> = [{ name: "fast", concurrency: 32 }, { name: "slow", concurrency: 4 }]

/** Payload fields the audit log masks unless told otherwise. */
export const defaultRedactFields: ReadonlyArray<string> = ["password", "token", "secret", "apiKey", "authorization"]

const decodeServers = (v: unknown): Result.Result<ReadonlyArray<string>, string> => {
  if (typeof v === "string") return parseServers(v)
  if (!Array.isArray(v)) return Result.fail("not a list of server URLs")
  const out: Array<string> = []
  for (const entry of v) {
    if (typeof entry !== "string") return Result.fail("not a list of server URLs")
    const server = parseServer(entry)
    if (Result.isFailure(server)) return Result.fail(`entry "${redactUrlCredentials(entry)}": ${server.failure}`)
    out.push(server.success)
  }
  return Result.succeed(out)
}

const servers: Spec<ReadonlyArray<string>> = {
  name: "MSGSYS_NATS_URL",
  path: "nats.servers",
  default: "(unset: msgsys dev starts an embedded nats-server)",
  description: "NATS servers to connect to; unset means the embedded server",
  accepted: "comma-separated nats://host:port or tls://host:port URLs (a bare host:port means nats://host:port); " +
    "no credentials in the URL (use MSGSYS_NATS_USER/PASSWORD, TOKEN, NKEY_SEED or CREDS)",
  secret: false,
  fallback: [],
  fromString: parseServers,
  fromValue: decodeServers,
  show: redactUrlCredentials
}

const NKEY_USER_SEED = /^SU[A-Z2-7]+$/

const PREFIX = /^[a-z0-9_-]+$/i

const decodePoolList = (v: unknown): Result.Result<ReadonlyArray<PoolBudget>, string> => {
  if (typeof v === "string") return parsePools(v)
  if (Array.isArray(v)) {
    if (!v.every((p) => Predicate.isObject(p) && typeof p.name === "string" && typeof p.concurrency === "number")) {
      return Result.fail("not a list of { name, concurrency }")
    }
    return checkPools(v as ReadonlyArray<PoolBudget>)
  }
  if (Predicate.isObject(v)) {
    const entries = Object.entries(v)
    if (!entries.every(([, c]) => typeof c === "number")) return Result.fail("not a record of pool name to concurrency")
    return checkPools(entries.map(([name, concurrency]) => ({ name, concurrency: concurrency as number })))
  }
  return Result.fail("not a pool list")
}

const pools: Spec<ReadonlyArray<PoolBudget>> = {
  name: "MSGSYS_POOLS",
  path: "pools",
  default: "fast=32,slow=4",
  description: "Concurrency budget per pool; fast and slow always exist, this list adds pools or resizes them",
  accepted: `comma-separated name=concurrency pairs such as "fast=32,slow=4,reports=2" ` +
    "(names of A-Z a-z 0-9 _ -, concurrency an integer of at least 1)",
  secret: false,
  fallback: defaultPools,
  fromString: (raw) => Result.map(parsePools(raw), (p) => mergePools(defaultPools, p)),
  fromValue: (v) => Result.map(decodePoolList(v), (p) => mergePools(defaultPools, p))
}

const decodeFieldList = (v: unknown): Result.Result<ReadonlyArray<string>, string> => {
  const list = typeof v === "string"
    ? parseList(v)
    : Array.isArray(v) && v.every((f) => typeof f === "string")
    ? v.map((f) => f.trim()).filter((f) => f !== "")
    : undefined
  if (list === undefined) return Result.fail("not a list of field names")
  return list.length === 0 ? Result.fail("no field name in the list") : Result.succeed(list)
}

const auditRedactFields: Spec<ReadonlyArray<string>> = {
  name: "MSGSYS_AUDIT_REDACT",
  path: "auditRedactFields",
  default: defaultRedactFields.join(","),
  description: "Payload fields masked in audit records when MSGSYS_AUDIT_PAYLOAD=redacted",
  accepted: "comma-separated field names such as \"password,token,ssn\"",
  secret: false,
  fallback: defaultRedactFields,
  fromString: decodeFieldList,
  fromValue: decodeFieldList
}

const retentionDuration = duration({
  name: "MSGSYS_AUDIT_RETENTION",
  path: "auditRetention",
  default: "90 days",
  description: "How long audit records are kept before automatic pruning; \"off\" keeps them for ever"
}, Duration.days(90), "1 second", "of at least 1 second")

const decodeRetention = (v: unknown): Result.Result<Option.Option<Duration.Duration>, string> =>
  typeof v === "string" && v.trim().toLowerCase() === "off"
    ? Result.succeed(Option.none())
    : Option.isOption(v)
    ? Option.isNone(v) ? Result.succeed(Option.none()) : Result.map(retentionDuration.fromValue(v.value), Option.some)
    : Result.map(retentionDuration.fromValue(v), Option.some)

const auditRetention: Spec<Option.Option<Duration.Duration>> = {
  ...retentionDuration,
  accepted: `"off", or ${retentionDuration.accepted}`,
  fallback: Option.some(Duration.days(90)),
  fromString: decodeRetention,
  fromValue: decodeRetention
}

/**
 * Every variable, by field. The order here is the order of `variables` and of reported problems.
 * @category catalogue @since 0.1.0
 */
export const specs = {
  servers,
  user: optional(text({
    name: "MSGSYS_NATS_USER",
    path: "nats.user",
    default: "(unset)",
    description: "NATS user name; needs MSGSYS_NATS_PASSWORD"
  }, "")),
  password: secret({
    name: "MSGSYS_NATS_PASSWORD",
    path: "nats.password",
    default: "(unset)",
    description: "NATS password (secret); needs MSGSYS_NATS_USER"
  }),
  token: secret({
    name: "MSGSYS_NATS_TOKEN",
    path: "nats.token",
    default: "(unset)",
    description: "NATS auth token (secret); not together with user/password, nkey or creds"
  }),
  nkeySeed: secret({
    name: "MSGSYS_NATS_NKEY_SEED",
    path: "nats.nkeySeed",
    default: "(unset)",
    description: "NATS user NKey seed (secret), starts with SU",
    accepted: "a user NKey seed: \"SU\" followed by upper-case base32 (A-Z, 2-7), as made by `nsc` or `nk -gen user`"
  }, (s) => NKEY_USER_SEED.test(s) ? undefined : "not a user NKey seed (it must start with \"SU\")", { trim: true }),
  credsFile: optional(text({
    name: "MSGSYS_NATS_CREDS",
    path: "nats.credsFile",
    default: "(unset)",
    description: "Path of a NATS .creds file (JWT and NKey seed)",
    accepted: "a file path"
  }, "")),
  tlsCa: optional(text({
    name: "MSGSYS_NATS_TLS_CA",
    path: "nats.tls.ca",
    default: "(unset: system CAs)",
    description: "PEM file of the CA that signed the server certificate",
    accepted: "a file path"
  }, "")),
  tlsCert: optional(text({
    name: "MSGSYS_NATS_TLS_CERT",
    path: "nats.tls.cert",
    default: "(unset)",
    description: "PEM client certificate for mutual TLS; needs MSGSYS_NATS_TLS_KEY",
    accepted: "a file path"
  }, "")),
  tlsKey: optional(text({
    name: "MSGSYS_NATS_TLS_KEY",
    path: "nats.tls.key",
    default: "(unset)",
    description: "PEM private key of the client certificate; needs MSGSYS_NATS_TLS_CERT",
    accepted: "a file path"
  }, "")),
  connectTimeout: duration({
    name: "MSGSYS_NATS_CONNECT_TIMEOUT",
    path: "nats.connectTimeout",
    default: "5 seconds",
    description: "Time allowed for each connection attempt"
  }, Duration.seconds(5), "1 millis", "greater than 0"),
  connectAttempts: integer({
    name: "MSGSYS_NATS_CONNECT_ATTEMPTS",
    path: "nats.connectAttempts",
    default: "3",
    description: "Initial connection attempts before giving up, MSGSYS_NATS_RECONNECT_WAIT apart",
    accepted: "an integer of at least 1"
  }, 3, { min: 1 }),
  reconnectWait: duration({
    name: "MSGSYS_NATS_RECONNECT_WAIT",
    path: "nats.reconnectWait",
    default: "2 seconds",
    description: "Pause between reconnection attempts"
  }, Duration.seconds(2), "1 millis", "greater than 0"),
  maxReconnectAttempts: integer({
    name: "MSGSYS_NATS_RECONNECT_ATTEMPTS",
    path: "nats.maxReconnectAttempts",
    default: "-1",
    description: "Reconnection attempts after a lost connection; -1 retries for ever",
    accepted: "an integer of at least -1 (-1 = for ever, 0 = never reconnect)"
  }, -1, { min: -1 }),
  name: text({
    name: "MSGSYS_NATS_NAME",
    path: "nats.name",
    default: "msgsys",
    description: "Connection name shown by the NATS server (connz, logs)"
  }, "msgsys"),
  streamPrefix: text({
    name: "MSGSYS_STREAM_PREFIX",
    path: "streamPrefix",
    default: "MSGSYS",
    description: "Prefix of every stream, consumer and KV bucket name; separates installations on one server",
    accepted: "letters, digits, _ and - only (it is part of stream names), such as MSGSYS or ACME_PROD"
  }, "MSGSYS", (s) => PREFIX.test(s) ? undefined : "has characters not allowed in a stream name"),
  dataDir: text({
    name: "MSGSYS_DATA_DIR",
    path: "dataDir",
    default: ".msgsys",
    description: "Directory for the SQLite file and the embedded server's store",
    accepted: "a directory path"
  }, ".msgsys"),
  sqlitePath: optional(text({
    name: "MSGSYS_SQLITE_PATH",
    path: "sqlitePath",
    default: "<MSGSYS_DATA_DIR>/msgsys.sqlite",
    description: "SQLite file for the audit log and idempotency keys",
    accepted: "a file path (or :memory:)"
  }, "")),
  sqliteSynchronous: literal({
    name: "MSGSYS_SQLITE_SYNCHRONOUS",
    path: "sqliteSynchronous",
    default: "NORMAL",
    description: "SQLite synchronous mode; FULL survives power loss, at about half the write speed"
  }, ["NORMAL", "FULL"], "NORMAL"),
  httpPort: integer({
    name: "MSGSYS_HTTP_PORT",
    path: "httpPort",
    default: "7777",
    description: "Port of /healthz, /readyz, /metrics and the dashboard; 0 disables HTTP",
    accepted: "an integer port 0-65535 (0 disables HTTP)"
  }, 7777, { min: 0, max: 65535 }),
  logLevel: literal({
    name: "MSGSYS_LOG_LEVEL",
    path: "logLevel",
    default: "Info",
    description: "Lowest level logged"
  }, ["Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"], "Info", { warning: "Warn", off: "None" }),
  logFormat: literal({
    name: "MSGSYS_LOG_FORMAT",
    path: "logFormat",
    default: "pretty",
    description: "Log line format"
  }, ["pretty", "json", "logfmt"], "pretty"),
  ackWait: duration({
    name: "MSGSYS_ACK_WAIT",
    path: "ackWait",
    default: "30 seconds",
    description: "How long a message may go without an ack or progress before redelivery (per actor overridable)"
  }, Duration.seconds(30), "1 second", "of at least 1 second"),
  shutdownGrace: duration({
    name: "MSGSYS_SHUTDOWN_GRACE",
    path: "shutdownGrace",
    default: "30 seconds",
    description: "On SIGTERM/SIGINT, how long in-flight work may run before it is nak'ed"
  }, Duration.seconds(30), 0, "of 0 or more"),
  resultTtl: duration({
    name: "MSGSYS_RESULT_TTL",
    path: "resultTtl",
    default: "7 days",
    description: "How long task status and results are kept"
  }, Duration.days(7), "1 second", "of at least 1 second"),
  sweepInterval: duration({
    name: "MSGSYS_SWEEP_INTERVAL",
    path: "sweepInterval",
    default: "1 minute",
    description: "How often a worker removes settled messages a crashed nats-server 2.9 left in its task streams"
  }, Duration.minutes(1), "1 second", "of at least 1 second"),
  pools,
  idempotencyStore: literal({
    name: "MSGSYS_IDEMPOTENCY_STORE",
    path: "idempotencyStore",
    default: "sqlite",
    description: "Where idempotency keys live: sqlite (one host) or kv (NATS KV, across hosts)"
  }, ["sqlite", "kv"], "sqlite"),
  idempotencyRetention: duration({
    name: "MSGSYS_IDEMPOTENCY_RETENTION",
    path: "idempotencyRetention",
    default: "7 days",
    description: "How long a finished key (and its stored outcome) is remembered"
  }, Duration.days(7), "1 second", "of at least 1 second"),
  auditPayload: literal({
    name: "MSGSYS_AUDIT_PAYLOAD",
    path: "auditPayload",
    default: "redacted",
    description: "Payloads in audit records: off, redacted (MSGSYS_AUDIT_REDACT fields masked) or full"
  }, ["off", "redacted", "full"], "redacted"),
  auditRedactFields,
  auditRetention
} as const

/** The specs as a list, in catalogue order. */
export const all: ReadonlyArray<Spec<unknown>> = Object.values(specs) as ReadonlyArray<Spec<unknown>>
