import { describe, expect, test } from "bun:test"
import { Config, ConfigProvider, Duration, Effect, Exit, Layer, Option, Redacted, Schema } from "effect"
import * as MsgsysConfig from "../../../src/config/MsgsysConfig.ts"

const ok = (env: Record<string, string | undefined>) => Effect.runSync(MsgsysConfig.load(env))

const invalid = (exit: Exit.Exit<unknown, MsgsysConfig.ConfigInvalid>): MsgsysConfig.ConfigInvalid => {
  if (Exit.isSuccess(exit)) throw new Error("expected ConfigInvalid, got settings")
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (error === undefined || error._tag !== "Fail") throw new Error("expected a failure")
  return error.error
}
const bad = (env: Record<string, string | undefined>) => invalid(Effect.runSyncExit(MsgsysConfig.load(env)))
const badCode = (o: MsgsysConfig.Overrides) => invalid(Effect.runSyncExit(MsgsysConfig.make(o)))
const fromCode = (o: MsgsysConfig.Overrides) => Effect.runSync(MsgsysConfig.make(o))

const service = Effect.gen(function*() {
  return yield* MsgsysConfig.MsgsysConfig
})
const ms = (d: Duration.Duration) => Duration.toMillis(d)
const reveal = (o: Option.Option<Redacted.Redacted<string>>) => Option.map(o, Redacted.value)

const PASSWORD = "pa55-w0rd-SECRET"
const TOKEN = "t0ken-SECRET"
const SEED = "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTAM"

describe("parseDuration", () => {
  const cases: ReadonlyArray<readonly [string, number]> = [
    ["2 seconds", 2_000],
    ["500 millis", 500],
    ["1 minute", 60_000],
    ["1.5 seconds", 1_500],
    ["2 Seconds", 2_000],
    ["2s", 2_000],
    ["500ms", 500],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["7d", 604_800_000],
    ["1w", 604_800_000],
    ["1h30m", 5_400_000],
    ["1m 30s", 90_000],
    ["1 hour 30 minutes", 5_400_000],
    ["1500", 1_500],
    ["0", 0],
    [" 10s ", 10_000],
    ["-2s", -2_000]
  ]
  for (const [text, millis] of cases) {
    test(`reads "${text}" as ${millis} ms`, () => {
      expect(Option.map(MsgsysConfig.parseDuration(text), ms)).toEqual(Option.some(millis))
    })
  }

  test("keeps sub-millisecond precision", () => {
    const d = Option.getOrThrow(MsgsysConfig.parseDuration("1500ns"))
    expect(Duration.toNanosUnsafe(d)).toBe(1500n)
  })

  for (const text of ["", "abc", "2 fortnights", "s", "1.5.3s", "2 seconds ago", "Infinity", "1e3", "5 m s", "--2s", "1,5s"]) {
    test(`rejects "${text}"`, () => {
      expect(MsgsysConfig.parseDuration(text)).toEqual(Option.none())
    })
  }

  test("reads back everything Duration.format prints", () => {
    for (const d of [Duration.millis(500), Duration.seconds(90), Duration.days(7), Duration.hours(25), Duration.zero]) {
      expect(Option.map(MsgsysConfig.parseDuration(Duration.format(d)), ms)).toEqual(Option.some(ms(d)))
    }
  })
})

