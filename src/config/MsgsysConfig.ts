/**
 * The msgsys configuration: every `MSGSYS_*` variable, decoded and checked at once, so a bad
 * deployment gets the complete list of what to fix (guarantee 8), never the first problem only.
 * Secrets stay `Redacted` and are never printed.
 * @since 0.1.0
 */
import { Config, Context, Data, Duration, Effect, Layer, Option, Predicate, Redacted, Result } from "effect"
import { join } from "node:path"
import * as Catalogue from "./internal/catalogue.ts"
import { distance, type PoolBudget } from "./internal/parse.ts"
import type { Spec } from "./internal/spec.ts"

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
  readonly logLevel: LogLevel
  readonly logFormat: "pretty" | "json" | "logfmt"
  readonly ackWait: Duration.Duration
  readonly shutdownGrace: Duration.Duration
  readonly resultTtl: Duration.Duration
  /** How often a worker sweeps settled leftovers out of its task streams (see `StreamSweeper`). */
  readonly sweepInterval: Duration.Duration
  /** Always holds `fast` and `slow`. */
  readonly pools: ReadonlyArray<{ readonly name: string; readonly concurrency: number }>
  readonly idempotencyStore: "sqlite" | "kv"
  readonly idempotencyRetention: Duration.Duration
  readonly auditPayload: "off" | "redacted" | "full"
  readonly auditRedactFields: ReadonlyArray<string>
  /** `None`: never pruned. */
  readonly auditRetention: Option.Option<Duration.Duration>
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

const REDACTED = "<redacted>"

type DurationInput = Duration.Input | `${number}${"ms" | "s" | "m" | "h" | "d" | "w"}`
type Secret = string | Redacted.Redacted<string> | Option.Option<Redacted.Redacted<string>>
type Optional<A> = A | Option.Option<A>
type AnyCase<L extends string> = L | Lowercase<L> | Uppercase<L>

/**
 * Programmatic settings for {@link layerFrom}: any field may be left out, plain values stand for
 * `Some`, secrets may be plain strings, durations any `Duration.Input` or short form ("5s").
 * A full `MsgsysSettings` is also accepted.
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
  readonly logLevel?: AnyCase<LogLevel> | "warning"
  readonly logFormat?: MsgsysSettings["logFormat"]
  readonly ackWait?: DurationInput
  readonly shutdownGrace?: DurationInput
  readonly resultTtl?: DurationInput
  readonly sweepInterval?: DurationInput
  /** Added to (or resizing) the default `fast=32, slow=4`. */
  readonly pools?: ReadonlyArray<PoolBudget> | Readonly<Record<string, number>> | string
  readonly idempotencyStore?: MsgsysSettings["idempotencyStore"]
  readonly idempotencyRetention?: DurationInput
  readonly auditPayload?: MsgsysSettings["auditPayload"]
  readonly auditRedactFields?: ReadonlyArray<string> | string
  readonly auditRetention?: DurationInput | "off" | Option.Option<Duration.Duration>
}

type Source =
  | { readonly kind: "env"; readonly env: Readonly<Record<string, string | undefined>> }
  | { readonly kind: "code"; readonly overrides: Overrides }

/** Reads `a.b.c` from nested overrides, looking through `Option`s on the way. */
const at = (root: unknown, path: string): unknown => {
  let node: unknown = root
  for (const key of path.split(".")) {
    if (Option.isOption(node)) node = Option.getOrUndefined(node)
    if (!Predicate.isObject(node)) return undefined
    node = (node as Record<string, unknown>)[key]
  }
  return node
}

const show = (v: unknown): string =>
  typeof v === "string"
    ? v
    : Duration.isDuration(v)
    ? Duration.format(v)
    : Predicate.isObject(v)
    ? JSON.stringify(v) ?? String(v)
    : String(v)

/**
 * Decodes every variable, collecting all problems rather than stopping at the first, then checks
 * the combinations (TLS cert and key, user and password, one way to authenticate).
 */
