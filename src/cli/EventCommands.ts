/**
 * `msgsys events publish|groups|replay`: publishing raw JSON events, each group's lag, and
 * replaying a group from a time or a stream sequence.
 * @since 0.1.0
 */
import { Clock, Console, Data, Duration, Effect, Option, Runtime } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import * as Topology from "../broker/Topology.ts"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"
import * as Event from "../event/Event.ts"
import * as EventTopology from "../event/EventTopology.ts"
import * as Groups from "../event/Groups.ts"
import * as Replay from "../event/Replay.ts"
import * as Control from "../control/Control.ts"
import * as Client from "../client/Client.ts"
import { InvalidJson } from "./CliInput.ts"
import { clientLayer } from "./CliLayers.ts"
import { ExitCode } from "./Usage.ts"

/** `--since` is neither a duration back from now nor a time. @category errors @since 0.1.0 */
export class InvalidSince extends Data.TaggedError("InvalidSince")<{ readonly value: string }> {
  // a malformed flag value: the command line is wrong
  override readonly [Runtime.errorExitCode] = ExitCode.usage
  override get message() {
    return `--since ${JSON.stringify(this.value)} is neither a duration back from now (1h, 30m, 2d) nor a time ` +
      "(2026-11-30T10:00Z, 2026-11-30T10:00:00+01:00)"
  }
}

/** A replay needs exactly one start. @category errors @since 0.1.0 */
export class ReplayStartMissing extends Data.TaggedError("ReplayStartMissing")<{ readonly both: boolean }> {
  override readonly [Runtime.errorExitCode] = ExitCode.usage
  override get message() {
    return this.both
      ? "give --since or --seq, not both"
      : "say where the replay starts: --since 1h (a duration back from now), --since 2026-11-30T10:00Z, or --seq N (a stream sequence)"
  }
}

/** `1h` → an hour ago; `2026-11-30T10:00Z` → that time. @category parsing @since 0.1.0 */
export const parseSince = (value: string, now: number): Effect.Effect<Date, InvalidSince> => {
  // a bare number would be milliseconds: too easy to misread, so a duration needs its unit
  const ago = /[a-z]/i.test(value) ? MsgsysConfig.parseDuration(value) : Option.none()
  if (Option.isSome(ago) && Duration.isFinite(ago.value) && !Duration.isNegative(ago.value)) {
    return Effect.succeed(new Date(now - Duration.toMillis(ago.value)))
  }
  // a time needs a date and a time of day; Date.parse alone also takes "1" or "May"
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value.trim()) ? Date.parse(value.trim()) : Number.NaN
  return Number.isNaN(ms) ? Effect.fail(new InvalidSince({ value })) : Effect.succeed(new Date(ms))
}

const names = Effect.map(MsgsysConfig.MsgsysConfig, (c) => Subjects.make(c.streamPrefix))

const jsonFlag = Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print JSON"))

const publish = Command.make("publish", {
  subject: Argument.String("subject").pipe(Argument.withDescription("event subject, e.g. events.user.registered")),
  payload: Argument.String("payload").pipe(Argument.withDescription("the payload as JSON"), Argument.withDefault("{}")),
  id: Flag.String("id").pipe(Flag.optional, Flag.withDescription("event id: the same id again within 2 minutes is stored once")),
  tenant: Flag.String("tenant").pipe(Flag.optional),
  correlationId: Flag.String("correlation-id").pipe(Flag.optional),
  version: Flag.Int("version").pipe(Flag.optional, Flag.withDescription("the payload's schema version (default 1)")),
  json: jsonFlag
}, (args) =>
  Effect.gen(function*() {
    const payload = yield* Effect.try({
      try: () => JSON.parse(args.payload) as unknown,
      catch: (e) => new InvalidJson({ what: "the event payload", reason: (e as Error).message })
    })
    const settings = yield* MsgsysConfig.MsgsysConfig
    const n = yield* names
    const subject = yield* Subjects.validateSubject(args.subject, n.prefix, "event")
    // the domain's stream, so an event no worker has declared a group for yet is kept
    const domain = Event.domainOf(subject)
    yield* Topology.apply(EventTopology.forDomain(n, domain, settings))
    const client = yield* Client.Client
    const published = yield* client.publishJson(subject, payload, {
      ...(Option.isSome(args.id) ? { id: args.id.value } : {}),
      ...(Option.isSome(args.tenant) ? { tenant: args.tenant.value } : {}),
      ...(Option.isSome(args.correlationId) ? { correlationId: args.correlationId.value } : {}),
      ...(Option.isSome(args.version) ? { version: args.version.value } : {})
    })
    const stream = n.eventStream(domain)
    if (args.json) return yield* Console.log(JSON.stringify({ ...published, subject, stream }, null, 2))
    yield* Console.log(published.duplicate
      ? `duplicate: event ${published.id} was already stored as ${stream} #${published.sequence}; nothing new was stored`
      : `published event ${published.id} as ${stream} #${published.sequence}`)
  }).pipe(Effect.provide(clientLayer))).pipe(
    Command.withDescription("publish a JSON event (no schema here: the groups' handlers check it); prints its id and stream sequence"),
    Command.withExamples([
      { command: "msgsys events publish events.user.registered '{\"userId\":\"u-1\"}' --tenant acme", description: "publish one event" },
      { command: "msgsys events publish events.user.registered '{\"userId\":\"u-1\"}' --id reg-u-1 --json", description: "stored once per id; the result as JSON" }
    ])
  )

