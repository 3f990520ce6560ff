/**
 * The msgsys configuration: every `MSGSYS_*` variable as an Effect `Config`, read from the
 * environment (constant case: `httpPort` is `MSGSYS_HTTP_PORT`) or from an object of programmatic
 * settings. A bad deployment gets the complete list of what to fix, one line per variable
 * (guarantee 8), never the first problem only; secrets stay `Redacted` and are never printed.
 * @since 0.1.0
 */
import { Config, ConfigProvider, Context, Data, Duration, Effect, Layer, Option, Predicate, Redacted, Result } from "effect"
import { Schema, SchemaIssue, SchemaTransformation, String as Str } from "effect"
import { join } from "node:path"
import * as Parse from "./internal/parse.ts"

export {
  /**
   * Parses "2 seconds", "500 millis", "2s", "500ms", "5m", "1h", "7d", "1h30m" or an integer of
   * milliseconds; `None` if it is none of those.
   * @category parsers @since 0.1.0
   */
  parseDuration
} from "./internal/parse.ts"

/** Client TLS files (paths). @category models @since 0.1.0 */
export interface TlsSettings {
  readonly ca: Option.Option<string>
  readonly cert: Option.Option<string>
  readonly key: Option.Option<string>
}

/** How to reach NATS. @category models @since 0.1.0 */
export interface NatsSettings {
  /** Normalised `nats://` / `tls://` URLs; empty means "use the embedded server". */
  readonly servers: ReadonlyArray<string>
  readonly user: Option.Option<string>
  readonly password: Option.Option<Redacted.Redacted<string>>
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly nkeySeed: Option.Option<Redacted.Redacted<string>>
  readonly credsFile: Option.Option<string>
  readonly tls: Option.Option<TlsSettings>
  readonly connectTimeout: Duration.Duration
  /** Initial connection tries before giving up. */
  readonly connectAttempts: number
  readonly reconnectWait: Duration.Duration
  /** -1 reconnects for ever. */
  readonly maxReconnectAttempts: number
  readonly name: string
}

/** @category models @since 0.1.0 */
export type LogLevel = "Trace" | "Debug" | "Info" | "Warn" | "Error" | "Fatal" | "None"

// Every dead-letter reason but poison. Listed here rather than read from dlq/DeadLetter, because
// config sits below the folders it configures; DeadLetter fails to compile if the two disagree.
const retriedReasons = ["exhausted", "permanent", "unroutable", "max_deliveries"] as const

/** A dead-letter reason the DLQ worker can retry: any but poison. @category models @since 0.1.0 */
export type RetriedReason = typeof retriedReasons[number]

/** Everything a msgsys process is configured with. @category models @since 0.1.0 */
export interface MsgsysSettings {
  readonly nats: NatsSettings
  /** Part of every stream, consumer and bucket name: `[A-Za-z0-9_-]+`. */
  readonly streamPrefix: string
  readonly dataDir: string
  readonly sqlitePath: string
  readonly sqliteSynchronous: "NORMAL" | "FULL"
  /** 0 disables HTTP. */
  readonly httpPort: number
  /** Address the HTTP port listens on: `0.0.0.0` every interface, `127.0.0.1` this machine only. */
  readonly httpHost: string
  readonly logLevel: LogLevel
  /** `auto`: pretty when stderr is a terminal, JSON otherwise (a service manager, a container, a pipe). */
  readonly logFormat: "auto" | "pretty" | "json" | "logfmt"
  /**
   * Where spans go over OTLP/HTTP: a base URL (`http://collector:4318`, spans are posted to
   * `/v1/traces` under it), or "off". `None`: the standard `OTEL_EXPORTER_OTLP_*` variables decide.
   */
  readonly otlpEndpoint: Option.Option<string>
  readonly ackWait: Duration.Duration
  readonly shutdownGrace: Duration.Duration
  readonly resultTtl: Duration.Duration
  /** How often a worker removes settled messages a crashed nats-server 2.9 left in its task streams. */
  readonly sweepInterval: Duration.Duration
  /** How long an events stream keeps events (`None`: until another limit). */
  readonly eventsMaxAge: Option.Option<Duration.Duration>
  /** Always holds `fast` and `slow`. */
  readonly pools: ReadonlyArray<{ readonly name: string; readonly concurrency: number }>
  readonly idempotencyStore: "sqlite" | "kv"
  readonly idempotencyRetention: Duration.Duration
  readonly auditPayload: "off" | "redacted" | "full"
  readonly auditRedactFields: ReadonlyArray<string>
  /** `None`: never pruned. */
  readonly auditRetention: Option.Option<Duration.Duration>
  /** Bytes the dead-letter stream may hold; when full it refuses new letters. `None`: unbounded. */
  readonly dlqMaxBytes: Option.Option<number>
  /** How long dead letters are kept. `None`: for ever. */
  readonly dlqMaxAge: Option.Option<Duration.Duration>
  /** Bytes the results bucket may hold; when full, writes of new keys fail. `None`: unbounded. */
  readonly resultsMaxBytes: Option.Option<number>
  /** Whether `msgsys worker` (and `App.layer`) also runs the DLQ worker. */
  readonly dlqWorker: boolean
  /** Replays the DLQ worker makes of a dead task before storing it as exhausted; 0: none. */
  readonly dlqRetryAttempts: number
  /** The DLQ worker's first wait after a letter arrives; each retry waits twice as long, up to the cap. */
  readonly dlqRetryBase: Duration.Duration
  /** The DLQ worker's longest wait between retries. */
  readonly dlqRetryCap: Duration.Duration
  /** The dead-letter reasons the DLQ worker retries; letters of other reasons go straight to exhausted. */
  readonly dlqRetryReasons: ReadonlyArray<RetriedReason>
}

