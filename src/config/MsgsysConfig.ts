/**
 * The msgsys configuration: every `MSGSYS_*` variable as an Effect `Config`, read from the environment or from an object
 * of programmatic settings. `spec` defines each variable once: how its text is read, its default, its README line and the
 * settings field it fills. A bad deployment gets the complete list of what to fix, one line per variable (guarantee 8),
 * never the first problem only; secrets stay `Redacted` and are never printed.
 * @since 0.1.0
 */
import { Config, ConfigProvider, Context, Data, Duration, Effect, Layer, Option, Predicate, Redacted, Result } from "effect"
import { Schema, SchemaIssue, SchemaTransformation, String as Str } from "effect"
import { join } from "node:path"
import * as Parse from "./internal/parse.ts"

/** @category parsers @since 0.1.0 */
export { parseDuration } from "./internal/parse.ts"

/**
 * A duration in short form ("5s", "1h30m", "500ms"), as Effect writes it ("2 seconds") or as an integer of milliseconds;
 * encoded as `Duration.format` prints it. @category schemas @since 0.1.0
 */
export const ShortDuration: Schema.Codec<Duration.Duration, string> = Schema.String.pipe(Schema.decodeTo(Schema.Duration,
  SchemaTransformation.transformEffect({
    decode: (text) =>
      Effect.mapError(Effect.fromOption(Parse.parseDuration(text)), () => new SchemaIssue.InvalidValue({ message: "not a duration" }, text)),
    encode: (d) => Effect.succeed(Duration.format(d))
  })))

// --- kinds of value: how each is read from text (naming the problem), printed back, and described

interface Kind<A, I> {
  /** The value, or what is wrong with the text in a few words. */
  readonly parse: (text: string) => Result.Result<A, string>
  readonly accepted: string
  /** The text of a value, or of one of the other values `Overrides` accept for it (`I`; a string is read as given). */
  readonly format: (value: A | Exclude<I, string>) => string
  readonly "~input"?: I
}
/** A kind that reads the text trimmed. */
const kind = <A, I = never>(parse: Kind<A, I>["parse"], accepted: string, format: Kind<A, I>["format"] = String): Kind<A, I> =>
  ({ parse: (text) => parse(text.trim()), accepted, format })
const check = <A>(a: A, problem: string | false) => problem === false ? Result.succeed(a) : Result.fail(problem)
/** What `read` makes of the text (`none` when nothing), failing with what `problem` finds wrong with it. */
const parsed = <A>(read: (s: string) => Option.Option<A>, none: string, problem: (a: A) => string | false = () => false) => (s: string) =>
  Result.flatMap(Result.fromOption(read(s), () => none), (a) => check(a, problem(a)))

const text = (accepted = "any non-empty text", pattern = /./, problem = "") =>
  kind<string, string>((s) => check(s, !pattern.test(s) && problem), accepted)
const path = text("a file path")
const integer = (min: number, accepted: string, max = Number.MAX_SAFE_INTEGER) =>
  kind(parsed(Parse.parseInteger, "not an integer", (n) => (n < min || n > max) && "out of range"), accepted)
const bytes = kind<number, string>(parsed(Parse.parseBytes, "not a byte size", (n) => n <= 0 && "zero"),
  "a size such as 512MB or 1GiB, or a number of bytes")

type DurationInput = Duration.Input | `${number}${"ms" | "s" | "m" | "h" | "d" | "w"}`
const examples = `"2 seconds", "500 millis", "1 minute" (short forms 2s, 500ms, 5m, 1h, 7d also work; a plain integer is milliseconds)`

/** A duration of at least `min`; `constraint` (with its leading space) says so in words. */
const duration = (constraint: string, min: Duration.Duration) =>
  kind<Duration.Duration, DurationInput>(parsed(Parse.parseDuration, "not a duration", (d) =>
    Duration.isLessThan(d, min) &&
    (Duration.isNegative(d) ? "negative" : Duration.isZero(d) ? "zero" : `shorter than ${Duration.format(min)}`)),
  `a duration${constraint} such as ${examples}`, // and it prints any `Duration.Input`: 1500, [5, 0], { seconds: 5 }
  (d) => Option.match(Duration.fromInput(d as Duration.Input), { onNone: () => String(d), onSome: Duration.format }))
