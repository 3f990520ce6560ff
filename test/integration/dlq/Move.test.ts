/**
 * Moving a stored message to the dead-letter stream (guarantee 4) on a server with a small
 * max_payload (64 KB, so the sizes stay small): every message a stream accepted can be
 * dead-lettered, whatever its size, one letter per stored message; a full dead-letter stream
 * refuses with a tagged error and leaves nothing half-stored; listing pages through every letter
 * once, both formats, without body parts.
 */
import { describe, expect, test } from "bun:test"
import { headers as natsHeaders } from "@nats-io/transport-node"
import { Effect, Metric } from "effect"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as Topology from "../../../src/broker/Topology.ts"
import { MsgsysConfig } from "../../../src/config/MsgsysConfig.ts"
import * as DeadLetter from "../../../src/dlq/DeadLetter.ts"
import * as DeadLetters from "../../../src/dlq/DeadLetters.ts"
import * as ActorTopology from "../../../src/actor/ActorTopology.ts"
import { natsHarness } from "../../support/harness.ts"

const maxPayload = 64 * 1024
const h = natsHarness({ config: `max_payload: ${maxPayload}` })

/** The bytes of these headers on the wire: `NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`. */
const headerBytes = (record: Record<string, string>) =>
  Object.entries(record).reduce((n, [k, v]) => n + Buffer.byteLength(`${k}: ${v}\r\n`), "NATS/1.0\r\n\r\n".length)

const bytes = (n: number, fill = 0x61) => new Uint8Array(n).fill(fill)

let sequence = 0
const original = (body: Uint8Array, headers: Record<string, string> = {}): DeadLetter.Original => ({
  stream: "X_TASKS_etl",
  sequence: ++sequence,
  storedSubject: "etl.extract",
  headers,
  body,
  storedAt: 1_000
})

const metadata = (actor = "etl", tenant = "acme"): DeadLetter.Metadata => ({
  taskId: `task-${sequence}`,
  subject: "etl.extract",
  actor,
  tenant,
  reason: "poison",
  error: { tag: "PayloadDecodeError", message: "cannot decode" },
  attempts: 1,
  history: [{ attempt: 1, at: 5, error: { tag: "PayloadDecodeError", message: "cannot decode" } }],
  deadLetteredAt: 2_000
})

/** The config, names and a dead-letter stream for one test. */
const setup = Effect.gen(function*() {
  const config = yield* MsgsysConfig
  const nats = yield* Nats
  const names = Subjects.make(config.streamPrefix)
  yield* Topology.apply(ActorTopology.shared(names, config))
  const limit = (limits: { readonly max_msgs?: number; readonly max_bytes?: number }) =>
    Effect.promise(async () => {
      const { config: c } = await nats.manager.streams.info(names.deadLetterStream)
      await nats.manager.streams.update(names.deadLetterStream, { ...c, discard: "new" as never, ...limits })
    })
  const count = Effect.promise(() => nats.manager.streams.info(names.deadLetterStream)).pipe(Effect.map((i) => i.state.messages))
  const move = (o: DeadLetter.Original, m: DeadLetter.Metadata = metadata()) => DeadLetters.move(nats, names, o, m)
  return { nats, names, limit, count, move }
})