/** @category services @since 0.1.0 */
export class MsgsysConfig extends Context.Service<MsgsysConfig, MsgsysSettings>()("msgsys/MsgsysConfig") {}

/**
 * One bad variable. `value` is what was given (`<redacted>` for secrets, `undefined` when the
 * problem is that it is missing).
 * @category models @since 0.1.0
 */
export interface ConfigProblem {
  readonly variable: string
  readonly value: string | undefined
  readonly problem: string
  readonly accepted: string
}

const REDACTED = "<redacted>"

/**
 * One line: `MSGSYS_HTTP_PORT="70000": out of range; accepted: an integer port 0-65535 (0 disables HTTP)`.
 * @category formatting @since 0.1.0
 */
export const formatProblem = (p: ConfigProblem): string => {
  const given = p.value === undefined ? " (unset)" : p.value === REDACTED ? `=${REDACTED}` : `=${JSON.stringify(p.value)}`
  return `${p.variable}${given}: ${p.problem}; accepted: ${p.accepted}`
}

/**
 * The configuration is invalid; `problems` lists every bad variable, and the message has one line
 * for each, saying what is accepted.
 * @category errors @since 0.1.0
 */
export class ConfigInvalid extends Data.TaggedError("ConfigInvalid")<{ readonly problems: ReadonlyArray<ConfigProblem> }> {
  override get message() {
    return this.problems.map(formatProblem).join("\n")
  }
}

type DurationInput = Duration.Input | `${number}${"ms" | "s" | "m" | "h" | "d" | "w"}`
type Secret = string | Redacted.Redacted<string> | Option.Option<Redacted.Redacted<string>>
type Optional<A> = A | Option.Option<A>
type AnyCase<L extends string> = L | Lowercase<L> | Uppercase<L>
type Bytes = number | string | Option.Option<number>

/**
 * Programmatic settings for {@link layerFrom}: any field may be left out, plain values stand for
 * `Some`, secrets may be plain strings, durations any `Duration.Input` or short form ("5s"), byte
 * sizes a number or "512MB". A full `MsgsysSettings` is also accepted.
 * @category models @since 0.1.0
 */
export interface Overrides {
  readonly nats?: {
    readonly servers?: ReadonlyArray<string> | string
    readonly user?: Optional<string>
    readonly password?: Secret
    readonly token?: Secret
    readonly nkeySeed?: Secret
    readonly credsFile?: Optional<string>
    readonly tls?: Optional<{
      readonly ca?: Optional<string>
      readonly cert?: Optional<string>
      readonly key?: Optional<string>
    }>
    readonly connectTimeout?: DurationInput
    readonly connectAttempts?: number
    readonly reconnectWait?: DurationInput
    readonly maxReconnectAttempts?: number
    readonly name?: string
  }
  readonly streamPrefix?: string
  readonly dataDir?: string
  /** Default: `<dataDir>/msgsys.sqlite`. */
  readonly sqlitePath?: string
  readonly sqliteSynchronous?: AnyCase<MsgsysSettings["sqliteSynchronous"]>
  readonly httpPort?: number
  readonly httpHost?: string
  readonly logLevel?: AnyCase<LogLevel> | "warning"
  readonly logFormat?: MsgsysSettings["logFormat"]
  readonly otlpEndpoint?: Optional<string>
  readonly ackWait?: DurationInput
  readonly shutdownGrace?: DurationInput
  readonly resultTtl?: DurationInput
  readonly sweepInterval?: DurationInput
  readonly eventsMaxAge?: DurationInput | "off" | Option.Option<Duration.Duration>
  /** Added to (or resizing) the default `fast=32, slow=4`. */
  readonly pools?: ReadonlyArray<Parse.PoolBudget> | Readonly<Record<string, number>> | string
  readonly idempotencyStore?: MsgsysSettings["idempotencyStore"]
  readonly idempotencyRetention?: DurationInput
  readonly auditPayload?: MsgsysSettings["auditPayload"]
  readonly auditRedactFields?: ReadonlyArray<string> | string
  readonly auditRetention?: DurationInput | "off" | Option.Option<Duration.Duration>
  readonly dlqMaxBytes?: Bytes | "off"
  readonly dlqMaxAge?: DurationInput | "off" | Option.Option<Duration.Duration>
  readonly resultsMaxBytes?: Bytes | "off"
  readonly dlqWorker?: boolean | "on" | "off"
  readonly dlqRetryAttempts?: number
  readonly dlqRetryBase?: DurationInput
  readonly dlqRetryCap?: DurationInput
  readonly dlqRetryReasons?: ReadonlyArray<MsgsysSettings["dlqRetryReasons"][number]> | string
}

// ---------------------------------------------------------------------------------------------
// kinds of value: how each is decoded from text (naming the problem), printed, and described