describe("defaults", () => {
  test("an empty environment gives the documented defaults", () => {
    const s = ok({})
    expect(s).toEqual(MsgsysConfig.defaults)
    expect(s.nats.servers).toEqual([])
    expect(s.nats.user).toEqual(Option.none())
    expect(s.nats.password).toEqual(Option.none())
    expect(s.nats.token).toEqual(Option.none())
    expect(s.nats.nkeySeed).toEqual(Option.none())
    expect(s.nats.credsFile).toEqual(Option.none())
    expect(s.nats.tls).toEqual(Option.none())
    expect(ms(s.nats.connectTimeout)).toBe(5_000)
    expect(s.nats.connectAttempts).toBe(3)
    expect(ms(s.nats.reconnectWait)).toBe(2_000)
    expect(ms(s.nats.pingInterval)).toBe(10_000)
    expect(s.nats.maxReconnectAttempts).toBe(-1)
    expect(s.nats.name).toBe("msgsys")
    expect(s.nats.replicas).toBe(1)
    expect(s.streamPrefix).toBe("MSGSYS")
    expect(s.dataDir).toBe(".msgsys")
    expect(s.sqlitePath).toBe(".msgsys/msgsys.sqlite")
    expect(s.sqliteSynchronous).toBe("NORMAL")
    expect(s.httpPort).toBe(7777)
    expect(s.logLevel).toBe("Info")
    expect(s.logFormat).toBe("auto")
    expect(ms(s.ackWait)).toBe(30_000)
    expect(ms(s.shutdownGrace)).toBe(30_000)
    expect(ms(s.resultTtl)).toBe(7 * 86_400_000)
    expect(ms(s.sweepInterval)).toBe(60_000)
    expect(s.pools).toEqual([{ name: "fast", concurrency: 32 }, { name: "slow", concurrency: 4 }])
    expect(s.idempotencyStore).toBe("sqlite")
    expect(ms(s.idempotencyRetention)).toBe(7 * 86_400_000)
    expect(s.auditPayload).toBe("redacted")
    expect(s.auditRedactFields).toEqual(["password", "token", "secret", "apiKey", "authorization"])
    expect(Option.map(s.auditRetention, ms)).toEqual(Option.some(90 * 86_400_000))
    expect(s.dlqMaxBytes).toEqual(Option.some(1024 ** 3))
    expect(s.dlqMaxAge).toEqual(Option.none())
    // a byte bound is reserved on the server: none unless asked for (the TTL bounds it in time)
    expect(s.resultsMaxBytes).toEqual(Option.none())
  })

  test("an empty or blank value counts as unset", () => {
    const blank = Object.fromEntries(MsgsysConfig.variables.map((v) => [v.name, ""]))
    expect(ok(blank)).toEqual(MsgsysConfig.defaults)
    expect(ok({ MSGSYS_HTTP_PORT: "   ", MSGSYS_NATS_PASSWORD: "", MSGSYS_NATS_USER: "" })).toEqual(MsgsysConfig.defaults)
  })

  test("the SQLite file follows MSGSYS_DATA_DIR unless MSGSYS_SQLITE_PATH is set", () => {
    expect(ok({ MSGSYS_DATA_DIR: "/var/lib/msgsys" }).sqlitePath).toBe("/var/lib/msgsys/msgsys.sqlite")
    expect(ok({ MSGSYS_DATA_DIR: "/var/lib/msgsys", MSGSYS_SQLITE_PATH: "/db/a.sqlite" }).sqlitePath).toBe("/db/a.sqlite")
  })
})