describe("moving to dead letters", () => {
  test("a body that fills max_payload is stored apart and reads back whole, with the letter's metadata", () =>
    h.run(Effect.gen(function*() {
      const { names, move } = yield* setup
      const o = original(bytes(maxPayload))
      const moved = yield* move(o)
      expect(moved.bodySequence).toBeDefined()
      expect(moved.duplicate).toBe(false)
      const full = yield* DeadLetters.read(names, moved.sequence)
      expect(full.body).toEqual(o.body)
      expect(full.headers).toEqual({})
      expect(full.letter).toMatchObject({ format: 2, reason: "poison", bodySize: maxPayload, bodySequence: moved.bodySequence })
      // the body part is not a letter
      const part = yield* Effect.flip(DeadLetters.read(names, moved.bodySequence!))
      expect(part._tag).toBe("LetterNotFound")
      expect(part.message).toContain("body of a letter stored apart")
    })))

  test("headers and body that together fill max_payload: the body part carries the headers, the letter the metadata", () =>
    h.run(Effect.gen(function*() {
      const { nats, names, move } = yield* setup
      const headers = { "Msgsys-Id": "01BIG", "X-Trace": "t".repeat(20_000), "Nats-Msg-Id": "01BIG" }
      const o = original(bytes(maxPayload - headerBytes(headers)), headers)
      // it does fill max_payload: the client sends it, and refuses one byte more
      const wire = natsHeaders()
      for (const [k, v] of Object.entries(headers)) wire.set(k, v)
      nats.connection.publish("scratch.fits", o.body, { headers: wire })
      expect(() => nats.connection.publish("scratch.fits", bytes(o.body.length + 1), { headers: wire })).toThrow("max_payload")
      const moved = yield* move(o)
      expect(moved.bodySequence).toBeDefined()
      const full = yield* DeadLetters.read(names, moved.sequence)
      expect(full.body).toEqual(o.body)
      expect(full.headers).toEqual({ "Msgsys-Id": "01BIG", "X-Trace": "t".repeat(20_000) })
      expect(full.letter.heldHeaders).toEqual({ "Nats-Msg-Id": "01BIG" })
    })))

  test("a large body with room for the metadata is one letter: the raw body with headers beside it", () =>
    h.run(Effect.gen(function*() {
      const { names, move } = yield* setup
      const o = original(bytes(maxPayload - 4_096), { "Msgsys-Id": "01NEAR" })
      const moved = yield* move(o)
      expect(moved.bodySequence).toBeUndefined()
      const full = yield* DeadLetters.read(names, moved.sequence)
      expect(full.body).toEqual(o.body)
      expect(full.headers).toEqual({ "Msgsys-Id": "01NEAR" })
    })))

  test("moving one stored message again makes no second letter, whether it was stored whole or apart", () =>
    h.run(Effect.gen(function*() {
      const { names, move } = yield* setup
      const whole = original(bytes(100))
      const first = yield* move(whole)
      const again = yield* move(whole)
      expect(again).toEqual({ ...first, duplicate: true })

      // apart, with room for the body part's dedup id: the body part is reused too
      const apart = original(bytes(maxPayload - 200))
      const a1 = yield* move(apart)
      const a2 = yield* move(apart)
      expect(a1.bodySequence).toBeDefined()
      expect(a2).toEqual({ ...a1, duplicate: true })

      // filling max_payload: no room for a dedup id on the body part; still one letter
      const exact = original(bytes(maxPayload))
      const e1 = yield* move(exact)
      const e2 = yield* move(exact)
      expect(e2.sequence).toBe(e1.sequence)
      expect(e2.duplicate).toBe(true)

      const page = yield* DeadLetters.list(names)
      expect(page.letters.map((l) => l.sequence)).toEqual([first.sequence, a1.sequence, e1.sequence])
    })))

  test("a full dead-letter stream refuses with DeadLetterStreamFull, counts it, and leaves no body part behind", () =>
    h.run(Effect.gen(function*() {
      const { limit, count, move } = yield* setup
      const actor = `full${process.pid}`
      const refused = Metric.withAttributes(DeadLetters.refusedCounter, { actor })
      const before = (yield* Metric.value(refused)).count
      // room for one message: the body part goes in, the letter naming it is refused
      yield* limit({ max_msgs: 1 })
      const o = original(bytes(maxPayload))
      const error = yield* Effect.flip(move(o, metadata(actor)))
      expect(error._tag).toBe("DeadLetterStreamFull")
      expect(error.message).toContain("maximum messages exceeded")
      expect(error.message).toContain("stays in its task stream")
      expect(error.message).toContain("msgsys dlq")
      expect(yield* count).toBe(0)
      // a whole letter against a byte limit
      yield* limit({ max_msgs: -1, max_bytes: 1_000 })
      expect((yield* Effect.flip(move(original(bytes(2_000)), metadata(actor))))._tag).toBe("DeadLetterStreamFull")
      expect((yield* Metric.value(refused)).count - before).toBe(2)
      // room again: the same message moves
      yield* limit({ max_bytes: -1 })
      const moved = yield* move(o, metadata(actor))
      expect(moved.bodySequence).toBeDefined()
      expect(yield* count).toBe(2)
    })))
})