const atLeastOneSecond = duration(" of at least 1 second", Duration.seconds(1))
const positiveDuration = duration(" greater than 0", Duration.millis(1))

/** One of `values`, any case; `aliases` map other (lower-case) spellings to a value. */
const oneOf = <const L extends string, const X extends string = never>(values: ReadonlyArray<L>, aliases?: Record<X, L>) => {
  const table = new Map<string, L>([...values.map((v) => [v.toLowerCase(), v] as const), ...Object.entries<L>(aliases ?? {})])
  return kind<L, Lowercase<L> | Uppercase<L> | X>(
    parsed((s) => Option.fromUndefinedOr(table.get(s.toLowerCase())), `not one of ${values.join(", ")}`),
    `one of ${values.join(", ")} (any case)`)
}
const onOff = kind<boolean, "on" | "off">((s) => {
  const at = ["off", "false", "no", "0", "on", "true", "yes", "1"].indexOf(s.toLowerCase())
  return check(at > 3, at < 0 && "not on or off")
}, "on or off (also true/false, yes/no, 1/0)", (b) => (b ? "on" : "off"))
const offOr = <A, I>(k: Kind<A, I>) =>
  kind<Option.Option<A>, A | I | "off">(
    (s) => s.toLowerCase() === "off" ? Result.succeed(Option.none()) : Result.map(k.parse(s), Option.some),
    `"off", or ${k.accepted}`,
    (o) => !Option.isOption(o) ? k.format(o) : Option.match(o, { onNone: () => "off", onSome: k.format }))

/** Comma-separated items (`none`, if given, is the word for no items); `problem` says what is wrong with them. */
const list = <A extends string>(problem: (items: ReadonlyArray<string>) => string | false, accepted: string, none?: string) =>
  kind<ReadonlyArray<A>, string>((s) => {
    const items = Parse.parseList(s)
    return s.toLowerCase() === none ? Result.succeed([]) : check(items as ReadonlyArray<A>, problem(items))
  }, accepted, (xs) => xs.length === 0 && none !== undefined ? none : xs.join(","))
const redactFields = list((items) => items.length === 0 && "no field name in the list",
  "comma-separated field names such as \"password,token,ssn\"")

// Every dead-letter reason but poison. Listed here rather than read from dlq/DeadLetter, because
// config sits below the folders it configures; DeadLetter fails to compile if the two disagree.
const retriedReasons = ["exhausted", "permanent", "unroutable", "max_deliveries"] as const

/** A dead-letter reason the DLQ worker can retry: any but poison. @category models @since 0.1.0 */
export type RetriedReason = typeof retriedReasons[number]

const dlqReasons = list<RetriedReason>((items) => {
  const unknown = items.filter((r) => !(retriedReasons as ReadonlyArray<string>).includes(r))
  return items.length === 0 ? "no reason in the list"
    : items.includes("poison") ? "poison letters cannot be retried: a retry sends the same bad payload"
    : unknown.length > 0 && `unknown reason ${unknown.map((r) => JSON.stringify(r)).join(", ")}`
}, `comma-separated dead-letter reasons out of ${retriedReasons.join(", ")}, or "none"`, "none")