const groups = Command.make("groups", {
  domain: Flag.String("domain").pipe(Flag.optional, Flag.withDescription("only this domain's stream (the subjects' first token)")),
  json: jsonFlag
}, (args) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    const control = yield* Control.Control
    const domains = yield* Groups.list(nats, yield* names, { domain: Option.getOrUndefined(args.domain) })
    const paused = new Set((yield* control.paused).filter((t) => t.kind === "actor").map((t) => t.name))
    const all = yield* Effect.forEach(domains, (d) =>
      Effect.map(
        Effect.forEach(d.groups, (g) => Effect.map(control.epochs(g.name), (e) => ({ ...g, paused: paused.has(g.name), epoch: e.epochs.epoch }))),
        (gs) => ({ ...d, groups: gs })
      ))
    if (args.json) return yield* Console.log(JSON.stringify(all, null, 2))
    if (all.length === 0) {
      return yield* Console.log(Option.isSome(args.domain)
        ? `no events stream for domain ${args.domain.value}`
        : "no events streams: a worker with event groups, or `msgsys events publish`, declares them")
    }
    for (const d of all) {
      yield* Console.log(`${d.stream}  domain ${d.domain}  ${d.messages} events held  sequences ${d.firstSequence}..${d.lastSequence}`)
      if (d.groups.length === 0) yield* Console.log("  no groups")
      for (const g of d.groups) {
        yield* Console.log(
          `  ${g.name}  filter ${g.filter ?? "(all)"}  lag ${g.pending}  ack pending ${g.ackPending}  ` +
            `redelivered ${g.redelivered}  delivered #${g.deliveredSequence} of #${d.lastSequence}` +
            (g.epoch > 0 ? `  replay epoch ${g.epoch}` : "") + (g.paused ? "  PAUSED" : "")
        )
      }
    }
  }).pipe(Effect.provide(clientLayer))).pipe(
    Command.withDescription("every events stream and its groups: filter, lag (not yet delivered), ack pending, redelivered, last delivered vs last sequence"),
    Command.withExamples([
      { command: "msgsys events groups", description: "every group and how far behind it is" },
      { command: "msgsys events groups --domain events --json", description: "one domain's, as JSON" }
    ])
  )

const replay = Command.make("replay", {
  group: Argument.String("group"),
  since: Flag.String("since").pipe(Flag.optional, Flag.withDescription("from this long ago (1h) or this time (2026-11-30T10:00Z)")),
  seq: Flag.Int("seq").pipe(Flag.optional, Flag.withDescription("from this stream sequence")),
  domain: Flag.String("domain").pipe(Flag.optional, Flag.withDescription("the group's domain, when groups of its name read several")),
  json: jsonFlag
}, (args) =>
  Effect.gen(function*() {
    if (Option.isSome(args.since) === Option.isSome(args.seq)) return yield* new ReplayStartMissing({ both: Option.isSome(args.since) })
    const from: Replay.From = Option.isSome(args.seq)
      ? { sequence: args.seq.value }
      : { since: yield* parseSince(Option.getOrThrow(args.since), yield* Clock.currentTimeMillis) }
    const done = yield* Replay.run(args.group, { from, domain: Option.getOrUndefined(args.domain) })
    if (args.json) return yield* Console.log(JSON.stringify(done, null, 2))
    yield* Console.log(
      `group ${done.group} (${done.stream}) replays from #${done.from}, epoch ${done.epoch}: ${done.pending} event(s) to deliver` +
        (done.redeliverFrom < done.from
          ? `; from #${done.redeliverFrom} on, the events it had not settled yet are delivered again and run once`
          : "")
    )
    if (done.stayedPaused) yield* Console.log(`the group was paused and stays paused: \`msgsys resume ${done.group}\` starts the replay`)
  }).pipe(Effect.provide(clientLayer))).pipe(
    Command.withDescription("make a group handle its events again from a time (--since) or a stream sequence (--seq)"),
    Command.withExamples([
      { command: "msgsys events replay welcome-mails --since 1h", description: "the last hour's events again" },
      { command: "msgsys events replay welcome-mails --since 2026-11-30T10:00Z", description: "from a time" },
      { command: "msgsys events replay welcome-mails --seq 1200", description: "from a stream sequence" }
    ])
  )

/** @category commands @since 0.1.0 */
export const events = Command.make("events").pipe(
  Command.withDescription("publish events, look at the groups, replay a group"),
  Command.withExamples([
    { command: "msgsys events groups", description: "the groups and their lag" },
    { command: "msgsys events replay welcome-mails --since 1h", description: "handle the last hour again" }
  ]),
  Command.withSubcommands([publish, groups, replay])
)
