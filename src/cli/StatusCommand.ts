/**
 * `msgsys status`: msgsys as its user thinks of it — per actor what is queued, running, retrying,
 * delayed and dead; the pools' in-flight work against their size; the workers alive now; the
 * last failures from this host's audit log. `--broker` adds the raw JetStream streams and
 * durable consumers of this installation; `--json` prints it as data; `--watch` redraws it every
 * two seconds until Ctrl-C.
 * @since 0.1.0
 */
import { Console, Effect, Layer } from "effect"
import { Command, Flag } from "effect/cli"
import { existsSync } from "node:fs"
import * as AuditQueries from "../audit/AuditQueries.ts"
import * as Nats from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import * as Services from "../app/Services.ts"
import * as StatusReport from "../status/StatusReport.ts"
import { clientLayer } from "./CliLayers.ts"
import * as Overview from "./Overview.ts"

/** Everything `msgsys status` shows, as `--json` prints it. @category models @since 0.1.0 */
export interface Status {
  readonly server: Nats.ServerFacts & { readonly url: string }
  readonly report: StatusReport.Report
  /** The last failures in this host's audit log; null when there is no audit file here. */
  readonly failures: ReadonlyArray<AuditQueries.Failure> | null
  readonly auditFile: string
  /** Only with `--broker`. */
  readonly broker?: Overview.Overview
}

const failuresShown = 10

/** The last failures, when this host has an audit file (never creates one). */
const lastFailures = (settings: MsgsysConfig.MsgsysSettings) =>
  settings.sqlitePath === ":memory:" || !existsSync(settings.sqlitePath)
    ? Effect.succeed(null)
    : AuditQueries.failures({ limit: failuresShown }).pipe(
      Effect.provide(Services.database.pipe(Layer.provide(Layer.succeed(MsgsysConfig.MsgsysConfig, settings)))),
      Effect.orElseSucceed(() => null)
    )

/**
 * Reads everything `msgsys status` shows.
 * @category reading @since 0.1.0
 */
export const read = (options: { readonly broker: boolean }) =>
  Effect.gen(function*() {
    const settings = yield* MsgsysConfig.MsgsysConfig
    const nats = yield* Nats.Nats
    const names = Subjects.make(settings.streamPrefix)
    const report = yield* StatusReport.read(names)
    const failures = yield* lastFailures(settings)
    const broker = options.broker ? yield* Overview.describe(nats, { prefix: `${settings.streamPrefix}_` }) : undefined
    const kv = options.broker ? yield* Overview.describe(nats, { prefix: `KV_${settings.streamPrefix}_` }) : undefined
    return {
      server: { ...nats.server, url: nats.connection.getServer() },
      report,
      failures,
      auditFile: settings.sqlitePath,
      ...(broker && kv
        ? {
          broker: {
            streams: [...broker.streams, ...kv.streams],
            // ephemeral consumers (KV watches, listings) come and go: only the durable ones
            consumers: [...broker.consumers, ...kv.consumers].filter((c) => c.durable)
          }
        }
        : {})
    } satisfies Status
  })