/** Pools given are laid over fast and slow: a pool in both takes the given size; new pools go last. */
const pools = kind<ReadonlyArray<Parse.PoolBudget>, Readonly<Record<string, number>> | string>(
  (s) => Result.map(Parse.parsePools(s), (given) => {
    const sizes = new Map([["fast", 32], ["slow", 4], ...given.map((p) => [p.name, p.concurrency] as const)])
    return [...sizes].map(([name, concurrency]) => ({ name, concurrency }))
  }),
  `comma-separated name=concurrency pairs such as "fast=32,slow=4,reports=2" ` +
    "(names of A-Z a-z 0-9 _ -, concurrency an integer of at least 1)",
  (ps) => (Array.isArray(ps) ? ps.map((p) => [p.name, p.concurrency]) : Object.entries(ps)).map(([n, c]) => `${n}=${c}`).join(","))

const servers = kind<ReadonlyArray<string>, string>(Parse.parseServers,
  "comma-separated nats://host:port or tls://host:port URLs (a bare host:port means nats://host:port); " +
    "no credentials in the URL (use MSGSYS_NATS_USER/PASSWORD, TOKEN, NKEY_SEED or CREDS)", (xs) => xs.join(","))
// a token goes in OTEL_EXPORTER_OTLP_HEADERS, which is never printed
const otlpEndpoint = kind<string, string>((s) =>
  s.toLowerCase() === "off" ? Result.succeed("off") : Result.map(Parse.parseUrl(s, ["http", "https"]), () => s.replace(/\/+$/, "")),
  "an http:// or https:// URL of an OTLP/HTTP receiver such as http://127.0.0.1:4318 (no credentials: put them in " +
    "OTEL_EXPORTER_OTLP_HEADERS), or \"off\"")

// --- the variables

interface Var<A, I> extends Omit<Variable, "name"> {
  readonly name?: string // when it is not `MSGSYS_` and the field's path in constant case
  readonly show?: (text: string) => string // how a bad value is shown in an error
  /** The value for the variable's text, `undefined` when it is unset. */
  readonly read: (text: string | undefined) => Result.Result<A, string>
  /** The text it reads for a programmatic value, `undefined` for unset (see `make`). */
  readonly write: (value: unknown) => string | undefined
  readonly "~input"?: I
}
const variable = <A, I, B>(k: Kind<A, I>, dflt: string, unset: B, some: (a: A) => B, optional = false) =>
(description: string, more?: Pick<Var<B, I>, "name" | "show">): Var<B, A | I> => ({
  default: dflt, description, accepted: k.accepted, secret: false, ...more,
  read: (text) => text === undefined ? Result.succeed(unset) : Result.map(k.parse(text), some),
  // a string is read as written (so a bad one is reported so), a secret revealed, the `Some` of an optional variable unwrapped
  write: function write(value: unknown): string | undefined {
    return value == null || typeof value === "string" ? value ?? undefined
      : Redacted.isRedacted(value) ? String(Redacted.value(value))
      : optional && Option.isOption(value) ? Option.match(value, { onNone: () => undefined, onSome: write })
      : k.format(value as A)
  }
})
/** `dflt` is read like the variable's own text, and shown as written in the README. */
const setting = <A, I>(k: Kind<A, I>, dflt: string, unset = Result.getOrThrow(k.parse(dflt))) => variable(k, dflt, unset, (a) => a)
const optional = <A, I>(k: Kind<A, I>, dflt = "unset") => variable(k, dflt, Option.none<A>(), Option.some, true)

/** Passwords and tokens are taken verbatim (a space may belong to them); a checked secret is trimmed. */
const verbatim: Kind<string, string> = { parse: Result.succeed, accepted: "any non-empty text", format: String }
const secret = (description: string, k = verbatim): Var<Option.Option<Redacted.Redacted<string>>, string | Redacted.Redacted<string>> =>
  ({ ...variable(k, "unset", Option.none(), (s) => Option.some(Redacted.make(s)), true)(description), secret: true })