const decode = (source: Source): Result.Result<MsgsysSettings, ReadonlyArray<ConfigProblem>> => {
  const problems: Array<ConfigProblem> = []
  const label = (spec: Spec<unknown>) => source.kind === "env" ? spec.name : spec.path

  const get = <A>(spec: Spec<A>): A => {
    if (source.kind === "env") {
      const raw = source.env[spec.name]
      if (raw === undefined || raw.trim() === "") return spec.fallback
      // a secret is taken verbatim; a space may belong to it
      const value = spec.secret ? raw : raw.trim()
      const decoded = spec.fromString(value)
      if (Result.isSuccess(decoded)) return decoded.success
      problems.push({
        variable: spec.name,
        value: spec.secret ? REDACTED : spec.show ? spec.show(value) : value,
        problem: decoded.failure,
        accepted: spec.accepted
      })
      return spec.fallback
    }
    const value = at(source.overrides, spec.path)
    if (value === undefined || value === null || value === "") return spec.fallback
    const decoded = spec.fromValue(value)
    if (Result.isSuccess(decoded)) return decoded.success
    const shown = show(value)
    problems.push({
      variable: spec.path,
      value: spec.secret ? REDACTED : spec.show ? spec.show(shown) : shown,
      problem: decoded.failure,
      accepted: spec.accepted
    })
    return spec.fallback
  }

  const s = Catalogue.specs
  const tls = { ca: get(s.tlsCa), cert: get(s.tlsCert), key: get(s.tlsKey) }
  const nats: NatsSettings = {
    servers: get(s.servers),
    user: get(s.user),
    password: get(s.password),
    token: get(s.token),
    nkeySeed: get(s.nkeySeed),
    credsFile: get(s.credsFile),
    tls: Option.isSome(tls.ca) || Option.isSome(tls.cert) || Option.isSome(tls.key) ? Option.some(tls) : Option.none(),
    connectTimeout: get(s.connectTimeout),
    connectAttempts: get(s.connectAttempts),
    reconnectWait: get(s.reconnectWait),
    maxReconnectAttempts: get(s.maxReconnectAttempts),
    name: get(s.name)
  }
  const dataDir = get(s.dataDir)
  const settings: MsgsysSettings = {
    nats,
    streamPrefix: get(s.streamPrefix),
    dataDir,
    sqlitePath: Option.getOrElse(get(s.sqlitePath), () => join(dataDir, "msgsys.sqlite")),
    sqliteSynchronous: get(s.sqliteSynchronous),
    httpPort: get(s.httpPort),
    logLevel: get(s.logLevel),
    logFormat: get(s.logFormat),
    ackWait: get(s.ackWait),
    shutdownGrace: get(s.shutdownGrace),
    resultTtl: get(s.resultTtl),
    sweepInterval: get(s.sweepInterval),
    pools: get(s.pools),
    idempotencyStore: get(s.idempotencyStore),
    idempotencyRetention: get(s.idempotencyRetention),
    auditPayload: get(s.auditPayload),
    auditRedactFields: get(s.auditRedactFields),
    auditRetention: get(s.auditRetention)
  }

  const shown = (spec: Spec<unknown>): string | undefined => {
    const value = source.kind === "env" ? source.env[spec.name]?.trim() : at(source.overrides, spec.path)
    return value === undefined ? undefined : show(value)
  }
  const missing = (spec: Spec<unknown>, because: Spec<unknown>, accepted: string) =>
    problems.push({ variable: label(spec), value: undefined, problem: `missing while ${label(because)} is set`, accepted })
  const pair = (a: Spec<unknown>, b: Spec<unknown>, what: string) =>
    `set ${label(a)} and ${label(b)} together (${what}), or neither`

  if (Option.isSome(tls.cert) && Option.isNone(tls.key)) {
    missing(s.tlsKey, s.tlsCert, pair(s.tlsCert, s.tlsKey, "client certificate and its private key"))
  }
  if (Option.isSome(tls.key) && Option.isNone(tls.cert)) {
    missing(s.tlsCert, s.tlsKey, pair(s.tlsCert, s.tlsKey, "client certificate and its private key"))
  }
  if (Option.isSome(nats.user) && Option.isNone(nats.password)) {
    missing(s.password, s.user, pair(s.user, s.password, "user name and password"))
  }
  if (Option.isSome(nats.password) && Option.isNone(nats.user)) {
    missing(s.user, s.password, pair(s.user, s.password, "user name and password"))
  }

  // NATS takes one way to authenticate; a second one given is a mistake, not a fallback
  const methods: ReadonlyArray<readonly [Spec<unknown>, string, boolean]> = [
    [s.user, `${label(s.user)}/${label(s.password)}`, Option.isSome(nats.user) || Option.isSome(nats.password)],
    [s.token, label(s.token), Option.isSome(nats.token)],
    [s.nkeySeed, label(s.nkeySeed), Option.isSome(nats.nkeySeed)],
    [s.credsFile, label(s.credsFile), Option.isSome(nats.credsFile)]
  ]
  const given = methods.filter(([, , set]) => set)
  for (const [spec] of given.slice(1)) {
    problems.push({
      variable: label(spec),
      value: spec.secret ? REDACTED : shown(spec),
      problem: `given together with ${given[0]![1]}`,
      accepted: `one way to authenticate: ${methods.map(([, name]) => name).join(", or ")}`
    })
  }

  return problems.length > 0 ? Result.fail(problems) : Result.succeed(settings)
}