interface Kind<A> {
  readonly type: Schema.Codec<A>
  /** The value, or what is wrong with the (trimmed) text in a few words. */
  readonly parse: (text: string) => Result.Result<A, string>
  readonly format: (a: A) => string
  readonly accepted: string
}

const kind = <A>(type: Schema.Codec<A>, parse: Kind<A>["parse"], accepted: string, format: (a: A) => string = String): Kind<A> =>
  ({ type, parse, accepted, format })

/** A variable's text decoded by `parse`; a bad text fails with the problem `parse` named. */
const schemaOf = <A>(k: Kind<A>): Schema.Codec<A, string> =>
  Schema.String.pipe(Schema.decodeTo(
    k.type,
    SchemaTransformation.transformEffect({
      decode: (text: string) =>
        Result.match(k.parse(text.trim()), {
          onSuccess: Effect.succeed,
          onFailure: (problem) => Effect.fail(new SchemaIssue.InvalidValue({ message: problem }, text))
        }),
      encode: (a: A) => Effect.succeed(k.format(a))
    })
  ))

const orFail = <A>(o: Option.Option<A>, problem: string) => Result.fromOption(o, () => problem)

const text = (check: (s: string) => string | undefined = () => undefined, accepted = "any non-empty text") =>
  kind(Schema.String, (s) => Option.match(Option.fromUndefinedOr(check(s)), { onNone: () => Result.succeed(s), onSome: Result.fail }), accepted)

const path = (what = "a file path") => text(undefined, what)

const integer = (min: number, max: number, accepted: string) =>
  kind(Schema.Number, (s) =>
    Result.flatMap(orFail(Parse.parseInteger(s), "not an integer"), (n) =>
      n < min || n > max ? Result.fail("out of range") : Result.succeed(n)), accepted)

const durationExamples =
  `"2 seconds", "500 millis", "1 minute" (short forms 2s, 500ms, 5m, 1h, 7d also work; a plain integer is milliseconds)`

/**
 * A duration in short form ("5s", "1h30m", "500ms"), as Effect writes it ("2 seconds") or as an
 * integer of milliseconds; encoded as `Duration.format` prints it.
 * @category schemas @since 0.1.0
 */
export const ShortDuration: Schema.Codec<Duration.Duration, string> = schemaOf(
  kind(Schema.Duration, (s) => orFail(Parse.parseDuration(s), "not a duration"), `a duration such as ${durationExamples}`, Duration.format)
)

/** A finite duration of at least `min`; `constraint` says so in words. */
const duration = (min: Duration.Duration, constraint: string) =>
  kind(Schema.Duration, (s) =>
    Result.flatMap(orFail(Parse.parseDuration(s), "not a duration"), (d) =>
      Duration.isNegative(d)
        ? Result.fail("negative")
        : Duration.isLessThan(d, min)
        ? Result.fail(Duration.isZero(d) ? "zero" : `shorter than ${Duration.format(min)}`)
        : Result.succeed(d)), `a duration ${constraint} such as ${durationExamples}`, Duration.format)

/** One of `values`, any case; `aliases` map other (lower-case) spellings to a value. */
const oneOf = <const L extends string>(values: ReadonlyArray<L>, aliases: Readonly<Record<string, L>> = {}) => {
  const table = new Map<string, L>([...values.map((v) => [v.toLowerCase(), v] as const), ...Object.entries(aliases)])
  return kind(
    Schema.Literals(values) as unknown as Schema.Codec<L>,
    (s) => orFail(Option.fromUndefinedOr(table.get(s.toLowerCase())), `not one of ${values.join(", ")}`),
    `one of ${values.join(", ")} (any case)`
  )
}

const list = (accepted: string) =>
  kind(Schema.Array(Schema.String), (s) => {
    const items = Parse.parseList(s)
    return items.length === 0 ? Result.fail("no field name in the list") : Result.succeed(items)
  }, accepted, (xs) => xs.join(","))

/** "off" (`None`) or a value of `k`. */
const offOr = <A>(k: Kind<A>): Kind<Option.Option<A>> =>
  kind(
    Schema.Option(k.type),
    (s) => s.toLowerCase() === "off" ? Result.succeed(Option.none()) : Result.map(k.parse(s), Option.some),
    `"off", or ${k.accepted}`,
    Option.match({ onNone: () => "off", onSome: k.format })
  )

const bytes = kind(Schema.Number, (s) =>
  Result.flatMap(orFail(Parse.parseBytes(s), "not a byte size"), (n) => n > 0 ? Result.succeed(n) : Result.fail("zero")), "a size such as 512MB or 1GiB, or a number of bytes")

const defaultPools: ReadonlyArray<Parse.PoolBudget> = [{ name: "fast", concurrency: 32 }, { name: "slow", concurrency: 4 }]

const pools = kind(
  Schema.Array(Schema.Struct({ name: Schema.String, concurrency: Schema.Number })),
  (s) => Result.map(Parse.parsePools(s), (p) => Parse.mergePools(defaultPools, p)),
  `comma-separated name=concurrency pairs such as "fast=32,slow=4,reports=2" ` +
    "(names of A-Z a-z 0-9 _ -, concurrency an integer of at least 1)",
  (ps) => ps.map((p) => `${p.name}=${p.concurrency}`).join(",")
)