describe("every variable is read", () => {
  const env = {
    MSGSYS_NATS_URL: "nats://a.example:4222, tls://b.example:4443,c.example:4222,10.0.0.4",
    MSGSYS_NATS_USER: "alice",
    MSGSYS_NATS_PASSWORD: PASSWORD,
    MSGSYS_NATS_TLS_CA: "/etc/ca.pem",
    MSGSYS_NATS_TLS_CERT: "/etc/client.pem",
    MSGSYS_NATS_TLS_KEY: "/etc/client-key.pem",
    MSGSYS_NATS_CONNECT_TIMEOUT: "10s",
    MSGSYS_NATS_CONNECT_ATTEMPTS: "7",
    MSGSYS_NATS_RECONNECT_WAIT: "500 millis",
    MSGSYS_NATS_PING_INTERVAL: "3s",
    MSGSYS_NATS_RECONNECT_ATTEMPTS: "12",
    MSGSYS_NATS_NAME: "billing-worker",
    MSGSYS_NATS_REPLICAS: "3",
    MSGSYS_STREAM_PREFIX: "ACME_prod-1",
    MSGSYS_DATA_DIR: "/data",
    MSGSYS_SQLITE_PATH: "/data/audit.sqlite",
    MSGSYS_SQLITE_SYNCHRONOUS: "full",
    MSGSYS_HTTP_PORT: "0",
    MSGSYS_HTTP_HOST: "127.0.0.1",
    MSGSYS_LOG_LEVEL: "warning",
    MSGSYS_LOG_FORMAT: "JSON",
    MSGSYS_OTLP_ENDPOINT: "http://otel.example:4318/",
    MSGSYS_ACK_WAIT: "1m",
    MSGSYS_SHUTDOWN_GRACE: "0",
    MSGSYS_RESULT_TTL: "2d",
    MSGSYS_SWEEP_INTERVAL: "5m",
    MSGSYS_EVENTS_MAX_AGE: "3d",
    MSGSYS_POOLS: "slow=8, reports=2",
    MSGSYS_IDEMPOTENCY_STORE: "KV",
    MSGSYS_IDEMPOTENCY_RETENTION: "36h",
    MSGSYS_AUDIT_PAYLOAD: "full",
    MSGSYS_AUDIT_REDACT: "ssn, iban",
    MSGSYS_AUDIT_RETENTION: "30 days",
    MSGSYS_DLQ_MAX_BYTES: "512MB",
    MSGSYS_DLQ_MAX_AGE: "30d",
    MSGSYS_RESULTS_MAX_BYTES: "2147483648",
    MSGSYS_DLQ_WORKER: "off",
    MSGSYS_DLQ_RETRY_ATTEMPTS: "3",
    MSGSYS_DLQ_RETRY_BASE: "30s",
    MSGSYS_DLQ_RETRY_CAP: "1h",
    MSGSYS_DLQ_RETRY_REASONS: "exhausted, permanent"
  }

  test("each variable lands in its field, normalised", () => {
    const s = ok(env)
    expect(s.nats.servers).toEqual([
      "nats://a.example:4222",
      "tls://b.example:4443",
      "nats://c.example:4222",
      "nats://10.0.0.4"
    ])
    expect(s.nats.user).toEqual(Option.some("alice"))
    expect(reveal(s.nats.password)).toEqual(Option.some(PASSWORD))
    expect(s.nats.tls).toEqual(Option.some({
      ca: Option.some("/etc/ca.pem"),
      cert: Option.some("/etc/client.pem"),
      key: Option.some("/etc/client-key.pem")
    }))
    expect(ms(s.nats.connectTimeout)).toBe(10_000)
    expect(s.nats.connectAttempts).toBe(7)
    expect(ms(s.nats.reconnectWait)).toBe(500)
    expect(ms(s.nats.pingInterval)).toBe(3_000)
    expect(s.nats.maxReconnectAttempts).toBe(12)
    expect(s.nats.name).toBe("billing-worker")
    expect(s.nats.replicas).toBe(3)
    expect(s.streamPrefix).toBe("ACME_prod-1")
    expect(s.dataDir).toBe("/data")
    expect(s.sqlitePath).toBe("/data/audit.sqlite")
    expect(s.sqliteSynchronous).toBe("FULL")
    expect(s.httpPort).toBe(0)
    expect(s.httpHost).toBe("127.0.0.1")
    expect(s.logLevel).toBe("Warn")
    expect(s.logFormat).toBe("json")
    expect(s.otlpEndpoint).toEqual(Option.some("http://otel.example:4318"))
    expect(ms(s.ackWait)).toBe(60_000)
    expect(ms(s.shutdownGrace)).toBe(0)
    expect(ms(s.resultTtl)).toBe(2 * 86_400_000)
    expect(ms(s.sweepInterval)).toBe(5 * 60_000)
    expect(Option.map(s.eventsMaxAge, ms)).toEqual(Option.some(3 * 86_400_000))
    expect(s.pools).toEqual([
      { name: "fast", concurrency: 32 },
      { name: "slow", concurrency: 8 },
      { name: "reports", concurrency: 2 }
    ])
    expect(s.idempotencyStore).toBe("kv")
    expect(ms(s.idempotencyRetention)).toBe(36 * 3_600_000)
    expect(s.auditPayload).toBe("full")
    expect(s.auditRedactFields).toEqual(["ssn", "iban"])
    expect(Option.map(s.auditRetention, ms)).toEqual(Option.some(30 * 86_400_000))
    expect(s.dlqMaxBytes).toEqual(Option.some(512_000_000))
    expect(Option.map(s.dlqMaxAge, ms)).toEqual(Option.some(30 * 86_400_000))
    expect(s.resultsMaxBytes).toEqual(Option.some(2_147_483_648))
    expect(s.dlqWorker).toBe(false)
    expect(s.dlqRetryAttempts).toBe(3)
    expect(ms(s.dlqRetryBase)).toBe(30_000)
    expect(ms(s.dlqRetryCap)).toBe(3_600_000)
    expect(s.dlqRetryReasons).toEqual(["exhausted", "permanent"])
  })

  test("the DLQ worker is on by default, retrying exhausted and max_deliveries letters 5 times, 1 minute doubling to 15", () => {
    const d = MsgsysConfig.defaults
    expect([d.dlqWorker, d.dlqRetryAttempts, ms(d.dlqRetryBase), ms(d.dlqRetryCap), d.dlqRetryReasons]).toEqual([
      true, 5, 60_000, 900_000, ["exhausted", "max_deliveries"]
    ])
    expect(ok({ MSGSYS_DLQ_WORKER: "ON" }).dlqWorker).toBe(true)
    expect(ok({ MSGSYS_DLQ_RETRY_REASONS: "none" }).dlqRetryReasons).toEqual([])
    expect(fromCode({ dlqWorker: "off", dlqRetryBase: "200ms", dlqRetryReasons: ["permanent"] })).toMatchObject({
      dlqWorker: false,
      dlqRetryBase: Duration.millis(200),
      dlqRetryReasons: ["permanent"]
    })
  })

  test("storage bounds take binary and decimal units, and \"off\" lifts them", () => {
    expect(ok({ MSGSYS_DLQ_MAX_BYTES: "1 GiB" }).dlqMaxBytes).toEqual(Option.some(1024 ** 3))
    expect(ok({ MSGSYS_DLQ_MAX_BYTES: "off", MSGSYS_RESULTS_MAX_BYTES: "OFF" })).toMatchObject({
      dlqMaxBytes: Option.none(),
      resultsMaxBytes: Option.none()
    })
    expect(ok({ MSGSYS_DLQ_MAX_AGE: "off" }).dlqMaxAge).toEqual(Option.none())
  })

  test("a token, an nkey seed or a creds file are each read on their own", () => {
    expect(reveal(ok({ MSGSYS_NATS_TOKEN: TOKEN }).nats.token)).toEqual(Option.some(TOKEN))
    expect(reveal(ok({ MSGSYS_NATS_NKEY_SEED: ` ${SEED}\n` }).nats.nkeySeed)).toEqual(Option.some(SEED))
    expect(ok({ MSGSYS_NATS_CREDS: "/etc/nats/app.creds" }).nats.credsFile).toEqual(Option.some("/etc/nats/app.creds"))
  })

  test("a password is kept verbatim, spaces included", () => {
    const s = ok({ MSGSYS_NATS_USER: "bob", MSGSYS_NATS_PASSWORD: " two words " })
    expect(reveal(s.nats.password)).toEqual(Option.some(" two words "))
  })

  test("a CA alone is enough for TLS", () => {
    expect(ok({ MSGSYS_NATS_TLS_CA: "ca.pem" }).nats.tls).toEqual(
      Option.some({ ca: Option.some("ca.pem"), cert: Option.none(), key: Option.none() })
    )
  })

  test("log level and sync mode are case-insensitive, with aliases", () => {
    expect(ok({ MSGSYS_LOG_LEVEL: "debug" }).logLevel).toBe("Debug")
    expect(ok({ MSGSYS_LOG_LEVEL: "WARN" }).logLevel).toBe("Warn")
    expect(ok({ MSGSYS_LOG_LEVEL: "off" }).logLevel).toBe("None")
    expect(ok({ MSGSYS_SQLITE_SYNCHRONOUS: "Normal" }).sqliteSynchronous).toBe("NORMAL")
  })

  test("the OTLP endpoint is unset by default (the OTEL_* variables decide), a URL, or \"off\"", () => {
    expect(MsgsysConfig.defaults.otlpEndpoint).toEqual(Option.none())
    expect(ok({ MSGSYS_OTLP_ENDPOINT: "OFF" }).otlpEndpoint).toEqual(Option.some("off"))
    expect(bad({ MSGSYS_OTLP_ENDPOINT: "grpc://otel:4317" }).problems[0]!.problem).toBe("scheme grpc is not http or https")
    expect(bad({ MSGSYS_OTLP_ENDPOINT: "otel:4318" }).problems[0]!.problem).toBe("scheme otel is not http or https")
  })

  test("audit retention \"off\" disables pruning", () => {
    expect(ok({ MSGSYS_AUDIT_RETENTION: "off" }).auditRetention).toEqual(Option.none())
    expect(ok({ MSGSYS_AUDIT_RETENTION: "OFF" }).auditRetention).toEqual(Option.none())
  })

  test("the catalogue lists every variable once, each with a default and a description", () => {
    const names = MsgsysConfig.variables.map((v) => v.name)
    expect(new Set(names).size).toBe(names.length)
    for (const name of Object.keys(env)) expect(names).toContain(name)
    for (const name of ["MSGSYS_NATS_TOKEN", "MSGSYS_NATS_NKEY_SEED", "MSGSYS_NATS_CREDS"]) expect(names).toContain(name)
    expect(names.length).toBe(Object.keys(env).length + 3)
    for (const v of MsgsysConfig.variables) {
      expect(v.default.length).toBeGreaterThan(0)
      expect(v.description.length).toBeGreaterThan(0)
      expect(v.accepted.length).toBeGreaterThan(0)
    }
  })
})