const fromResult = (r: Result.Result<MsgsysSettings, ReadonlyArray<ConfigProblem>>) =>
  Result.isSuccess(r) ? Effect.succeed(r.success) : Effect.fail(new ConfigInvalid({ problems: r.failure }))

/**
 * Decodes settings from an environment map (pure: nothing else is read). Every bad variable is
 * reported in one `ConfigInvalid`. An empty value counts as unset.
 * @category constructors @since 0.1.0
 */
export const load = (env: Readonly<Record<string, string | undefined>>): Effect.Effect<MsgsysSettings, ConfigInvalid> =>
  Effect.suspend(() => fromResult(decode({ kind: "env", env })))

/**
 * Settings from the defaults with `overrides` laid over them, checked like the environment.
 * @category constructors @since 0.1.0
 */
export const make = (overrides: Overrides): Effect.Effect<MsgsysSettings, ConfigInvalid> =>
  Effect.suspend(() => fromResult(decode({ kind: "code", overrides })))

/**
 * The settings with nothing configured.
 * @category constructors @since 0.1.0
 */
export const defaults: MsgsysSettings = Result.getOrThrow(decode({ kind: "env", env: {} }))

/**
 * Settings from the current `ConfigProvider`: the process environment unless one is provided
 * (Bun loads `.env` into it itself).
 * @category layers @since 0.1.0
 */
export const layer: Layer.Layer<MsgsysConfig, ConfigInvalid> = Layer.effect(
  MsgsysConfig,
  Effect.gen(function*() {
    // read raw text through Config so a custom ConfigProvider works; decode ourselves to report every problem
    const raw = yield* Config.all(
      Object.fromEntries(Catalogue.all.map((spec) => [spec.name, Config.option(Config.String(spec.name))]))
    ).pipe(Effect.mapError((e) =>
      new ConfigInvalid({
        problems: [{
          variable: "(config provider)",
          value: undefined,
          problem: `could not be read: ${e.message}`,
          accepted: "a readable environment"
        }]
      })
    ))
    const env = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Option.getOrUndefined(v)]))
    return yield* load(env)
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
 * Every variable msgsys reads, with its default and what it accepts, for docs and `msgsys config`.
 * @category catalogue @since 0.1.0
 */