const servers = kind(
  Schema.Array(Schema.String),
  Parse.parseServers,
  "comma-separated nats://host:port or tls://host:port URLs (a bare host:port means nats://host:port); " +
    "no credentials in the URL (use MSGSYS_NATS_USER/PASSWORD, TOKEN, NKEY_SEED or CREDS)",
  (xs) => xs.join(",")
)

// ---------------------------------------------------------------------------------------------
// the variables

interface Var<A> {
  /** Where the value goes in `Overrides` and `MsgsysSettings`, e.g. `nats.tls.cert`. */
  readonly path: string
  readonly default: string
  readonly description: string
  readonly accepted: string
  readonly secret: boolean
  /** Reads programmatic values: a value of the variable's type is written as the variable prints it. */
  readonly schema: Schema.Codec<unknown, string>
  readonly config: (key: string) => Config.Config<A>
  /** How a bad value is shown in an error. */
  readonly show?: (text: string) => string
}

const variable = <A, B>(k: Kind<A>, config: (c: Config.Config<A>) => Config.Config<B>) =>
(path: string, dflt: string, description: string, show?: (text: string) => string): Var<B> => {
  const schema = schemaOf(k)
  const read = (key: string) => config(Config.schema(schema, key))
  return { path, default: dflt, description, accepted: k.accepted, secret: false, schema, config: read, ...(show ? { show } : {}) }
}
const setting = <A>(k: Kind<A>, fallback: A) => variable(k, Config.withDefault(fallback))
const optional = <A>(k: Kind<A>) => variable(k, Config.option)

/** Passwords and tokens are taken verbatim (a space may belong to them); a checked secret is trimmed. */
const secret = (checked?: Kind<string>) => (path: string, description: string): Var<Option.Option<Redacted.Redacted<string>>> => ({
  path,
  default: "unset",
  description,
  accepted: checked?.accepted ?? "any non-empty text",
  secret: true,
  schema: Schema.String,
  config: (key) => Config.option(checked ? Config.schema(schemaOf(checked), key).pipe(Config.map(Redacted.make)) : Config.Redacted(key))
})