describe("bad values", () => {
  test("replicas beyond what JetStream keeps (1-5) are refused, saying what is accepted", () => {
    for (const value of ["0", "7", "three"]) {
      const e = bad({ MSGSYS_NATS_REPLICAS: value })
      expect(e.problems.map((p) => p.variable)).toEqual(["MSGSYS_NATS_REPLICAS"])
      expect(e.message).toContain("accepted: an integer 1-5")
    }
  })

  test("reports every bad variable at once, one line each, naming value and what is accepted", () => {
    const e = bad({
      MSGSYS_NATS_RECONNECT_WAIT: "abc",
      MSGSYS_HTTP_PORT: "70000",
      MSGSYS_LOG_LEVEL: "loud",
      MSGSYS_POOLS: "fast=0",
      MSGSYS_STREAM_PREFIX: "my.prefix"
    })
    expect(e._tag).toBe("ConfigInvalid")
    expect(e.problems.map((p) => p.variable).sort()).toEqual([
      "MSGSYS_HTTP_PORT",
      "MSGSYS_LOG_LEVEL",
      "MSGSYS_NATS_RECONNECT_WAIT",
      "MSGSYS_POOLS",
      "MSGSYS_STREAM_PREFIX"
    ])
    const lines = e.message.split("\n")
    expect(lines).toHaveLength(5)
    expect(lines).toContain(
      `MSGSYS_NATS_RECONNECT_WAIT="abc": not a duration; accepted: a duration greater than 0 such as "2 seconds", ` +
        `"500 millis", "1 minute" (short forms 2s, 500ms, 5m, 1h, 7d also work; a plain integer is milliseconds)`
    )
    expect(lines).toContain(`MSGSYS_HTTP_PORT="70000": out of range; accepted: an integer port 0-65535 (0 disables HTTP)`)
  })

  test("rejects a negative reconnect wait with the variable name and accepted values", () => {
    const [p] = bad({ MSGSYS_NATS_RECONNECT_WAIT: "-2s" }).problems
    expect(p).toEqual({
      variable: "MSGSYS_NATS_RECONNECT_WAIT",
      value: "-2s",
      problem: "negative",
      accepted: expect.stringContaining("a duration greater than 0") as unknown as string
    })
  })

  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ["MSGSYS_NATS_URL", "http://x:4222", "scheme http is not nats or tls"],
    ["MSGSYS_NATS_URL", "nats://a:4222,bad host", `entry "bad host": not host:port or a nats:// URL`],
    ["MSGSYS_NATS_URL", "localhost:99999", "port 99999 outside 1-65535"],
    ["MSGSYS_NATS_URL", ",", "no server in the list"],
    ["MSGSYS_NATS_CONNECT_TIMEOUT", "0", "zero"],
    ["MSGSYS_NATS_CONNECT_ATTEMPTS", "0", "out of range"],
    ["MSGSYS_NATS_CONNECT_ATTEMPTS", "2.5", "not an integer"],
    ["MSGSYS_NATS_RECONNECT_ATTEMPTS", "-2", "out of range"],
    ["MSGSYS_STREAM_PREFIX", "A.B", "has characters not allowed in a stream name"],
    ["MSGSYS_SQLITE_SYNCHRONOUS", "OFF", "not one of NORMAL, FULL"],
    ["MSGSYS_HTTP_PORT", "http", "not an integer"],
    ["MSGSYS_HTTP_PORT", "-1", "out of range"],
    ["MSGSYS_HTTP_HOST", "http://0.0.0.0", "is not a host name or IP address"],
    ["MSGSYS_LOG_FORMAT", "xml", "not one of auto, pretty, json, logfmt"],
    ["MSGSYS_ACK_WAIT", "500ms", "shorter than 1s"],
    ["MSGSYS_ACK_WAIT", "Infinity", "not a duration"],
    ["MSGSYS_SHUTDOWN_GRACE", "-1", "negative"],
    ["MSGSYS_RESULT_TTL", "forever", "not a duration"],
    ["MSGSYS_POOLS", "fast", `entry "fast" is not name=concurrency`],
    ["MSGSYS_POOLS", "fast=2,fast=3", `pool "fast" is listed twice`],
    ["MSGSYS_POOLS", "a.b=2", `pool name "a.b" has characters other than A-Z a-z 0-9 _ -`],
    ["MSGSYS_POOLS", "x=many", `entry "x=many" has no integer concurrency`],
    ["MSGSYS_IDEMPOTENCY_STORE", "redis", "not one of sqlite, kv"],
    ["MSGSYS_IDEMPOTENCY_RETENTION", "0", "zero"],
    ["MSGSYS_AUDIT_PAYLOAD", "some", "not one of off, redacted, full"],
    ["MSGSYS_AUDIT_REDACT", " , ", "no field name in the list"],
    ["MSGSYS_AUDIT_RETENTION", "never", "not a duration"],
    ["MSGSYS_DLQ_MAX_BYTES", "lots", "not a byte size"],
    ["MSGSYS_DLQ_MAX_BYTES", "0", "zero"],
    ["MSGSYS_DLQ_MAX_AGE", "500ms", "shorter than 1s"],
    ["MSGSYS_RESULTS_MAX_BYTES", "1.5B", "not a byte size"],
    ["MSGSYS_DLQ_WORKER", "maybe", "not on or off"],
    ["MSGSYS_DLQ_RETRY_ATTEMPTS", "-1", "out of range"],
    ["MSGSYS_DLQ_RETRY_BASE", "0", "zero"],
    ["MSGSYS_DLQ_RETRY_CAP", "soon", "not a duration"],
    ["MSGSYS_DLQ_RETRY_REASONS", "exhausted,poison", "poison letters cannot be retried: a retry sends the same bad payload"],
    ["MSGSYS_DLQ_RETRY_REASONS", "exhausted,flaky", `unknown reason "flaky"`]
  ]
  for (const [variable, value, problem] of cases) {
    test(`rejects ${variable}=${JSON.stringify(value)}: ${problem}`, () => {
      const e = bad({ [variable]: value })
      expect(e.problems.map((p) => [p.variable, p.problem])).toEqual([[variable, problem]])
      expect(e.problems[0]!.accepted.length).toBeGreaterThan(0)
    })
  }

  test("detects a client certificate without its key, and a key without its certificate", () => {
    expect(bad({ MSGSYS_NATS_TLS_CERT: "c.pem" }).problems).toEqual([{
      variable: "MSGSYS_NATS_TLS_KEY",
      value: undefined,
      problem: "missing while MSGSYS_NATS_TLS_CERT is set",
      accepted: "set MSGSYS_NATS_TLS_CERT and MSGSYS_NATS_TLS_KEY together (client certificate and its private key), or neither"
    }])
    expect(bad({ MSGSYS_NATS_TLS_KEY: "k.pem" }).problems.map((p) => p.variable)).toEqual(["MSGSYS_NATS_TLS_CERT"])
  })

  test("detects a user without a password, and a password without a user", () => {
    const e = bad({ MSGSYS_NATS_USER: "alice" })
    expect(e.problems.map((p) => [p.variable, p.problem])).toEqual([
      ["MSGSYS_NATS_PASSWORD", "missing while MSGSYS_NATS_USER is set"]
    ])
    expect(e.message).toStartWith("MSGSYS_NATS_PASSWORD (unset): missing while MSGSYS_NATS_USER is set; accepted: ")
    expect(bad({ MSGSYS_NATS_PASSWORD: PASSWORD }).problems.map((p) => p.variable)).toEqual(["MSGSYS_NATS_USER"])
  })

  test("detects a token given together with user and password", () => {
    const e = bad({ MSGSYS_NATS_USER: "alice", MSGSYS_NATS_PASSWORD: PASSWORD, MSGSYS_NATS_TOKEN: TOKEN })
    expect(e.problems.map((p) => [p.variable, p.value, p.problem])).toEqual([
      ["MSGSYS_NATS_TOKEN", "<redacted>", "given together with MSGSYS_NATS_USER/MSGSYS_NATS_PASSWORD"]
    ])
  })

  test("detects more than one way to authenticate", () => {
    const e = bad({ MSGSYS_NATS_TOKEN: TOKEN, MSGSYS_NATS_NKEY_SEED: SEED, MSGSYS_NATS_CREDS: "a.creds" })
    expect(e.problems.map((p) => [p.variable, p.problem])).toEqual([
      ["MSGSYS_NATS_NKEY_SEED", "given together with MSGSYS_NATS_TOKEN"],
      ["MSGSYS_NATS_CREDS", "given together with MSGSYS_NATS_TOKEN"]
    ])
  })

  test("rejects an nkey seed that is not a user seed", () => {
    for (const seed of ["SAAJL7AXGQ3WRWN2TPJBCNIGUKBB7JQJKT2UFNQIFHLUZQEDDSR7SZRMAQ", "not-a-seed"]) {
      const [p] = bad({ MSGSYS_NATS_NKEY_SEED: seed }).problems
      expect(p!.variable).toBe("MSGSYS_NATS_NKEY_SEED")
      expect(p!.problem).toContain("must start with \"SU\"")
    }
  })
})