export const variables: ReadonlyArray<Variable> = Catalogue.all.map((s) => ({
  name: s.name,
  default: s.default,
  description: s.description,
  accepted: s.accepted,
  secret: s.secret
}))

/**
 * `MSGSYS_*` names in `env` that msgsys does not read, with a suggestion when one is close:
 * a misspelt variable otherwise silently falls back to its default.
 * @category diagnostics @since 0.1.0
 */
export const unknownVariables = (env: Readonly<Record<string, string | undefined>>): ReadonlyArray<string> => {
  const known = new Set(Catalogue.all.map((s) => s.name))
  return Object.keys(env).filter((k) => k.startsWith("MSGSYS_") && !known.has(k)).sort().map((k) => {
    const nearest = [...known].map((n) => [n, distance(k, n)] as const).sort((a, b) => a[1] - b[1])[0]
    return nearest !== undefined && nearest[1] <= 3
      ? `${k} is not a msgsys variable; did you mean ${nearest[0]}?`
      : `${k} is not a msgsys variable`
  })
}

const secretText = (o: Option.Option<Redacted.Redacted<string>>) => Option.isSome(o) ? REDACTED : undefined

/**
 * A human summary for `msgsys status` and the dev banner. Secrets show as `<redacted>`.
 * @category formatting @since 0.1.0
 */
export const describe = (s: MsgsysSettings): string => {
  const n = s.nats
  const auth = [
    Option.isSome(n.user) ? `user ${n.user.value}` : undefined,
    secretText(n.password) && `password ${REDACTED}`,
    secretText(n.token) && `token ${REDACTED}`,
    secretText(n.nkeySeed) && `nkey seed ${REDACTED}`,
    Option.isSome(n.credsFile) ? `creds ${n.credsFile.value}` : undefined
  ].filter(Predicate.isString)
  const tls = Option.match(n.tls, {
    onNone: () => "off (unless a tls:// URL or the server asks)",
    onSome: (t) =>
      ([["ca", t.ca], ["cert", t.cert], ["key", t.key]] as const)
        .flatMap(([k, v]) => Option.isSome(v) ? [`${k} ${v.value}`] : [])
        .join(", ")
  })
  const d = Duration.format
  const lines: ReadonlyArray<readonly [string, string]> = [
    ["nats", n.servers.length > 0 ? n.servers.join(", ") : "embedded nats-server (MSGSYS_NATS_URL unset)"],
    ["  auth", auth.length > 0 ? auth.join(", ") : "none"],
    ["  tls", tls],
    ["  connect", `timeout ${d(n.connectTimeout)}, ${n.connectAttempts} attempt(s); reconnect every ` +
      `${d(n.reconnectWait)}, ${n.maxReconnectAttempts < 0 ? "for ever" : `${n.maxReconnectAttempts} time(s)`}; name ${n.name}`],
    ["streams", `prefix ${s.streamPrefix}`],
    ["data", `${s.dataDir} (sqlite ${s.sqlitePath}, synchronous ${s.sqliteSynchronous})`],
    ["http", s.httpPort === 0 ? "disabled" : `port ${s.httpPort}`],
    ["log", `${s.logLevel}, ${s.logFormat}`],
    ["messages", `ack wait ${d(s.ackWait)}, shutdown grace ${d(s.shutdownGrace)}, results kept ${d(s.resultTtl)}, ` +
      `swept every ${d(s.sweepInterval)}`],
    ["pools", s.pools.map((p) => `${p.name}=${p.concurrency}`).join(", ")],
    ["idempotency", `${s.idempotencyStore}, kept ${d(s.idempotencyRetention)}`],
    ["audit", `payload ${s.auditPayload}` +
      (s.auditPayload === "redacted" ? ` (${s.auditRedactFields.join(", ")})` : "") +
      `, ${Option.match(s.auditRetention, { onNone: () => "kept for ever", onSome: (r) => `kept ${d(r)}` })}`]
  ]
  return lines.map(([k, v]) => `${k.padEnd(12)}${v}`).join("\n")
}