const spec = {
  nats: {
    servers: setting(servers, "unset: `msgsys dev` starts an embedded nats-server", [])(
      "NATS servers to connect to; unset means the embedded server", { name: "MSGSYS_NATS_URL", show: Parse.redactUrlCredentials }),
    user: optional(text())("NATS user name; needs MSGSYS_NATS_PASSWORD"),
    password: secret("NATS password (secret); needs MSGSYS_NATS_USER"),
    token: secret("NATS auth token (secret); not together with user/password, nkey or creds"),
    nkeySeed: secret("NATS user NKey seed (secret), starts with SU", text(
      "a user NKey seed: \"SU\" followed by upper-case base32 (A-Z, 2-7), as made by `nsc` or `nk -gen user`",
      /^SU[A-Z2-7]+$/, "not a user NKey seed (it must start with \"SU\")")),
    credsFile: optional(path)("Path of a NATS .creds file (JWT and NKey seed)", { name: "MSGSYS_NATS_CREDS" }),
    tls: {
      ca: optional(path, "unset: system CAs")("PEM file of the CA that signed the server certificate"),
      cert: optional(path)("PEM client certificate for mutual TLS; needs MSGSYS_NATS_TLS_KEY"),
      key: optional(path)("PEM private key of the client certificate; needs MSGSYS_NATS_TLS_CERT")
    },
    connectTimeout: setting(positiveDuration, "5 seconds")("Time allowed for each connection attempt"),
    connectAttempts: setting(integer(1, "an integer of at least 1"), "3")(
      "Initial connection attempts before giving up, MSGSYS_NATS_RECONNECT_WAIT apart"),
    reconnectWait: setting(positiveDuration, "2 seconds")("Pause between reconnection attempts"),
    pingInterval: setting(positiveDuration, "10 seconds")(
      "How often the connection pings its server; two pings unanswered and it reconnects, to another server of the " +
        "list if one answers. A server cut off without a TCP reset (a dead host or link) goes unnoticed until then"),
    maxReconnectAttempts: setting(integer(-1, "an integer of at least -1 (-1 = for ever, 0 = never reconnect)"), "-1")(
      "Reconnection attempts after a lost connection; -1 retries for ever", { name: "MSGSYS_NATS_RECONNECT_ATTEMPTS" }),
    name: setting(text(), "msgsys")("Connection name shown by the NATS server (connz, logs)"),
    replicas: setting(integer(1, "an integer 1-5", 5), "1")(
      "Copies JetStream keeps of every stream and bucket msgsys declares: 1 on one server, 3 on a cluster of three or more (at most " +
        "the cluster's size); a worker's start updates the existing ones it declares (the KV idempotency store's bucket keeps the " +
        "copies it was made with)")
  },
  streamPrefix: setting(text("letters, digits, _ and - only (it is part of stream names), such as MSGSYS or ACME_PROD",
    /^[a-z0-9_-]+$/i, "has characters not allowed in a stream name"), "MSGSYS")(
    "Prefix of every stream, consumer and KV bucket name; separates installations on one server"),
  dataDir: setting(text("a directory path"), ".msgsys")("Directory for the SQLite file and the embedded server's store"),
  sqlitePath: optional(text("a file path (or :memory:)"), "`<MSGSYS_DATA_DIR>/msgsys.sqlite`")(
    "SQLite file for the audit log and idempotency keys"),
  sqliteSynchronous: setting(oneOf(["NORMAL", "FULL"]), "NORMAL")(
    "SQLite synchronous mode; FULL survives power loss, at about half the write speed"),
  httpPort: setting(integer(0, "an integer port 0-65535 (0 disables HTTP)", 65535), "7777")(
    "Port of /healthz, /readyz, /metrics and the dashboard; 0 disables HTTP"),
  httpHost: setting(text("an IP address or host name to listen on, such as 0.0.0.0 (every interface), 127.0.0.1 or ::",
    /^[A-Za-z0-9.:_-]+$/, "is not a host name or IP address"), "0.0.0.0")(
    "Address the HTTP port listens on; the dashboard can replay dead letters and has no login, so use 127.0.0.1 " +
      "(or a proxy with authentication) where others reach the host"),
  logLevel: setting(oneOf(["Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"], { warning: "Warn", off: "None" }), "Info")(
    "Lowest level logged (logs go to stderr); also warning, off"),
  logFormat: setting(oneOf(["auto", "pretty", "json", "logfmt"]), "auto")(
    "Log line format; auto is pretty when stderr is a terminal and one JSON object a line otherwise (see Logs and traces)"),
  otlpEndpoint: optional(otlpEndpoint, "unset: `OTEL_EXPORTER_OTLP_ENDPOINT`, else off")(
    "OTLP/HTTP receiver spans are exported to (publish, handle, retry, dead-letter; posted to `/v1/traces` under it); " +
      "\"off\" exports none even when the OTEL_EXPORTER_OTLP_* variables are set (see Logs and traces)",
    { show: Parse.redactUrlCredentials }),
  ackWait: setting(atLeastOneSecond, "30 seconds")(
    "How long a message may go without an ack or progress before redelivery (an actor can override it)"),
  shutdownGrace: setting(duration(" of 0 or more", Duration.zero), "30 seconds")(
    "On SIGTERM/SIGINT, how long in-flight work may run before it is nak'ed"),
  resultTtl: setting(atLeastOneSecond, "7 days")("How long task status and results are kept"),
  sweepInterval: setting(atLeastOneSecond, "1 minute")(
    "How often a worker removes settled messages a crashed nats-server 2.9 left in its task streams"),
  eventsMaxAge: setting(offOr(atLeastOneSecond), "7 days")(
    "How long events streams keep events (every group reads them within it; a new group can replay that far back); \"off\" keeps them"),
  pools: setting(pools, "fast=32,slow=4")(
    "Concurrency budget per pool; fast and slow always exist, this list adds pools or resizes them"),
  idempotencyStore: setting(oneOf(["sqlite", "kv"]), "sqlite")(
    "Where idempotency keys live: sqlite (one host) or kv (NATS KV, across hosts)"),
  idempotencyRetention: setting(atLeastOneSecond, "7 days")("How long a finished key (and its stored outcome) is remembered"),
  auditPayload: setting(oneOf(["off", "redacted", "full"]), "redacted")(
    "Payloads in audit records: off, redacted (MSGSYS_AUDIT_REDACT fields masked) or full"),
  auditRedactFields: setting(redactFields, "password,token,secret,apiKey,authorization")(
    "Payload fields masked in audit records when MSGSYS_AUDIT_PAYLOAD=redacted", { name: "MSGSYS_AUDIT_REDACT" }),
  auditRetention: setting(offOr(atLeastOneSecond), "90 days")(
    "How long audit records are kept before automatic pruning; \"off\" keeps them for ever"),
  dlqMaxBytes: setting(offOr(bytes), "1GiB")(
    "Bytes the dead-letter stream may hold; when full it refuses new letters, which stay in their task stream " +
      "(it never drops one). Applied on nats-server 2.10.5 and later only (see Dead letters); \"off\" for no bound"),
  dlqMaxAge: setting(offOr(atLeastOneSecond), "off")("How long dead letters are kept; \"off\" keeps them until replayed or deleted"),
  resultsMaxBytes: setting(offOr(bytes), "off")(
    "Bytes the results bucket may hold (JetStream reserves them on the server); when full, storing the status of a " +
      "new task fails (see Results); \"off\": bounded by MSGSYS_RESULT_TTL only"),
  dlqWorker: setting(onOff, "on")(
    "Whether `msgsys worker` also runs the DLQ worker, which retries dead letters with long backoff (see Dead letters)"),
  dlqRetryAttempts: setting(integer(0, "an integer 0-1000", 1000), "5")(
    "Times the DLQ worker replays a dead task before storing it as exhausted; 0 stores every letter as exhausted at once"),
  dlqRetryBase: setting(positiveDuration, "1 minute")(
    "The DLQ worker's wait before its first retry of a letter; it doubles for each retry, up to MSGSYS_DLQ_RETRY_CAP"),
  dlqRetryCap: setting(positiveDuration, "15 minutes")("The DLQ worker's longest wait between two retries of a letter"),
  dlqRetryReasons: setting(dlqReasons, "exhausted,max_deliveries")(
    "Dead-letter reasons the DLQ worker retries; letters of other reasons (always poison) go straight to exhausted")
}

