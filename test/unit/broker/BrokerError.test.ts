/**
 * Which failures are asked again: what may well succeed soon (nobody answered, no answer in time,
 * JetStream temporarily unavailable while a cluster recovers), wherever it sits in a chain of
 * causes; never a refusal, which would fail again the same way.
 */
import { describe, expect, test } from "bun:test"
import { JetStreamApiError } from "@nats-io/jetstream"
import { NoRespondersError, TimeoutError } from "@nats-io/transport-node"
import { BrokerError, isTransient } from "../../../src/broker/BrokerError.ts"

const apiError = (code: number, err_code: number, description: string) => new JetStreamApiError({ code, err_code, description })

describe("isTransient", () => {
  test("nobody answered, no answer in time, and JetStream temporarily unavailable are transient, at any depth of causes", () => {
    const unavailable = apiError(503, 10008, "JetStream system temporarily unavailable")
    for (const cause of [new NoRespondersError("$JS.API.INFO"), new TimeoutError(), unavailable]) {
      expect(isTransient(cause)).toBe(true)
      expect(isTransient(new BrokerError({ operation: "read", reason: "x", cause }))).toBe(true)
      expect(isTransient(new Error("outer", { cause: new Error("middle", { cause }) }))).toBe(true)
    }
  })

  test("a refusal is not: wrong last sequence, stream not found, a permission, a plain error", () => {
    for (
      const cause of [
        apiError(400, 10071, "wrong last sequence: 4"),
        apiError(404, 10059, "stream not found"),
        new Error("Permissions Violation for Publish to \"x\""),
        undefined
      ]
    ) {
      expect(isTransient(cause)).toBe(false)
      expect(isTransient(new BrokerError({ operation: "write", reason: "x", cause }))).toBe(false)
    }
  })
})
