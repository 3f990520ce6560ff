/**
 * A real OTLP/HTTP traces receiver for tests: a Bun server on a free loopback port that keeps
 * every span posted to `/v1/traces`, in protobuf (the OpenTelemetry default) or JSON, whichever
 * the exporter sends. The protobuf reader knows only the fields the tests look at.
 */

/** One received span: ids as lower-case hex, attributes as plain values. */
export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  /** Empty for a root span. */
  readonly parentSpanId: string
  readonly name: string
  readonly attributes: Readonly<Record<string, string | number | boolean>>
  /** 0 unset, 1 ok, 2 error. */
  readonly statusCode: number
}

// ---------------------------------------------------------------------------------------------
// protobuf: just enough of the wire format to walk ExportTraceServiceRequest

type Field = { readonly field: number; readonly varint?: bigint; readonly bytes?: Uint8Array }

const fields = (buf: Uint8Array): Array<Field> => {
  const out: Array<Field> = []
  let i = 0
  const varint = (): bigint => {
    let result = 0n
    let shift = 0n
    for (;;) {
      const b = buf[i++]!
      result |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return result
      shift += 7n
    }
  }
  while (i < buf.length) {
    const key = Number(varint())
    const field = key >>> 3
    const wire = key & 7
    if (wire === 0) out.push({ field, varint: varint() })
    else if (wire === 1) {
      out.push({ field, bytes: buf.subarray(i, i + 8) })
      i += 8
    } else if (wire === 2) {
      const length = Number(varint())
      out.push({ field, bytes: buf.subarray(i, i + length) })
      i += length
    } else if (wire === 5) {
      out.push({ field, bytes: buf.subarray(i, i + 4) })
      i += 4
    } else throw new Error(`protobuf wire type ${wire} not expected in OTLP traces`)
  }
  return out
}

const hex = (b: Uint8Array | undefined) => b === undefined ? "" : Buffer.from(b).toString("hex")
const text = (b: Uint8Array | undefined) => b === undefined ? "" : new TextDecoder().decode(b)
const sub = (fs: ReadonlyArray<Field>, n: number) => fs.filter((f) => f.field === n).map((f) => fields(f.bytes!))

const anyValue = (fs: ReadonlyArray<Field>): string | number | boolean => {
  for (const f of fs) {
    if (f.field === 1) return text(f.bytes)
    if (f.field === 2) return f.varint === 1n
    if (f.field === 3) return Number(BigInt.asIntN(64, f.varint!))
    if (f.field === 4) return new DataView(f.bytes!.buffer, f.bytes!.byteOffset, 8).getFloat64(0, true)
  }
  return ""
}

const fromProtobuf = (body: Uint8Array): Array<ReceivedSpan> =>
  sub(fields(body), 1).flatMap((resourceSpans) =>
    sub(resourceSpans, 2).flatMap((scopeSpans) =>
      sub(scopeSpans, 2).map((span) => ({
        traceId: hex(span.find((f) => f.field === 1)?.bytes),
        spanId: hex(span.find((f) => f.field === 2)?.bytes),
        parentSpanId: hex(span.find((f) => f.field === 4)?.bytes),
        name: text(span.find((f) => f.field === 5)?.bytes),
        attributes: Object.fromEntries(sub(span, 9).map((kv) => [
          text(kv.find((f) => f.field === 1)?.bytes),
          anyValue(sub(kv, 2)[0] ?? [])
        ])),
        statusCode: Number(sub(span, 15)[0]?.find((f) => f.field === 3)?.varint ?? 0n)
      }))
    )
  )

// ---------------------------------------------------------------------------------------------
// JSON

interface JsonKeyValue {
  readonly key: string
  readonly value: { readonly stringValue?: string; readonly boolValue?: boolean; readonly intValue?: string | number; readonly doubleValue?: number }
}

const fromJson = (body: unknown): Array<ReceivedSpan> =>
  ((body as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }> }).resourceSpans ?? [])
    .flatMap((r) => r.scopeSpans ?? [])
    .flatMap((s) => s.spans ?? [])
    .map((span) => ({
      traceId: String(span.traceId ?? ""),
      spanId: String(span.spanId ?? ""),
      parentSpanId: String(span.parentSpanId ?? ""),
      name: String(span.name ?? ""),
      attributes: Object.fromEntries(((span.attributes ?? []) as Array<JsonKeyValue>).map(({ key, value }) => [
        key,
        value.stringValue ?? value.boolValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.doubleValue ?? "")
      ])),
      statusCode: Number((span.status as { code?: number } | undefined)?.code ?? 0)
    }))

/** A receiver on a free loopback port; `close()` stops it. */
export const otlpReceiver = () => {
  const spans: Array<ReceivedSpan> = []
  const contentTypes = new Set<string>()
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      const url = new URL(request.url)
      if (request.method !== "POST" || url.pathname !== "/v1/traces") return new Response("not found", { status: 404 })
      const type = request.headers.get("content-type") ?? ""
      contentTypes.add(type)
      const body = new Uint8Array(await request.arrayBuffer())
      spans.push(...(type.includes("json") ? fromJson(JSON.parse(new TextDecoder().decode(body))) : fromProtobuf(body)))
      return new Response(null, { status: 200 })
    }
  })
  return {
    /** The base URL, as `MSGSYS_OTLP_ENDPOINT` takes it. */
    url: `http://127.0.0.1:${server.port}`,
    spans: (): ReadonlyArray<ReceivedSpan> => spans,
    contentTypes: (): ReadonlyArray<string> => [...contentTypes],
    close: () => server.stop(true)
  }
}