describe("secrets are never printed", () => {
  const secretEnv = {
    MSGSYS_NATS_USER: "alice",
    MSGSYS_NATS_PASSWORD: PASSWORD,
    MSGSYS_NATS_URL: "nats://a.example:4222"
  }
  const assertHidden = (text: string) => {
    expect(text).not.toContain(PASSWORD)
    expect(text).not.toContain(TOKEN)
    expect(text).not.toContain(SEED)
    expect(text).not.toContain("SECRET")
  }

  test("not by describe, JSON, String or inspect of the settings", () => {
    for (const s of [ok(secretEnv), ok({ MSGSYS_NATS_TOKEN: TOKEN }), ok({ MSGSYS_NATS_NKEY_SEED: SEED })]) {
      assertHidden(MsgsysConfig.describe(s))
      assertHidden(JSON.stringify(s))
      assertHidden(String(s))
      assertHidden(Bun.inspect(s))
    }
    expect(MsgsysConfig.describe(ok(secretEnv))).toContain("password <redacted>")
    expect(MsgsysConfig.describe(ok({ MSGSYS_NATS_TOKEN: TOKEN }))).toContain("token <redacted>")
  })

  test("not by errors about a bad secret or a contradiction involving one", () => {
    const errors = [
      bad({ MSGSYS_NATS_NKEY_SEED: "SA" + TOKEN }),
      bad({ MSGSYS_NATS_PASSWORD: PASSWORD }),
      bad({ ...secretEnv, MSGSYS_NATS_TOKEN: TOKEN, MSGSYS_NATS_NKEY_SEED: SEED }),
      badCode({ nats: { token: TOKEN, password: PASSWORD, nkeySeed: "x" + SEED } })
    ]
    for (const e of errors) {
      assertHidden(e.message)
      assertHidden(String(e))
      assertHidden(JSON.stringify(e))
      assertHidden(Bun.inspect(e))
    }
  })

  test("not by an error about a server URL that carries credentials", () => {
    const e = bad({ MSGSYS_NATS_URL: `nats://alice:${PASSWORD}@a.example:4222` })
    assertHidden(e.message)
    expect(e.problems[0]!.problem).toBe("credentials in the URL")
    expect(e.problems[0]!.value).toBe("nats://<redacted>@a.example:4222")
  })

  test("not by an error about a server URL whose password holds @, /, : or a comma, alone or in a list", () => {
    for (const secret of ["Qx7p@Zk9-SECRET", "Wm3q/Yv8-SECRET", "Hj5r:Bn2-SECRET", "Tc4s,Pg6-SECRET"]) {
      for (const url of [`nats://alice:${secret}@a.example:4222`, `nats://b.example:4222,nats://alice:${secret}@a.example:4222`]) {
        const e = bad({ MSGSYS_NATS_URL: url })
        for (const part of secret.split(/[@/:,]/)) {
          expect(e.message).not.toContain(part)
          expect(Bun.inspect(e)).not.toContain(part)
        }
      }
    }
  })

  test("not by an error about an OTLP endpoint that carries credentials", () => {
    const e = bad({ MSGSYS_OTLP_ENDPOINT: `https://alice:${PASSWORD}@otel.example:4318` })
    assertHidden(e.message)
    expect(e.problems[0]!.problem).toBe("credentials in the URL")
  })

  test("a Redacted password is unwrapped only on purpose", () => {
    const s = ok(secretEnv)
    expect(Option.map(s.nats.password, String)).toEqual(Option.some("<redacted>"))
    expect(reveal(s.nats.password)).toEqual(Option.some(PASSWORD))
  })
})

