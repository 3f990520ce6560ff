/**
 * Payload redaction for the audit log.
 * @since 0.1.0
 */

/** The replacement for a redacted value. @since 0.1.0 */
export const redactedMarker = "[redacted]"

/**
 * A copy of `value` where every object key named in `fields` (case-insensitive), at any depth and
 * inside arrays, has its value replaced by `"[redacted]"`. Returns `value` itself when there is
 * nothing to redact.
 * @since 0.1.0
 */
export const redact = (value: unknown, fields: ReadonlySet<string>): unknown => {
  if (fields.size === 0 || value === null || typeof value !== "object") return value
  if (Array.isArray(value)) return value.map((v) => redact(v, fields))
  if (value instanceof Date || ArrayBuffer.isView(value)) return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    out[k] = fields.has(k.toLowerCase()) ? redactedMarker : redact(v, fields)
  }
  return out
}

/** The lower-cased set `redact` expects. @since 0.1.0 */
export const fieldSet = (fields: ReadonlyArray<string>): ReadonlySet<string> =>
  new Set(fields.map((f) => f.toLowerCase()))

/**
 * The JSON text stored for a payload, or null. Never throws: a value JSON cannot encode (a
 * BigInt, a cycle) is stored as a JSON string saying so, so an odd payload never blocks an ack.
 * @since 0.1.0
 */
export const payloadText = (
  payload: unknown,
  mode: "off" | "redacted" | "full",
  fields: ReadonlySet<string>
): string | null => {
  if (mode === "off" || payload === undefined) return null
  const value = mode === "redacted" ? redact(payload, fields) : payload
  try {
    return JSON.stringify(value) ?? null
  } catch (e) {
    return JSON.stringify(`[unserializable payload: ${e instanceof Error ? e.message : String(e)}]`)
  }
}