// --- the settings, typed from the spec

type Spec = { readonly [key: string]: Var<unknown, unknown> | Spec }
type Out<T> = { readonly [K in keyof T]: T[K] extends Var<infer A, unknown> ? A : Out<T[K]> }
type In<T> = { readonly [K in keyof T]?: T[K] extends Var<infer A, infer I> ? A | I : In<T[K]> | Option.Option<In<T[K]>> }

/** Client TLS files (paths). @category models @since 0.1.0 */
export interface TlsSettings extends Out<typeof spec.nats.tls> {}

/** How to reach NATS; `servers` are normalised URLs, none for the embedded server. @category models @since 0.1.0 */
export interface NatsSettings extends Omit<Out<typeof spec.nats>, "tls"> {
  readonly tls: Option.Option<TlsSettings>
}

/** Everything a msgsys process is configured with (`spec` describes each field). @category models @since 0.1.0 */
export interface MsgsysSettings extends Omit<Out<typeof spec>, "nats" | "sqlitePath"> {
  readonly nats: NatsSettings
  readonly sqlitePath: string
}

/** @category models @since 0.1.0 */
export type LogLevel = MsgsysSettings["logLevel"]

/**
 * Programmatic settings for {@link layerFrom}: any field may be left out, plain values stand for `Some`, secrets may be plain
 * strings, durations any `Duration.Input` or short form ("5s"), byte sizes a number or "512MB". A full `MsgsysSettings` is also
 * accepted. @category models @since 0.1.0
 */