const atLeastOneSecond = duration(Duration.seconds(1), "of at least 1 second")
const positiveDuration = duration(Duration.millis(1), "greater than 0")
const nkeySeed = text(
  (s) => /^SU[A-Z2-7]+$/.test(s) ? undefined : "not a user NKey seed (it must start with \"SU\")",
  "a user NKey seed: \"SU\" followed by upper-case base32 (A-Z, 2-7), as made by `nsc` or `nk -gen user`"
)
const streamPrefix = text(
  (s) => /^[a-z0-9_-]+$/i.test(s) ? undefined : "has characters not allowed in a stream name",
  "letters, digits, _ and - only (it is part of stream names), such as MSGSYS or ACME_PROD"
)
const httpHost = text(
  (s) => /^[A-Za-z0-9.:_-]+$/.test(s) ? undefined : "is not a host name or IP address",
  "an IP address or host name to listen on, such as 0.0.0.0 (every interface), 127.0.0.1 or ::"
)
const otlpEndpoint = kind(
  Schema.String,
  (s) => {
    if (s.toLowerCase() === "off") return Result.succeed("off")
    let url: URL
    try {
      url = new URL(s)
    } catch {
      return Result.fail("not a URL")
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return Result.fail(`scheme ${url.protocol.slice(0, -1)} is not http or https`)
    // a token goes in OTEL_EXPORTER_OTLP_HEADERS, which is never printed
    if (url.username !== "" || url.password !== "") return Result.fail("credentials in the URL")
    return Result.succeed(s.replace(/\/+$/, ""))
  },
  "an http:// or https:// URL of an OTLP/HTTP receiver such as http://127.0.0.1:4318 (no credentials: put them in " +
    "OTEL_EXPORTER_OTLP_HEADERS), or \"off\""
)
const logLevels = oneOf(["Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"], { warning: "Warn", off: "None" })
const onOff = kind(
  Schema.Boolean,
  (s) => {
    const v = s.toLowerCase()
    return ["on", "true", "yes", "1"].includes(v)
      ? Result.succeed(true)
      : ["off", "false", "no", "0"].includes(v)
      ? Result.succeed(false)
      : Result.fail("not on or off")
  },
  "on or off (also true/false, yes/no, 1/0)",
  (b) => (b ? "on" : "off")
)
const dlqReasons = kind(
  Schema.Array(Schema.Literals(retriedReasons)),
  (s) => {
    if (s.toLowerCase() === "none") return Result.succeed([])
    const items = Parse.parseList(s)
    if (items.length === 0) return Result.fail("no reason in the list")
    if (items.includes("poison")) return Result.fail("poison letters cannot be retried: a retry sends the same bad payload")
    const unknown = items.filter((r) => !(retriedReasons as ReadonlyArray<string>).includes(r))
    return unknown.length > 0
      ? Result.fail(`unknown reason ${unknown.map((r) => JSON.stringify(r)).join(", ")}`)
      : Result.succeed(items as ReadonlyArray<RetriedReason>)
  },
  `comma-separated dead-letter reasons out of ${retriedReasons.join(", ")}, or "none"`,
  (xs) => xs.length === 0 ? "none" : xs.join(",")
)
const redactFields = list("comma-separated field names such as \"password,token,ssn\"")
const GiB = 1024 ** 3

/** Every variable, by key: the environment name is `MSGSYS_` and the key in constant case. */
const variablesByKey = {
  natsUrl: setting(servers, [])("nats.servers", "unset: `msgsys dev` starts an embedded nats-server",
    "NATS servers to connect to; unset means the embedded server", Parse.redactUrlCredentials),
  natsUser: optional(text())("nats.user", "unset", "NATS user name; needs MSGSYS_NATS_PASSWORD"),
  natsPassword: secret()("nats.password", "NATS password (secret); needs MSGSYS_NATS_USER"),
  natsToken: secret()("nats.token", "NATS auth token (secret); not together with user/password, nkey or creds"),
  natsNkeySeed: secret(nkeySeed)("nats.nkeySeed", "NATS user NKey seed (secret), starts with SU"),
  natsCreds: optional(path())("nats.credsFile", "unset", "Path of a NATS .creds file (JWT and NKey seed)"),
  natsTlsCa: optional(path())("nats.tls.ca", "unset: system CAs", "PEM file of the CA that signed the server certificate"),
  natsTlsCert: optional(path())("nats.tls.cert", "unset", "PEM client certificate for mutual TLS; needs MSGSYS_NATS_TLS_KEY"),
  natsTlsKey: optional(path())("nats.tls.key", "unset", "PEM private key of the client certificate; needs MSGSYS_NATS_TLS_CERT"),
  natsConnectTimeout: setting(positiveDuration, Duration.seconds(5))("nats.connectTimeout", "5 seconds",
    "Time allowed for each connection attempt"),
  natsConnectAttempts: setting(integer(1, Number.MAX_SAFE_INTEGER, "an integer of at least 1"), 3)("nats.connectAttempts", "3",
    "Initial connection attempts before giving up, MSGSYS_NATS_RECONNECT_WAIT apart"),
  natsReconnectWait: setting(positiveDuration, Duration.seconds(2))("nats.reconnectWait", "2 seconds",
    "Pause between reconnection attempts"),
  natsReconnectAttempts: setting(
    integer(-1, Number.MAX_SAFE_INTEGER, "an integer of at least -1 (-1 = for ever, 0 = never reconnect)"),
    -1
  )("nats.maxReconnectAttempts", "-1", "Reconnection attempts after a lost connection; -1 retries for ever"),
  natsName: setting(text(), "msgsys")("nats.name", "msgsys", "Connection name shown by the NATS server (connz, logs)"),
  streamPrefix: setting(streamPrefix, "MSGSYS")("streamPrefix", "MSGSYS",
    "Prefix of every stream, consumer and KV bucket name; separates installations on one server"),
  dataDir: setting(path("a directory path"), ".msgsys")("dataDir", ".msgsys",
    "Directory for the SQLite file and the embedded server's store"),
  sqlitePath: optional(path("a file path (or :memory:)"))("sqlitePath", "`<MSGSYS_DATA_DIR>/msgsys.sqlite`",
    "SQLite file for the audit log and idempotency keys"),
  sqliteSynchronous: setting(oneOf(["NORMAL", "FULL"]), "NORMAL")("sqliteSynchronous", "NORMAL",
    "SQLite synchronous mode; FULL survives power loss, at about half the write speed"),
  httpPort: setting(integer(0, 65535, "an integer port 0-65535 (0 disables HTTP)"), 7777)("httpPort", "7777",
    "Port of /healthz, /readyz, /metrics and the dashboard; 0 disables HTTP"),
  httpHost: setting(httpHost, "0.0.0.0")("httpHost", "0.0.0.0",
    "Address the HTTP port listens on; the dashboard can replay dead letters and has no login, so use 127.0.0.1 " +
      "(or a proxy with authentication) where others reach the host"),
  logLevel: setting(logLevels, "Info")("logLevel", "Info", "Lowest level logged (logs go to stderr); also warning, off"),
  logFormat: setting(oneOf(["auto", "pretty", "json", "logfmt"]), "auto")("logFormat", "auto",
    "Log line format; auto is pretty when stderr is a terminal and one JSON object a line otherwise (see Logs and traces)"),
  otlpEndpoint: optional(otlpEndpoint)("otlpEndpoint", "unset: `OTEL_EXPORTER_OTLP_ENDPOINT`, else off",
    "OTLP/HTTP receiver spans are exported to (publish, handle, retry, dead-letter; posted to `/v1/traces` under it); " +
      "\"off\" exports none even when the OTEL_EXPORTER_OTLP_* variables are set (see Logs and traces)", Parse.redactUrlCredentials),
  ackWait: setting(atLeastOneSecond, Duration.seconds(30))("ackWait", "30 seconds",
    "How long a message may go without an ack or progress before redelivery (an actor can override it)"),
  shutdownGrace: setting(duration(Duration.zero, "of 0 or more"), Duration.seconds(30))("shutdownGrace", "30 seconds",
    "On SIGTERM/SIGINT, how long in-flight work may run before it is nak'ed"),
  resultTtl: setting(atLeastOneSecond, Duration.days(7))("resultTtl", "7 days", "How long task status and results are kept"),
  sweepInterval: setting(atLeastOneSecond, Duration.minutes(1))("sweepInterval", "1 minute",
    "How often a worker removes settled messages a crashed nats-server 2.9 left in its task streams"),
  eventsMaxAge: setting(offOr(atLeastOneSecond), Option.some(Duration.days(7)))("eventsMaxAge", "7 days",
    "How long events streams keep events (every group reads them within it; a new group can replay that far back); \"off\" keeps them"),
  pools: setting(pools, defaultPools)("pools", "fast=32,slow=4",
    "Concurrency budget per pool; fast and slow always exist, this list adds pools or resizes them"),
  idempotencyStore: setting(oneOf(["sqlite", "kv"]), "sqlite")("idempotencyStore", "sqlite",
    "Where idempotency keys live: sqlite (one host) or kv (NATS KV, across hosts)"),
  idempotencyRetention: setting(atLeastOneSecond, Duration.days(7))("idempotencyRetention", "7 days",
    "How long a finished key (and its stored outcome) is remembered"),
  auditPayload: setting(oneOf(["off", "redacted", "full"]), "redacted")("auditPayload", "redacted",
    "Payloads in audit records: off, redacted (MSGSYS_AUDIT_REDACT fields masked) or full"),
  auditRedact: setting(redactFields, ["password", "token", "secret", "apiKey", "authorization"])("auditRedactFields",
    "password,token,secret,apiKey,authorization", "Payload fields masked in audit records when MSGSYS_AUDIT_PAYLOAD=redacted"),
  auditRetention: setting(offOr(atLeastOneSecond), Option.some(Duration.days(90)))("auditRetention", "90 days",
    "How long audit records are kept before automatic pruning; \"off\" keeps them for ever"),
  dlqMaxBytes: setting(offOr(bytes), Option.some(GiB))("dlqMaxBytes", "1GiB",
    "Bytes the dead-letter stream may hold; when full it refuses new letters, which stay in their task stream " +
      "(it never drops one). Applied on nats-server 2.10.5 and later only (see Dead letters); \"off\" for no bound"),
  dlqMaxAge: setting(offOr(atLeastOneSecond), Option.none())("dlqMaxAge", "off",
    "How long dead letters are kept; \"off\" keeps them until replayed or deleted"),
  resultsMaxBytes: setting(offOr(bytes), Option.none())("resultsMaxBytes", "off",
    "Bytes the results bucket may hold (JetStream reserves them on the server); when full, storing the status of a " +
      "new task fails (see Results); \"off\": bounded by MSGSYS_RESULT_TTL only"),
  dlqWorker: setting(onOff, true)("dlqWorker", "on",
    "Whether `msgsys worker` also runs the DLQ worker, which retries dead letters with long backoff (see Dead letters)"),
  dlqRetryAttempts: setting(integer(0, 1000, "an integer 0-1000"), 5)("dlqRetryAttempts", "5",
    "Times the DLQ worker replays a dead task before storing it as exhausted; 0 stores every letter as exhausted at once"),
  dlqRetryBase: setting(positiveDuration, Duration.minutes(1))("dlqRetryBase", "1 minute",
    "The DLQ worker's wait before its first retry of a letter; it doubles for each retry, up to MSGSYS_DLQ_RETRY_CAP"),
  dlqRetryCap: setting(positiveDuration, Duration.minutes(15))("dlqRetryCap", "15 minutes",
    "The DLQ worker's longest wait between two retries of a letter"),
  dlqRetryReasons: setting(dlqReasons, ["exhausted", "max_deliveries"])("dlqRetryReasons", "exhausted,max_deliveries",
    "Dead-letter reasons the DLQ worker retries; letters of other reasons (always poison) go straight to exhausted")
}

type Values = { readonly [K in keyof typeof variablesByKey]: (typeof variablesByKey)[K] extends Var<infer A> ? A : never }
type Key = keyof Values

const envName = (key: string) => `MSGSYS_${Str.configCase(key)}`
const entries = Object.entries(variablesByKey) as ReadonlyArray<[Key, Var<unknown>]>

// ---------------------------------------------------------------------------------------------
// reading

/** A variable's value or why it is bad: `Config.all` stops at the first error, msgsys reports them all. */
const attempt = <A>(config: Config.Config<A>): Config.Config<Result.Result<A, Config.ConfigError>> =>
  config.pipe(Config.map(Result.succeed), Config.orElse((e) => Config.succeed(Result.fail(e))))

const all = Config.all(Object.fromEntries(entries.map(([key, v]) => [key, attempt(v.config(key))]))) as Config.Config<
  Readonly<Record<Key, Result.Result<unknown, Config.ConfigError>>>
>

/** The short text of a config error: the message the parser gave, or the provider's failure. */
const problemOf = (e: Config.ConfigError) =>
  e.cause._tag === "SchemaError"
    ? SchemaIssue.makeFormatterStandardSchemaV1()(e.cause.issue).issues[0]?.message ?? e.message
    : `could not be read: ${e.cause.message}`

/** Blank counts as unset, whatever the source. */
const blankIsUnset = (provider: ConfigProvider.ConfigProvider) =>
  ConfigProvider.make((p) =>
    Effect.map(provider.load(p), (node) => node?._tag === "Value" && node.value.trim() === "" ? undefined : node)
  )

const assemble = ({ natsTlsCa: ca, natsTlsCert: cert, natsTlsKey: key, ...x }: Values): MsgsysSettings => ({
  nats: {
    servers: x.natsUrl, user: x.natsUser, password: x.natsPassword, token: x.natsToken, nkeySeed: x.natsNkeySeed,
    credsFile: x.natsCreds, tls: [ca, cert, key].some(Option.isSome) ? Option.some({ ca, cert, key }) : Option.none(),
    connectTimeout: x.natsConnectTimeout, connectAttempts: x.natsConnectAttempts, reconnectWait: x.natsReconnectWait,
    maxReconnectAttempts: x.natsReconnectAttempts, name: x.natsName
  },
  streamPrefix: x.streamPrefix, dataDir: x.dataDir, sqliteSynchronous: x.sqliteSynchronous,
  sqlitePath: Option.getOrElse(x.sqlitePath, () => join(x.dataDir, "msgsys.sqlite")),
  httpPort: x.httpPort, httpHost: x.httpHost, logLevel: x.logLevel, logFormat: x.logFormat, otlpEndpoint: x.otlpEndpoint,
  ackWait: x.ackWait, shutdownGrace: x.shutdownGrace, resultTtl: x.resultTtl, sweepInterval: x.sweepInterval, eventsMaxAge: x.eventsMaxAge, pools: x.pools,
  idempotencyStore: x.idempotencyStore, idempotencyRetention: x.idempotencyRetention,
  auditPayload: x.auditPayload, auditRedactFields: x.auditRedact, auditRetention: x.auditRetention,
  dlqMaxBytes: x.dlqMaxBytes, dlqMaxAge: x.dlqMaxAge, resultsMaxBytes: x.resultsMaxBytes,
  dlqWorker: x.dlqWorker, dlqRetryAttempts: x.dlqRetryAttempts, dlqRetryBase: x.dlqRetryBase, dlqRetryCap: x.dlqRetryCap,
  dlqRetryReasons: x.dlqRetryReasons
})

/**
 * Reads every variable through `provider` (keyed by the camelCase keys above), collecting all
 * problems, then checks the combinations: TLS cert and key, user and password, one way to
 * authenticate. `label` names a variable in problems (its env name, or its path in code).
 */
const read = (provider: ConfigProvider.ConfigProvider, label: (key: Key) => string) =>
  Effect.gen(function*() {
    const results = yield* all.parse(blankIsUnset(provider)).pipe(Effect.orDie)
    const given = (key: Key) =>
      provider.load([key]).pipe(Effect.map((n) => n?.value?.trim() || undefined), Effect.orElseSucceed(() => undefined))
    const shown = (key: Key) =>
      Effect.map(given(key), (t) => t === undefined ? undefined : variablesByKey[key].secret ? REDACTED : (variablesByKey[key].show ?? String)(t))

    const problems: Array<ConfigProblem> = []
    const values: Record<string, unknown> = {}
    for (const [key, v] of entries) {
      const r = results[key]
      if (Result.isSuccess(r)) values[key] = r.success
      else problems.push({ variable: label(key), value: yield* shown(key), problem: problemOf(r.failure), accepted: v.accepted })
    }
    const x = values as Values
    const set = (key: Key) => Option.isOption(x[key]) && Option.isSome(x[key] as Option.Option<unknown>)
    const pair = (a: Key, b: Key, what: string) => {
      for (const [has, lacks] of [[a, b], [b, a]] as const) {
        if (!set(has) || set(lacks)) continue
        const accepted = `set ${label(a)} and ${label(b)} together (${what}), or neither`
        problems.push({ variable: label(lacks), value: undefined, problem: `missing while ${label(has)} is set`, accepted })
      }
    }
    pair("natsTlsCert", "natsTlsKey", "client certificate and its private key")
    pair("natsUser", "natsPassword", "user name and password")

    // NATS takes one way to authenticate; a second one given is a mistake, not a fallback
    const methods = [
      [["natsUser", "natsPassword"], `${label("natsUser")}/${label("natsPassword")}`],
      [["natsToken"], label("natsToken")],
      [["natsNkeySeed"], label("natsNkeySeed")],
      [["natsCreds"], label("natsCreds")]
    ] as const
    const chosen = methods.filter(([keys]) => keys.some(set))
    for (const [[key]] of chosen.slice(1)) {
      problems.push({
        variable: label(key),
        value: yield* shown(key),
        problem: `given together with ${chosen[0]![1]}`,
        accepted: `one way to authenticate: ${methods.map(([, name]) => name).join(", or ")}`
      })
    }
    return problems.length > 0 ? yield* new ConfigInvalid({ problems }) : assemble(x)
  })

/** `MSGSYS_*` names read as the camelCase keys of the variables. */
const fromEnvNames = (provider: ConfigProvider.ConfigProvider) =>
  provider.pipe(ConfigProvider.constantCase, ConfigProvider.nested("MSGSYS"))

/**
 * Decodes settings from an environment map (pure: nothing else is read). Every bad variable is
 * reported in one `ConfigInvalid`. An empty or blank value counts as unset.
 * @category constructors @since 0.1.0
 */
export const load = (env: Readonly<Record<string, string | undefined>>): Effect.Effect<MsgsysSettings, ConfigInvalid> =>
  read(fromEnvNames(ConfigProvider.fromEnvRecord({ ...env })), envName)

/** Reads `a.b.c` from nested overrides, looking through `Option`s on the way. */
const at = (root: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>((node, key) => {
    const inner = Option.isOption(node) ? Option.getOrUndefined(node) : node
    return Predicate.isObject(inner) ? (inner as Record<string, unknown>)[key] : undefined
  }, root)

/**
 * The text a variable reads for a programmatic value: as the variable prints a value of its type
 * (a `Duration`, a pool list, `None` of "off"), else as given, so a bad value is reported as
 * written.
 */
const toText = (v: Var<unknown>, value: unknown): string | undefined => {
  if (value === undefined || value === null) return undefined
  if (typeof value === "string") return value
  if (Redacted.isRedacted(value)) return String(Redacted.value(value))
  const encode = Schema.encodeUnknownOption(v.schema)
  // any `Duration.Input` of a duration variable: 1500, [5, 0], { seconds: 5 }
  const asDuration = Option.isOption(value) ? [] : Option.toArray(Duration.fromInput(value as Duration.Input))
  for (const candidate of [value, Option.some(value), ...asDuration, ...asDuration.map(Option.some)]) {
    const text = encode(candidate)
    if (Option.isSome(text)) return text.value
  }
  if (Option.isOption(value)) return Option.match(value, { onNone: () => undefined, onSome: (inner) => toText(v, inner) })
  if (Array.isArray(value)) return value.join(",")
  return Predicate.isObject(value) ? Object.entries(value).map(([k, x]) => `${k}=${x}`).join(",") : String(value)
}

/**
 * Settings from the defaults with `overrides` laid over them, checked like the environment;
 * problems are named by their path (`nats.tls.key`).
 * @category constructors @since 0.1.0
 */
export const make = (overrides: Overrides): Effect.Effect<MsgsysSettings, ConfigInvalid> =>
  Effect.suspend(() => {
    const given = entries.flatMap(([key, v]) => {
      const text = toText(v, at(overrides, v.path))
      return text === undefined ? [] : [[key, text] as const]
    })
    return read(ConfigProvider.fromUnknown(Object.fromEntries(given)), (key) => variablesByKey[key].path)
  })

/**
 * The settings with nothing configured.
 * @category constructors @since 0.1.0
 */
export const defaults: MsgsysSettings = Effect.runSync(load({}))

/**
 * Settings from the current `ConfigProvider` (the process environment unless one is provided;
 * Bun loads `.env` into it), read by their `MSGSYS_*` names.
 * @category layers @since 0.1.0
 */
export const layer: Layer.Layer<MsgsysConfig, ConfigInvalid> = Layer.effect(
  MsgsysConfig,
  Effect.gen(function*() {
    return yield* read(fromEnvNames(yield* ConfigProvider.ConfigProvider), envName)
  }).pipe(Effect.withSpan("MsgsysConfig.layer"))
)

/**
 * Defaults plus programmatic `overrides`, checked; the environment is not read.
 * @category layers @since 0.1.0
 */
export const layerFrom = (overrides: Overrides): Layer.Layer<MsgsysConfig, ConfigInvalid> =>
  Layer.effect(MsgsysConfig, make(overrides))

/** @category models @since 0.1.0 */
export interface Variable {
  readonly name: string
  readonly default: string
  readonly description: string
  readonly accepted: string
  readonly secret: boolean
}

/**
 * Every variable msgsys reads, with its default and what it accepts: the README's table and
 * `unknownVariables` come from it.
 * @category catalogue @since 0.1.0
 */
export const variables: ReadonlyArray<Variable> = entries.map(([key, v]) => ({
  name: envName(key),
  default: v.default,
  description: v.description,
  accepted: v.accepted,
  secret: v.secret
}))

/**
 * `MSGSYS_*` names in `env` that msgsys does not read, with a suggestion when one is close:
 * a misspelt variable otherwise silently falls back to its default.
 * @category diagnostics @since 0.1.0
 */
export const unknownVariables = (env: Readonly<Record<string, string | undefined>>): ReadonlyArray<string> => {
  const known = variables.map((v) => v.name)
  return Object.keys(env).filter((k) => k.startsWith("MSGSYS_") && !known.includes(k)).sort().map((k) => {
    const [nearest] = known.map((n) => [n, Parse.distance(k, n)] as const).sort((a, b) => a[1] - b[1])
    return nearest !== undefined && nearest[1] <= 3
      ? `${k} is not a msgsys variable; did you mean ${nearest[0]}?`
      : `${k} is not a msgsys variable`
  })
}

/**
 * Logs a warning for each `MSGSYS_*` name in `env` msgsys does not read (see `unknownVariables`).
 * @category diagnostics @since 0.1.0
 */
export const warnUnknownVariables = (env: Readonly<Record<string, string | undefined>>): Effect.Effect<void> =>
  Effect.forEach(unknownVariables(env), (line) => Effect.logWarning(line), { discard: true })

/**
 * One line per setting (`nats.servers nats://a:4222`), for `msgsys status` and banners. Secrets
 * show as `<redacted>`.
 * @category formatting @since 0.1.0
 */
export const describe = (s: MsgsysSettings): string =>
  entries.map(([, v]) => {
    const value = at(s, v.path)
    const text = v.secret ? (Option.isOption(value) && Option.isSome(value) ? REDACTED : undefined) : toText(v, value)
    return `${v.path} ${text || "(unset)"}`
  }).join("\n")
