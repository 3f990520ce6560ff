/**
 * The ETL actor tested the way a user tests theirs: its real handlers on the in-memory broker of
 * msgsys/testing, time driven by the TestClock. No nats-server.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Client } from "msgsys"
import { MemoryBroker } from "msgsys/testing"
import { Etl, EtlLive, Extract, Transform } from "./Etl.ts"

const TestLayer = MemoryBroker.layer([Etl]).pipe(Layer.provide(EtlLive))

const run = <A, E>(body: Effect.Effect<A, E, Client.Client | MemoryBroker.MemoryBroker>) =>
  Effect.runPromise(body.pipe(Effect.provide(TestLayer), Effect.scoped, Effect.provide(TestClock.layer())))

describe("etl on the in-memory broker", () => {
  test("an extract returns its rows, and a transform its total", () =>
    run(Effect.gen(function*() {
      const client = yield* Client.Client
      const extract = yield* client.enqueue(Extract, { tenant: "acme", source: "crm", rows: 120 })
      const transform = yield* client.enqueue(Transform, { tenant: "acme", values: [1, 2, 3.5] })
      // the extract takes 20 ms of (test) time
      yield* TestClock.adjust("20 millis")
      expect(yield* client.result(extract, "1 minute")).toEqual({ tenant: "acme", extracted: 120 })
      expect(yield* client.result(transform, "1 minute")).toEqual({ tenant: "acme", total: 6.5, count: 3 })
    })))

  test("an unknown account is permanent: one run, straight to dead letters, the typed error kept", () =>
    run(Effect.gen(function*() {
      const client = yield* Client.Client
      const broker = yield* MemoryBroker.MemoryBroker
      const handle = yield* client.enqueue(Extract, { tenant: "unknown", source: "crm", rows: 1 })
      const failed = yield* Effect.flip(client.result(handle, "1 minute"))
      expect(failed._tag).toBe("TaskFailed")
      const letters = yield* broker.deadLetters
      expect(letters.map((l) => [l.reason, l.error.tag, l.attempts])).toEqual([["permanent", "UnknownAccount", 1]])
      expect(letters[0]!.error.encoded).toEqual({ _tag: "UnknownAccount", tenant: "unknown" })
    })))

  test("one tenant's extracts run one at a time, in order, while another tenant's run beside them", () =>
    run(Effect.gen(function*() {
      const client = yield* Client.Client
      const handles = [
        yield* client.enqueue(Extract, { tenant: "acme", source: "a", rows: 1 }),
        yield* client.enqueue(Extract, { tenant: "acme", source: "b", rows: 2 }),
        yield* client.enqueue(Extract, { tenant: "globex", source: "a", rows: 3 })
      ]
      // acme's two take 20 ms each, one after the other; globex's runs beside the first
      yield* TestClock.adjust("20 millis")
      expect((yield* client.status(handles[0]!.id)).status).toBe("succeeded")
      expect((yield* client.status(handles[2]!.id)).status).toBe("succeeded")
      expect((yield* client.status(handles[1]!.id)).status).not.toBe("succeeded")
      yield* TestClock.adjust("20 millis")
      expect(yield* client.result(handles[1]!, "1 minute")).toEqual({ tenant: "acme", extracted: 2 })
    })))
})
