/**
 * Spans for what msgsys does with a message — `publish` (a client's enqueue or event publish),
 * `handle` (one handler run, a child of the message's `traceparent`), `retry` and `dead-letter` —
 * made by the Effect tracer in context and exported over OTLP/HTTP when an endpoint is configured
 * (`MSGSYS_OTLP_ENDPOINT`, or the standard `OTEL_EXPORTER_OTLP_*` variables).
 *
 * With Effect's native tracer (no endpoint, no tracer of the program's own) tracing is off and
 * costs nothing per message beyond its `traceparent` header: no span is made, no context added.
 * @since 0.1.0
 */
import { type Clock, Config, Context, Effect, Exit, Layer, Option, References, Schema, Tracer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as Envelope from "../envelope/Envelope.ts"
import { version } from "../config/Version.ts"
import type * as MessageLog from "./MessageLog.ts"

// ---------------------------------------------------------------------------------------------
// where spans go

/** The standard OpenTelemetry variables msgsys reads. @category models @since 0.1.0 */
export interface OtelEnv {
  /** `OTEL_SDK_DISABLED=true`: no export, whatever else is set. */
  readonly sdkDisabled?: boolean | undefined
  /** `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full URL spans are posted to. */
  readonly tracesEndpoint?: string | undefined
  /** `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL; spans go to `/v1/traces` under it. */
  readonly endpoint?: string | undefined
  /** `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`. */
  readonly protocol?: string | undefined
}

/** Where and how spans are exported. @category models @since 0.1.0 */
export interface Export {
  /** The URL spans are posted to. */
  readonly url: string
  /** `http/protobuf` (the OpenTelemetry default) or `http/json`. */
  readonly protocol: "http/protobuf" | "http/json"
}

const tracesUnder = (base: string) => `${base.replace(/\/+$/, "")}/v1/traces`

/**
 * Where spans go: `MSGSYS_OTLP_ENDPOINT` (a base URL; "off" exports nothing), else
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`;
 * `undefined`: tracing off. The protocol is http/protobuf unless the OTEL variables say http/json.
 * @category export @since 0.1.0
 */
export const exportOf = (endpoint: Option.Option<string>, env: OtelEnv): Export | undefined => {
  const protocol = env.protocol?.trim().toLowerCase() === "http/json" ? "http/json" : "http/protobuf"
  if (Option.isSome(endpoint)) {
    if (endpoint.value.toLowerCase() === "off") return undefined
    const url = endpoint.value.replace(/\/+$/, "")
    return { url: url.endsWith("/v1/traces") ? url : tracesUnder(url), protocol }
  }
  if (env.sdkDisabled === true) return undefined
  const given = env.tracesEndpoint?.trim() || undefined
  if (given !== undefined) return { url: given, protocol }
  const base = env.endpoint?.trim() || undefined
  return base === undefined ? undefined : { url: tracesUnder(base), protocol }
}

const optionalText = (name: string) => Config.option(Config.String(name)).pipe(Config.map(Option.getOrUndefined))

const otelEnv: Config.Config<OtelEnv & { readonly serviceName: string | undefined; readonly headers: Record<string, string> | undefined; readonly delayMs: number | undefined }> =
  Config.all({
    sdkDisabled: Config.option(Config.Boolean("OTEL_SDK_DISABLED")).pipe(Config.map(Option.getOrUndefined)),
    tracesEndpoint: optionalText("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    endpoint: optionalText("OTEL_EXPORTER_OTLP_ENDPOINT"),
    protocol: Config.all([optionalText("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), optionalText("OTEL_EXPORTER_OTLP_PROTOCOL")]).pipe(
      Config.map(([traces, all]) => traces ?? all)
    ),
    serviceName: optionalText("OTEL_SERVICE_NAME"),
    // `key=value,key=value`, values percent-encoded: an API key of a vendor's collector
    headers: Config.Record(Schema.String, Schema.StringFromUriComponent, "OTEL_EXPORTER_OTLP_TRACES_HEADERS").pipe(
      Config.orElse(() => Config.Record(Schema.String, Schema.StringFromUriComponent, "OTEL_EXPORTER_OTLP_HEADERS")),
      Config.option,
      Config.map((o) => Option.getOrUndefined(o) as Record<string, string> | undefined)
    ),
    delayMs: Config.option(Config.Int("OTEL_BSP_SCHEDULE_DELAY")).pipe(Config.map(Option.getOrUndefined))
  })

/** The URL without credentials or query, for a log line. */
const shown = (url: string) => {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname}`
  } catch {
    return "(an unparsable URL)"
  }
}

/**
 * Installs the OTLP tracer when the config names an endpoint (see `exportOf`); otherwise nothing,
 * and Effect's native tracer stays (tracing off). Spans are batched and posted every
 * `OTEL_BSP_SCHEDULE_DELAY` ms (default 5000), and flushed when the layer's scope closes. The
 * service name is `OTEL_SERVICE_NAME`, default `msgsys`; `OTEL_RESOURCE_ATTRIBUTES` and
 * `OTEL_EXPORTER_OTLP_HEADERS` are honoured.
 * @category layers @since 0.1.0
 */
export const layer: Layer.Layer<never, never, MsgsysConfig> = Layer.unwrap(
  Effect.gen(function*() {
    const settings = yield* MsgsysConfig
    const env = yield* Effect.tapError(otelEnv, (e) =>
      Effect.logWarning(`an OTEL_* variable does not read, so spans are not exported: ${e.message}`)).pipe(
        Effect.orElseSucceed(() => undefined)
      )
    const target = env === undefined ? undefined : exportOf(settings.otlpEndpoint, env)
    if (target === undefined || env === undefined) return Layer.empty
    yield* Effect.logInfo(`spans go to ${shown(target.url)} (OTLP ${target.protocol})`)
    return OtlpTracer.layer({
      url: target.url,
      resource: { serviceName: env.serviceName ?? "msgsys", serviceVersion: version },
      headers: env.headers,
      ...(env.delayMs !== undefined ? { exportInterval: env.delayMs } : {})
    }).pipe(
      Layer.provide(target.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf),
      Layer.provide(FetchHttpClient.layer)
    ) as Layer.Layer<never>
  })
)

// ---------------------------------------------------------------------------------------------
// spans

/**
 * The tracer of `context` when tracing is on: a tracer other than Effect's native one (which
 * exports nothing), with tracing enabled. `undefined`: tracing is off.
 * @category tracing @since 0.1.0
 */
export const tracerOf = (context: Context.Context<never>): Tracer.Tracer | undefined => {
  const tracer = Context.get(context, Tracer.Tracer)
  return tracer === Tracer.nativeTracer || !Context.get(context, References.TracerEnabled) ? undefined : tracer
}

/**
 * The span a `traceparent` names, as the parent of spans made for its message.
 * @category tracing @since 0.1.0
 */
export const parentOf = (traceparent: string | undefined): Tracer.ExternalSpan | undefined => {
  if (traceparent === undefined || !Envelope.isTraceparent(traceparent)) return undefined
  return Tracer.externalSpan({
    traceId: traceparent.slice(3, 35),
    spanId: traceparent.slice(36, 52),
    sampled: (Number.parseInt(traceparent.slice(53, 55), 16) & 1) === 1
  })
}

const HEX32 = /^[0-9a-f]{32}$/
const HEX16 = /^[0-9a-f]{16}$/

/**
 * The `traceparent` that makes a message a child of `span`; `undefined` for a span that is none
 * (tracing disabled in that fiber).
 * @category tracing @since 0.1.0
 */
export const traceparentOf = (span: Tracer.AnySpan): string | undefined => {
  const traceId = span.traceId.padStart(32, "0")
  return HEX32.test(traceId) && HEX16.test(span.spanId)
    ? `00-${traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
    : undefined
}

/**
 * The attributes of a span about a message (OpenTelemetry messaging names where one fits).
 * @category tracing @since 0.1.0
 */
export const attributesOf = (about: MessageLog.About): Record<string, unknown> => ({
  "messaging.system": "msgsys",
  "messaging.destination.name": about.subject,
  "messaging.message.id": about.envelope.id,
  "messaging.message.conversation_id": about.envelope.correlationId,
  "msgsys.actor": about.actor,
  "msgsys.tenant": about.envelope.tenant,
  "msgsys.attempt": about.attempt
})

/** Spans about messages, made outside any fiber (the dispatcher's callbacks). @category models @since 0.1.0 */
export interface MessageSpans {
  /**
   * Starts the span of one handler run: `handle <subject>`, a child of the first message's
   * trace context, linked to the others' (a batch handler's run).
   */
  readonly handle: (messages: ReadonlyArray<MessageLog.About>) => Tracer.Span
  /**
   * Starts `retry <subject>` or `dead-letter <subject>`: a child of the handler run's span, or of
   * the message's trace context when no handler ran (poison, a key decided dead earlier).
   */
  readonly step: (
    step: "retry" | "dead-letter",
    about: MessageLog.About,
    parent: Tracer.Span | undefined,
    attributes: Record<string, unknown>
  ) => Tracer.Span
  /** Ends a span with the outcome of what it covered. */
  readonly end: (span: Tracer.Span, exit: Exit.Exit<unknown, unknown>) => void
}

/**
 * Span makers for the tracer of `context`; `undefined` when tracing is off, so a caller makes no
 * span at all.
 * @category tracing @since 0.1.0
 */
export const messageSpans = (context: Context.Context<never>, clock: Clock.Clock): MessageSpans | undefined => {
  const tracer = tracerOf(context)
  if (tracer === undefined) return undefined
  const start = (
    name: string,
    parent: Tracer.AnySpan | undefined,
    kind: Tracer.SpanKind,
    attributes: Record<string, unknown>,
    links: Array<Tracer.SpanLink> = []
  ) => {
    const span = tracer.span({
      name,
      parent: Option.fromUndefinedOr(parent),
      annotations: Context.empty(),
      links,
      startTime: clock.currentTimeNanosUnsafe(),
      kind,
      root: parent === undefined,
      sampled: parent?.sampled ?? true
    })
    for (const key in attributes) span.attribute(key, attributes[key])
    return span
  }
  return {
    handle: (messages) => {
      const first = messages[0]!
      const links: Array<Tracer.SpanLink> = []
      for (let i = 1; i < messages.length; i++) {
        const other = parentOf(messages[i]!.envelope.traceparent)
        if (other !== undefined) links.push({ span: other, attributes: { "messaging.message.id": messages[i]!.envelope.id } })
      }
      const attributes = attributesOf(first)
      if (messages.length > 1) attributes["messaging.batch.message_count"] = messages.length
      return start(`handle ${first.subject}`, parentOf(first.envelope.traceparent), "consumer", attributes, links)
    },
    step: (step, about, parent, attributes) =>
      start(`${step} ${about.subject}`, parent ?? parentOf(about.envelope.traceparent), "internal", {
        ...attributesOf(about),
        ...attributes
      }),
    end: (span, exit) => span.end(clock.currentTimeNanosUnsafe(), exit)
  }
}