const ago = (ms: number) => {
  const s = Math.max(0, Math.round(ms / 1000))
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : s < 86400
    ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
    : `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, numeric: ReadonlySet<number>) => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    "  " + cells.map((c, i) => numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(header), ...rows.map(line)]
}

const oneLine = (text: string, max = 120) => {
  const flat = text.replace(/\s+/g, " ")
  return flat.length > max ? `${flat.slice(0, max)}…` : flat
}

/**
 * The text `msgsys status` prints.
 * @category rendering @since 0.1.0
 */
export const render = (s: Status): string => {
  const r = s.report
  const out: Array<string> = [
    `msgsys ${r.prefix} on nats-server ${s.server.version} at ${s.server.url}, ${new Date(r.at).toISOString()}`,
    ""
  ]
  if (r.actors.length === 0) {
    out.push("actors: none yet (no task stream with this prefix: start a worker, or check MSGSYS_STREAM_PREFIX)")
  } else {
    out.push(`actors (${r.actors.length}):`)
    out.push(...table(
      ["actor", "queued", "running", "retrying", "delayed", "dead", "workers", "pools"],
      r.actors.map((a) => [
        a.name + (a.paused ? " (paused)" : ""),
        String(a.queued),
        String(a.running),
        String(a.retrying),
        String(a.delayed),
        String(a.dead),
        String(a.workers),
        a.pools.join(",") || "-"
      ]),
      new Set([1, 2, 3, 4, 5, 6])
    ))
  }
  out.push("")
  if (r.pools.length > 0) {
    out.push(`pools (${r.pools.length}):`)
    out.push(...table(["pool", "in flight", "size", "workers"], r.pools.map((p) => [p.name, String(p.inFlight), String(p.size), String(p.workers)]), new Set([1, 2, 3])))
    out.push("")
  }
  if (r.workers.length === 0) out.push("workers: none alive")
  else {
    out.push(`workers alive (${r.workers.length}):`)
    out.push(...table(
      ["worker", "host", "pid", "version", "actors", "in flight", "up", "heartbeat"],
      r.workers.map((w) => [
        w.id,
        w.host,
        String(w.pid),
        w.version,
        w.actors.map((a) => a.name).join(",") || "-",
        String(w.inFlight),
        ago(r.at - w.since),
        `${ago(r.at - w.heartbeatAt)} ago`
      ]),
      new Set([2, 5])
    ))
  }
  out.push("")
  if (s.failures === null) out.push(`last failures: no audit file at ${s.auditFile} on this host`)
  else if (s.failures.length === 0) out.push("last failures: none in the last 24 hours")
  else {
    out.push(`last failures (${s.auditFile}):`)
    for (const f of s.failures) {
      out.push(`  ${new Date(f.at).toISOString()}  ${f.taskId}  ${f.subject}  attempt ${f.attempt}  ` +
        `${f.step === "dead_lettered" ? "dead-lettered" : "failed"}: ${oneLine(f.error ?? "")}`)
    }
  }
  if (s.broker !== undefined) {
    out.push("", `streams (${s.broker.streams.length}):`)
    for (const st of s.broker.streams) {
      out.push(`  ${st.name}  ${st.messages} msgs  ${st.bytes} bytes  subjects: ${st.subjects.join(" ")}`)
    }
    out.push("", `consumers (${s.broker.consumers.length}):`)
    for (const c of s.broker.consumers) {
      out.push(`  ${c.stream}/${c.name}  pending ${c.pending}  ack pending ${c.ackPending}  redelivered ${c.redelivered}`)
    }
  }
  return out.join("\n")
}

const watchEvery = "2 seconds"

/** @category commands @since 0.1.0 */
export const status = Command.make("status", {
  json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print it as JSON (one object per refresh with --watch)")),
  watch: Flag.Boolean("watch").pipe(Flag.withDefault(false), Flag.withDescription("refresh every 2 seconds until Ctrl-C")),
  broker: Flag.Boolean("broker").pipe(
    Flag.withDefault(false),
    Flag.withDescription("also list the raw JetStream streams and durable consumers of this installation")
  )
}, (args) =>
  Effect.gen(function*() {
    const once = Effect.gen(function*() {
      const s = yield* read({ broker: args.broker })
      if (args.json) return yield* Console.log(JSON.stringify(s, null, args.watch ? undefined : 2))
      // on a terminal, redraw in place
      const clear = args.watch && process.stdout.isTTY ? "\u001b[2J\u001b[H" : ""
      yield* Console.log(clear + render(s) + (args.watch ? `\n\nrefreshing every ${watchEvery}; Ctrl-C stops` : ""))
    })
    if (!args.watch) return yield* once
    return yield* once.pipe(Effect.andThen(Effect.sleep(watchEvery)), Effect.forever)
  }).pipe(Effect.provide(clientLayer), Effect.scoped)).pipe(
    Command.withDescription(
      "actors (queued, running, retrying, delayed, dead), pools, the workers alive and the last failures; " +
        "--broker adds the streams and consumers"
    ),
    Command.withExamples([
      { command: "msgsys status", description: "the installation at a glance" },
      { command: "msgsys status --watch", description: "refreshed every 2 seconds until Ctrl-C" },
      { command: "msgsys status --json | jq '.actors'", description: "for a script" },
      { command: "msgsys status --broker", description: "with the raw streams and consumers" }
    ])
  )