describe("programmatic overrides", () => {
  test("plain values and Duration inputs are laid over the defaults", () => {
    const s = fromCode({
      nats: { servers: ["localhost:4333"], user: "svc", password: PASSWORD, reconnectWait: "250ms", connectAttempts: 1 },
      dataDir: "/tmp/x",
      httpPort: 0,
      ackWait: "5 seconds",
      resultTtl: Duration.hours(1),
      shutdownGrace: 1_500,
      pools: { reports: 2 },
      logLevel: "debug",
      auditRetention: "off"
    })
    expect(s.nats.servers).toEqual(["nats://localhost:4333"])
    expect(s.nats.user).toEqual(Option.some("svc"))
    expect(reveal(s.nats.password)).toEqual(Option.some(PASSWORD))
    expect(ms(s.nats.reconnectWait)).toBe(250)
    expect(s.nats.connectAttempts).toBe(1)
    expect(s.nats.name).toBe("msgsys")
    expect(s.dataDir).toBe("/tmp/x")
    expect(s.sqlitePath).toBe("/tmp/x/msgsys.sqlite")
    expect(s.httpPort).toBe(0)
    expect(ms(s.ackWait)).toBe(5_000)
    expect(ms(s.resultTtl)).toBe(3_600_000)
    expect(ms(s.shutdownGrace)).toBe(1_500)
    expect(s.pools.map((p) => p.name)).toEqual(["fast", "slow", "reports"])
    expect(s.logLevel).toBe("Debug")
    expect(s.auditRetention).toEqual(Option.none())
    expect(s.streamPrefix).toBe("MSGSYS")
  })

  test("no overrides gives the defaults, and full settings pass through unchanged", () => {
    expect(fromCode({})).toEqual(MsgsysConfig.defaults)
    const full = ok({
      MSGSYS_NATS_URL: "tls://a:4222",
      MSGSYS_NATS_USER: "u",
      MSGSYS_NATS_PASSWORD: PASSWORD,
      MSGSYS_NATS_TLS_CA: "ca.pem",
      MSGSYS_POOLS: "x=1",
      MSGSYS_AUDIT_RETENTION: "off"
    })
    expect(fromCode(full)).toEqual(full)
  })

  test("bad overrides are all reported, named by their path", () => {
    const e = badCode({ httpPort: 70_000, ackWait: "soon" as never, nats: { connectAttempts: 1.5, tls: { cert: "c.pem" } } })
    expect(e.problems.map((p) => [p.variable, p.value, p.problem])).toEqual([
      ["nats.connectAttempts", "1.5", "not an integer"],
      ["httpPort", "70000", "out of range"],
      ["ackWait", "soon", "not a duration"],
      ["nats.tls.key", undefined, "missing while nats.tls.cert is set"]
    ])
  })

  test("layerFrom provides the service, and fails with ConfigInvalid on bad input", () => {
    const port = Effect.runSync(
      Effect.map(service, (c) => c.httpPort).pipe(
        Effect.provide(MsgsysConfig.layerFrom({ httpPort: 9090 }))
      )
    )
    expect(port).toBe(9090)
    const exit = Effect.runSyncExit(
      service.pipe(Effect.provide(MsgsysConfig.layerFrom({ httpPort: -5 })))
    )
    expect(invalid(exit).problems.map((p) => p.variable)).toEqual(["httpPort"])
  })
})

