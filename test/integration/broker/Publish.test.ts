/**
 * The pipelined publisher: every publish waits for its own stream ack, retries after a lost ack
 * are deduplicated, a missing stream is named, a broker restart mid-flight loses nothing, and what
 * went out on a connection that died without a word is sent again once it is back.
 */
import { describe, expect } from "bun:test"
import { Duration, Effect, Fiber } from "effect"
import * as EmbeddedNats from "../../../src/broker/EmbeddedNats.ts"
import * as Nats from "../../../src/broker/Nats.ts"
import * as Publish from "../../../src/broker/Publish.ts"
import { liveTest, uniqueName } from "../../support/harness.ts"
import { natsSettings } from "../../support/natsServers.ts"
import { tcpProxy } from "../../support/tcpProxy.ts"

const body = (s: string) => new TextEncoder().encode(s)

describe("Publish", () => {
  liveTest("2,000 publishes in flight at once each get their own ack", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedNats.make()
      const nats = yield* Nats.make(natsSettings(server.url))
      const stream = uniqueName("PUB")
      yield* Effect.promise(() => nats.manager.streams.add({ name: stream, subjects: [`${stream}.>`] }))
      const acks = yield* Effect.forEach(
        Array.from({ length: 2000 }, (_, i) => i),
        (i) => Publish.publish(nats.publisher, { subject: `${stream}.x`, data: body(`m${i}`), msgId: `id-${i}` }),
        { concurrency: "unbounded" }
      )
      expect(new Set(acks.map((a) => a.sequence)).size).toBe(2000)
      expect(acks.every((a) => a.stream === stream && !a.duplicate)).toBe(true)
      const info = yield* Effect.promise(() => nats.manager.streams.info(stream))
      expect(info.state.messages).toBe(2000)
      expect(nats.publisher.inFlight()).toBe(0)
    }))

  liveTest("headers arrive as sent, and a repeated msgId is reported duplicate with the first sequence", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedNats.make()
      const nats = yield* Nats.make(natsSettings(server.url))
      const stream = uniqueName("HDR")
      yield* Effect.promise(() => nats.manager.streams.add({ name: stream, subjects: [`${stream}.>`] }))
      const headers = { "Msgsys-Tenant": "acme", "X-Line": "a\r\nb" }
      const first = yield* Publish.publish(nats.publisher, { subject: `${stream}.x`, data: body("1"), headers, msgId: "k1" })
      const again = yield* Publish.publish(nats.publisher, { subject: `${stream}.x`, data: body("2"), msgId: "k1" })
      expect(again).toEqual({ stream, sequence: first.sequence, duplicate: true })
      const stored = yield* Effect.promise(() => nats.manager.streams.getMessage(stream, { seq: first.sequence }))
      expect(stored!.header.get("Msgsys-Tenant")).toBe("acme")
      expect(stored!.header.get("X-Line")).toBe("a b")
      expect(stored!.header.get("Nats-Msg-Id")).toBe("k1")
      expect(new TextDecoder().decode(stored!.data)).toBe("1")
    }))

  liveTest("a subject no stream stores fails with NoStreamForSubject naming it", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedNats.make()
      const nats = yield* Nats.make(natsSettings(server.url))
      const error = yield* Effect.flip(Publish.publish(nats.publisher, { subject: "nowhere.at.all", data: body("x") }))
      expect(error._tag).toBe("NoStreamForSubject")
      expect(error.message).toContain("nowhere.at.all")
    }))

  liveTest("publishes written to a connection that died without a word are sent again on reconnect, once, if they have a msgId or are repeatable; others are not", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedNats.make()
      const proxy = tcpProxy({ host: "127.0.0.1", port: Number(new URL(server.url).port) })
      yield* Effect.addFinalizer(() => Effect.sync(() => proxy.close()))
      // the dead connection is noticed by its pings, two unanswered
      const nats = yield* Nats.make(natsSettings(proxy.url, { pingInterval: Duration.millis(300) }))
      const stream = uniqueName("LOST")
      yield* Effect.promise(() => nats.manager.streams.add({ name: stream, subjects: [`${stream}.>`] }))

      proxy.stall()
      // one attempt each, with a timeout longer than the test: only a resend on reconnect stores them
      const once = { attempts: 1, timeoutMs: 120_000 }
      const send = (message: Publish.Message, options: Publish.Options) =>
        Effect.forkChild(Effect.result(Publish.publish(nats.publisher, message, options)), { startImmediately: true })
      const withId = yield* send({ subject: `${stream}.a`, data: body("a"), msgId: "lost-a" }, once)
      const repeatable = yield* send({ subject: `${stream}.b`, data: body("b"), repeatable: true }, once)
      const plain = yield* send({ subject: `${stream}.c`, data: body("c") }, { attempts: 1, timeoutMs: 4_000 })

      expect(yield* Fiber.join(withId)).toMatchObject({ _tag: "Success", success: { stream, duplicate: false } })
      expect(yield* Fiber.join(repeatable)).toMatchObject({ _tag: "Success", success: { stream, duplicate: false } })
      const lost = yield* Fiber.join(plain)
      expect(lost._tag === "Failure" && lost.failure.message).toContain("no ack from the stream")
      const info = yield* Effect.promise(() => nats.manager.streams.info(stream, { subjects_filter: ">" }))
      expect(info.state.subjects).toEqual({ [`${stream}.a`]: 1, [`${stream}.b`]: 1 })
    }), 30_000)

  liveTest("500 publishes sent while the broker is down are stored exactly once when it comes back", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedNats.make()
      const nats = yield* Nats.make(natsSettings(server.url, { maxReconnectAttempts: -1 }))
      const stream = uniqueName("RST")
      yield* Effect.promise(() => nats.manager.streams.add({ name: stream, subjects: [`${stream}.>`], storage: "file" }))
      yield* server.kill
      const sends = yield* Effect.forEach(
        Array.from({ length: 500 }, (_, i) => i),
        (i) =>
          Publish.publish(nats.publisher, { subject: `${stream}.x`, data: body(`${i}`), msgId: `r-${i}` }, {
            timeoutMs: 1000,
            attempts: 20
          }),
        { concurrency: "unbounded" }
      ).pipe(Effect.forkChild({ startImmediately: true }))
      yield* Effect.sleep("300 millis")
      expect(nats.publisher.inFlight()).toBe(500)
      yield* server.start
      const acks = yield* Fiber.join(sends)
      expect(acks.length).toBe(500)
      const info = yield* Effect.promise(() => nats.manager.streams.info(stream))
      expect(info.state.messages).toBe(500)
    }), 60_000)
})