describe("listing dead letters", () => {
  test("a dead-letter stream that is missing or empty lists as an empty page", () =>
    h.run(Effect.gen(function*() {
      const config = yield* MsgsysConfig
      const names = Subjects.make(config.streamPrefix)
      expect(yield* DeadLetters.list(names)).toEqual({ letters: [], unreadable: [], more: 0, last: undefined })
      yield* setup
      expect(yield* DeadLetters.list(names)).toEqual({ letters: [], unreadable: [], more: 0, last: undefined })
      // letter #0 does not exist (the server calls reading it a bad request)
      expect((yield* Effect.flip(DeadLetters.read(names, 0)))._tag).toBe("LetterNotFound")
    })))

  test("paging returns every letter exactly once, in order, across formats, never a body part", () =>
    h.run(Effect.gen(function*() {
      const { nats, names, move } = yield* setup
      const expected: Array<{ sequence: number; actor: string; tenant: string }> = []
      for (let i = 0; i < 23; i++) {
        const actor = i % 2 === 0 ? "etl" : "reports"
        const tenant = i % 3 === 0 ? "acme" : "globex"
        // some stored apart (a body part before their letter), some in format 1
        if (i % 7 === 3) {
          const moved = yield* move(original(bytes(maxPayload)), metadata(actor, tenant))
          expected.push({ sequence: moved.sequence, actor, tenant })
        } else if (i % 5 === 4) {
          const ack = yield* Effect.promise(() =>
            nats.jetstream.publish(names.deadLetterSubject(actor, tenant), DeadLetter.encodeLegacy({
              ...metadata(actor, tenant),
              storedSubject: "etl.extract",
              headers: { "Msgsys-Id": `old-${i}` },
              payload: Buffer.from(`{"old":${i}}`).toString("base64"),
              stream: "X_TASKS_etl",
              streamSequence: ++sequence,
              storedAt: 1
            }))
          )
          expected.push({ sequence: ack.seq, actor, tenant })
        } else {
          const moved = yield* move(original(bytes(10 + i)), metadata(actor, tenant))
          expected.push({ sequence: moved.sequence, actor, tenant })
        }
      }
      const pages = (filter: { actor?: string; tenant?: string }) =>
        Effect.gen(function*() {
          const seen: Array<number> = []
          let after = 0
          for (let guard = 0; guard < 50; guard++) {
            const page = yield* DeadLetters.list(names, { ...filter, limit: 4, after })
            expect(page.unreadable).toEqual([])
            seen.push(...page.letters.map((l) => l.sequence))
            for (const { letter } of page.letters) {
              if (filter.actor) expect(letter.actor).toBe(filter.actor)
              if (filter.tenant) expect(letter.tenant).toBe(filter.tenant)
            }
            const left = expected.filter((e) =>
              e.sequence > (page.last ?? Infinity) && (!filter.actor || e.actor === filter.actor) &&
              (!filter.tenant || e.tenant === filter.tenant)
            )
            expect(page.more).toBe(left.length)
            if (page.more === 0) break
            after = page.last!
          }
          return seen
        })
      const all = expected.map((e) => e.sequence)
      expect(yield* pages({})).toEqual(all)
      expect(yield* pages({ actor: "reports" })).toEqual(expected.filter((e) => e.actor === "reports").map((e) => e.sequence))
      expect(yield* pages({ tenant: "acme" })).toEqual(expected.filter((e) => e.tenant === "acme").map((e) => e.sequence))
      expect(yield* pages({ actor: "etl", tenant: "globex" })).toEqual(
        expected.filter((e) => e.actor === "etl" && e.tenant === "globex").map((e) => e.sequence)
      )
      // format-1 letters list with their size; format-2 ones with theirs, from headers only
      const { letters } = yield* DeadLetters.list(names, { limit: 100 })
      expect(letters.filter((l) => l.letter.format === 1).map((l) => l.letter.bodySize)).toEqual([9, 9, 10, 10])
      expect(letters.filter((l) => l.letter.bodySequence !== undefined).every((l) => l.letter.bodySize === maxPayload)).toBe(true)
      // a bad filter is refused, naming it
      const bad = yield* Effect.flip(DeadLetters.list(names, { actor: "etl.*" }))
      expect(bad.message).toContain("invalid actor \"etl.*\"")
    })))
})
