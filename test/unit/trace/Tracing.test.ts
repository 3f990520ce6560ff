/**
 * Where spans go, and when tracing is off: with Effect's native tracer msgsys makes no span for a
 * message (the cost rule), and a `traceparent` maps to a parent span and back without loss.
 */
import { describe, expect, test } from "bun:test"
import { Clock, Context, Effect, Exit, Option, References, Tracer } from "effect"
import * as Envelope from "../../../src/envelope/Envelope.ts"
import * as Tracing from "../../../src/trace/Tracing.ts"

const clock = Effect.runSync(Clock.Clock)

describe("exportOf", () => {
  test("MSGSYS_OTLP_ENDPOINT is a base URL (spans go to /v1/traces under it) and wins over the OTEL variables; off exports nothing", () => {
    const env = { endpoint: "http://otel-a:4318", tracesEndpoint: "http://otel-b:4318/custom" }
    expect(Tracing.exportOf(Option.some("http://collector:4318"), env)).toEqual({ url: "http://collector:4318/v1/traces", protocol: "http/protobuf" })
    expect(Tracing.exportOf(Option.some("http://collector:4318/v1/traces/"), {})?.url).toBe("http://collector:4318/v1/traces")
    expect(Tracing.exportOf(Option.some("off"), env)).toBeUndefined()
  })

  test("unset, the standard variables decide: the traces endpoint as it is, else the base + /v1/traces; OTEL_SDK_DISABLED or nothing set: no export", () => {
    expect(Tracing.exportOf(Option.none(), { endpoint: "http://otel:4318/", tracesEndpoint: "http://otel:9999/t" })?.url).toBe("http://otel:9999/t")
    expect(Tracing.exportOf(Option.none(), { endpoint: "http://otel:4318/" })?.url).toBe("http://otel:4318/v1/traces")
    expect(Tracing.exportOf(Option.none(), { endpoint: "http://otel:4318", sdkDisabled: true })).toBeUndefined()
    expect(Tracing.exportOf(Option.none(), {})).toBeUndefined()
  })

  test("the protocol is http/protobuf unless the OTEL variables say http/json", () => {
    expect(Tracing.exportOf(Option.some("http://c:4318"), { protocol: "http/json" })?.protocol).toBe("http/json")
    expect(Tracing.exportOf(Option.some("http://c:4318"), { protocol: "grpc" })?.protocol).toBe("http/protobuf")
  })
})

describe("tracing off", () => {
  test("with Effect's native tracer no span maker exists, so no message gets a span", () => {
    expect(Tracing.tracerOf(Context.empty())).toBeUndefined()
    expect(Tracing.messageSpans(Context.empty(), clock)).toBeUndefined()
  })

  test("a tracer of the program's own turns it on, and disabling tracing turns it off again", () => {
    const spans: Array<Tracer.NativeSpan> = []
    const tracer = Tracer.make({ span: (o) => { const s = new Tracer.NativeSpan(o); spans.push(s); return s } })
    const on = Context.make(Tracer.Tracer, tracer)
    const made = Tracing.messageSpans(on, clock)!
    const about = { actor: "a", subject: "a.b", attempt: 1, envelope: Envelope.makeUnsafe("a.b", 0, { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }) }
    const span = made.handle([about])
    made.end(span, Exit.void)
    expect(spans).toHaveLength(1)
    expect(span.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736")
    expect(Option.getOrUndefined(span.parent)?.spanId).toBe("00f067aa0ba902b7")
    expect(span.status._tag).toBe("Ended")
    expect(Tracing.messageSpans(Context.add(on, References.TracerEnabled, false), clock)).toBeUndefined()
  })
})

describe("trace context", () => {
  test("a traceparent becomes a parent span with its ids and sampled flag, and a span a traceparent again", () => {
    const parent = Tracing.parentOf("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")!
    expect([parent.traceId, parent.spanId, parent.sampled]).toEqual(["4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false])
    expect(Tracing.traceparentOf(parent)).toBe("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    expect(Tracing.parentOf("00-00000000000000000000000000000000-00f067aa0ba902b7-01")).toBeUndefined()
    expect(Tracing.parentOf(undefined)).toBeUndefined()
  })

  test("a span without real ids (tracing disabled in its fiber) gives no traceparent", () => {
    expect(Tracing.traceparentOf(Tracer.externalSpan({ traceId: "noop", spanId: "noop" }))).toBeUndefined()
  })
})