describe("layer", () => {
  const read = (env: Record<string, string>) =>
    Effect.runSyncExit(
      service.pipe(
        Effect.provide(MsgsysConfig.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))))
      )
    )

  test("reads the variables through the current ConfigProvider", () => {
    const exit = read({ MSGSYS_HTTP_PORT: "8080", MSGSYS_NATS_URL: "a:1", OTHER: "x" })
    if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
    expect(exit.value.httpPort).toBe(8080)
    expect(exit.value.nats.servers).toEqual(["nats://a:1"])
    expect(exit.value.pools).toEqual(MsgsysConfig.defaults.pools)
  })

  test("reports all problems from the environment", () => {
    const e = invalid(read({ MSGSYS_HTTP_PORT: "x", MSGSYS_ACK_WAIT: "y" }))
    expect(e.problems.map((p) => p.variable)).toEqual(["MSGSYS_HTTP_PORT", "MSGSYS_ACK_WAIT"])
  })
})

describe("unknownVariables", () => {
  test("names a misspelt variable with the closest real one, and ignores other prefixes", () => {
    expect(MsgsysConfig.unknownVariables({ MSGSYS_NATS_UR: "x", MSGSYS_HTTP_PORT: "1", PATH: "/bin", MSGSYS_ZZZZZZZZZZZZ: "" }))
      .toEqual([
        "MSGSYS_NATS_UR is not a msgsys variable; did you mean MSGSYS_NATS_URL?",
        "MSGSYS_ZZZZZZZZZZZZ is not a msgsys variable"
      ])
  })
})

describe("ShortDuration", () => {
  test("is a schema any Config can use: short forms in, Duration.format out", () => {
    const d = Effect.runSync(Config.schema(MsgsysConfig.ShortDuration, "T").parse(ConfigProvider.fromUnknown({ T: "1h30m" })))
    expect(ms(d)).toBe(5_400_000)
    expect(Schema.encodeSync(MsgsysConfig.ShortDuration)(d)).toBe("1h 30m")
    expect(Exit.isFailure(Effect.runSyncExit(Config.schema(MsgsysConfig.ShortDuration, "T").parse(ConfigProvider.fromUnknown({ T: "soon" })))))
      .toBe(true)
  })
})