export interface Overrides extends In<typeof spec> {}

/** @category services @since 0.1.0 */
export class MsgsysConfig extends Context.Service<MsgsysConfig, MsgsysSettings>()("msgsys/MsgsysConfig") {}

/** One bad variable; `value` is what was given (`<redacted>` for a secret, `undefined` when missing). @category models @since 0.1.0 */
export interface ConfigProblem {
  readonly variable: string
  readonly value: string | undefined
  readonly problem: string
  readonly accepted: string
}

const REDACTED = "<redacted>"

/** One line: `MSGSYS_HTTP_PORT="70000": out of range; accepted: an integer port 0-65535 (0 disables HTTP)`. @category formatting @since 0.1.0 */
export const formatProblem = (p: ConfigProblem): string => {
  const given = p.value === undefined ? " (unset)" : p.value === REDACTED ? `=${REDACTED}` : `=${JSON.stringify(p.value)}`
  return `${p.variable}${given}: ${p.problem}; accepted: ${p.accepted}`
}

/**
 * The configuration is invalid; `problems` lists every bad variable, and the message has one line for each, saying what is accepted.
 * @category errors @since 0.1.0
 */
export class ConfigInvalid extends Data.TaggedError("ConfigInvalid")<{ readonly problems: ReadonlyArray<ConfigProblem> }> {
  override get message() { return this.problems.map(formatProblem).join("\n") }
}

// --- reading

/** A variable, its name, and its path in `Overrides` and `MsgsysSettings` (`nats.tls.cert`). */
type Entry = { readonly name: string; readonly path: string; readonly v: Var<unknown, unknown> }
const isVar = (x: Var<unknown, unknown> | Spec): x is Var<unknown, unknown> => "read" in x
const walk = (node: Spec, prefix: string): ReadonlyArray<Entry> =>
  Object.entries(node).flatMap(([key, x]) =>
    isVar(x) ? [{ name: x.name ?? `MSGSYS_${Str.constantCase(prefix + key)}`, path: prefix + key, v: x }] : walk(x, `${prefix}${key}.`))
const entries = walk(spec, "")

/** Each variable's text (blank counts as unset) or the provider's failure, each parsed on its own: `Config.all` stops at one error. */
const texts = Config.all(entries.map((e) =>
  Config.option(Config.String(e.name)).pipe(
    Config.map((text) => Result.succeed(Option.getOrUndefined(Option.filter(text, (t) => t.trim() !== "")))),
    Config.orElse((error) => Config.succeed(Result.fail(`could not be read: ${error.cause.message}`)))
  )
))

/**
 * Reads every variable through `provider` (by its `MSGSYS_*` name), collecting all problems, then checks the combinations:
 * TLS cert and key, user and password, one way to authenticate. `label` names a variable (its name, or its path in code).
 */
const read = (provider: ConfigProvider.ConfigProvider, label: (e: Entry) => string) =>
  Effect.gen(function*() {
    const given = yield* texts.parse(provider).pipe(Effect.orDie)
    const values = new Map<string, unknown>()
    const shown = new Map<string, string | undefined>()
    const problems: Array<ConfigProblem> = []
    entries.forEach((e, i) => {
      const text = Result.getOrUndefined(given[i]!)
      shown.set(e.path, text === undefined ? undefined : e.v.secret ? REDACTED : (e.v.show ?? String)(text.trim()))
      const result = Result.flatMap(given[i]!, e.v.read)
      if (Result.isSuccess(result)) values.set(e.path, result.success)
      else problems.push({ variable: label(e), value: shown.get(e.path), problem: result.failure, accepted: e.v.accepted })
    })
    const set = (path: string) => Option.isOption(values.get(path)) && Option.isSome(values.get(path) as Option.Option<unknown>)
    const name = (...paths: ReadonlyArray<string>) => paths.map((p) => label(entries.find((e) => e.path === p)!)).join("/")
    const pairs = [["nats.tls.cert", "nats.tls.key", "client certificate and its private key"],
      ["nats.user", "nats.password", "user name and password"]] as const
    for (const [a, b, what] of pairs) {
      const [has, lacks] = set(a) ? [a, b] : [b, a]
      if (set(has) && !set(lacks)) {
        const accepted = `set ${name(a)} and ${name(b)} together (${what}), or neither`
        problems.push({ variable: name(lacks), value: undefined, problem: `missing while ${name(has)} is set`, accepted })
      }
    }
    // NATS takes one way to authenticate; a second one given is a mistake, not a fallback
    const methods = [["nats.user", "nats.password"], ["nats.token"], ["nats.nkeySeed"], ["nats.credsFile"]]
    const [first = [], ...others] = methods.filter((paths) => paths.some(set))
    for (const [path = ""] of others) {
      const accepted = `one way to authenticate: ${methods.map((m) => name(...m)).join(", or ")}`
      problems.push({ variable: name(path), value: shown.get(path), problem: `given together with ${name(...first)}`, accepted })
    }
    if (problems.length > 0) return yield* new ConfigInvalid({ problems })
    const build = (node: Spec, prefix: string): object =>
      Object.fromEntries(Object.entries(node).map(([k, x]) => [k, isVar(x) ? values.get(prefix + k) : build(x, `${prefix}${k}.`)]))
    const x = build(spec, "") as Out<typeof spec>
    const tls = Object.values(x.nats.tls).some(Option.isSome) ? Option.some(x.nats.tls) : Option.none()
    const sqlitePath = Option.getOrElse(x.sqlitePath, () => join(x.dataDir, "msgsys.sqlite"))
    return { ...x, nats: { ...x.nats, tls }, sqlitePath } satisfies MsgsysSettings
  })

/**
 * Decodes settings from an environment map (pure: nothing else is read). Every bad variable is reported in one `ConfigInvalid`.
 * An empty or blank value counts as unset. @category constructors @since 0.1.0
 */
export const load = (env: Readonly<Record<string, string | undefined>>): Effect.Effect<MsgsysSettings, ConfigInvalid> =>
  read(ConfigProvider.fromEnvRecord({ ...env }), (e) => e.name)

/** Reads `a.b.c` from nested overrides, looking through `Option`s on the way. */
const at = (root: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>((node, key) => {
    const inner = Option.isOption(node) ? Option.getOrUndefined(node) : node
    return Predicate.isObject(inner) ? (inner as Record<string, unknown>)[key] : undefined
  }, root)

/**
 * Settings from the defaults with `overrides` laid over them, checked like the environment; problems are named by their path
 * (`nats.tls.key`). @category constructors @since 0.1.0
 */
export const make = (overrides: Overrides): Effect.Effect<MsgsysSettings, ConfigInvalid> =>
  Effect.suspend(() =>
    read(ConfigProvider.fromUnknown(Object.fromEntries(entries.map((e) => [e.name, e.v.write(at(overrides, e.path))]))), (e) => e.path))

/** The settings with nothing configured. @category constructors @since 0.1.0 */
export const defaults: MsgsysSettings = Effect.runSync(load({}))

/**
 * Settings from the current `ConfigProvider` (the process environment unless one is provided; Bun loads `.env` into it), read by
 * their `MSGSYS_*` names. @category layers @since 0.1.0
 */
export const layer: Layer.Layer<MsgsysConfig, ConfigInvalid> = Layer.effect(MsgsysConfig,
  Effect.flatMap(ConfigProvider.ConfigProvider, (p) => read(p, (e) => e.name)).pipe(Effect.withSpan("MsgsysConfig.layer")))

/** Defaults plus programmatic `overrides`, checked; the environment is not read. @category layers @since 0.1.0 */
export const layerFrom = (overrides: Overrides): Layer.Layer<MsgsysConfig, ConfigInvalid> => Layer.effect(MsgsysConfig, make(overrides))

// --- the catalogue

/** @category models @since 0.1.0 */
export interface Variable {
  readonly name: string
  readonly default: string
  readonly description: string
  readonly accepted: string
  readonly secret: boolean
}

/**
 * Every variable msgsys reads, with its default and what it accepts: the README's table and `unknownVariables` come from it.
 * @category catalogue @since 0.1.0
 */
export const variables: ReadonlyArray<Variable> = entries.map(({ name, v }) =>
  ({ name, default: v.default, description: v.description, accepted: v.accepted, secret: v.secret }))

/**
 * `MSGSYS_*` names in `env` that msgsys does not read, with a suggestion when one is close: a misspelt variable otherwise
 * silently falls back to its default. @category diagnostics @since 0.1.0
 */
export const unknownVariables = (env: Readonly<Record<string, string | undefined>>): ReadonlyArray<string> => {
  const known = variables.map((v) => v.name)
  return Object.keys(env).filter((k) => k.startsWith("MSGSYS_") && !known.includes(k)).sort().map((k) => {
    const [nearest] = known.filter((n) => Parse.distance(k, n) <= 3).sort((a, b) => Parse.distance(k, a) - Parse.distance(k, b))
    return nearest === undefined ? `${k} is not a msgsys variable` : `${k} is not a msgsys variable; did you mean ${nearest}?`
  })
}

/** Logs a warning for each line of `unknownVariables(env)`. @category diagnostics @since 0.1.0 */
export const warnUnknownVariables = (env: Readonly<Record<string, string | undefined>>): Effect.Effect<void> =>
  Effect.forEach(unknownVariables(env), (line) => Effect.logWarning(line), { discard: true })

/**
 * One line per setting (`nats.servers nats://a:4222`), for `msgsys status` and banners. Secrets show as `<redacted>`.
 * @category formatting @since 0.1.0
 */
export const describe = (s: MsgsysSettings): string =>
  entries.map(({ path, v }) => {
    const value = at(s, path)
    const text = v.secret ? (Option.isOption(value) && Option.isSome(value) ? REDACTED : undefined) : v.write(value)
    return `${path} ${text || "(unset)"}`
  }).join("\n")
