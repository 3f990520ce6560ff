/**
 * Topology.apply against a real nats-server: it creates what is missing, is idempotent, updates
 * compatible changes in place, refuses destructive ones with a TopologyConflict (and leaves the
 * messages where they were), and survives two processes applying at once.
 */
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import * as Nats from "../../../src/broker/Nats.ts"
import * as Topology from "../../../src/broker/Topology.ts"
import { MsgsysConfig } from "../../../src/config/MsgsysConfig.ts"
import { natsHarness, uniqueName } from "../../support/harness.ts"

const h = natsHarness()

/** A work-queue stream with two filtered consumers and a bucket, all named after `base`. */
const sample = (base: string): Topology.Topology => ({
  streams: [{ name: base, subjects: [`${base}.a.>`, `${base}.b.>`], retention: "workqueue", maxAge: "1 hour" }],
  consumers: [
    { stream: base, name: "a", filterSubject: `${base}.a.>`, ackWait: "30 seconds", maxDeliver: 5 },
    { stream: base, name: "b", filterSubject: `${base}.b.>`, backoff: ["1 second", "5 seconds"], maxDeliver: 4 }
  ],
  kv: [{ bucket: `${base}_kv`, ttl: "10 minutes", history: 2 }]
})

const nats = Nats.Nats
const streamInfo = (name: string) => Effect.flatMap(nats, (n) => Effect.promise(() => n.manager.streams.info(name)))
const consumerInfo = (stream: string, name: string) =>
  Effect.flatMap(nats, (n) => Effect.promise(() => n.manager.consumers.info(stream, name)))
const publish = (subject: string, body: string) =>
  Effect.flatMap(nats, (n) => Effect.promise(() => n.jetstream.publish(subject, body)))
const streamExists = (name: string) =>
  Effect.flatMap(nats, (n) => Effect.promise(() => n.manager.streams.info(name).then(() => true, () => false)))

/**
 * The connection, except that the first look-up of stream `name` answers "not found": what a
 * process sees when another one creates the stream right after it looked.
 */
const staleFirstRead = (n: Nats.Nats["Service"], name: string): Nats.Nats["Service"] => {
  let stale = true
  const real = n.manager.streams
  const streams = Object.create(real) as typeof real
  streams.info = (stream, opts) => {
    if (stale && stream === name) {
      stale = false
      return real.info(`${name}_NOT_THERE`, opts)
    }
    return real.info(stream, opts)
  }
  const manager = Object.create(n.manager) as typeof n.manager
  Object.defineProperty(manager, "streams", { value: streams })
  return { ...n, manager }
}

const actions = (changes: ReadonlyArray<Topology.Change>) =>
  Object.fromEntries(changes.map((c) => [c.resource, c.action]))

describe("Topology.apply", () => {
  test("creates the missing streams, consumers and buckets and reports each as created", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const changes = yield* Topology.apply(sample(base))
      expect(actions(changes)).toEqual({
        [`stream ${base}`]: "created",
        [`consumer ${base}/a`]: "created",
        [`consumer ${base}/b`]: "created",
        [`kv bucket ${base}_kv`]: "created"
      })
      const stream = yield* streamInfo(base)
      expect(stream.config.retention).toBe("workqueue")
      expect(stream.config.max_age).toBe(3_600_000_000_000)
      const b = yield* consumerInfo(base, "b")
      expect(b.config.backoff).toEqual([1_000_000_000, 5_000_000_000])
      expect(b.config.max_deliver).toBe(4)
      const kv = yield* streamInfo(`KV_${base}_kv`)
      expect(kv.config.max_age).toBe(600_000_000_000)
      expect(kv.config.max_msgs_per_subject).toBe(2)
    })))

  test("applying the same topology again reports every resource unchanged", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      yield* Topology.apply(sample(base))
      const again = yield* Topology.apply(sample(base))
      expect(again).toHaveLength(4)
      expect(again.every((c) => c.action === "unchanged")).toBe(true)
    })))

  test("updates maxAge, added subjects, ackWait and maxDeliver in place and names the fields", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const t = sample(base)
      yield* Topology.apply(t)
      yield* publish(`${base}.a.1`, "kept")
      const changed: Topology.Topology = {
        streams: [{ ...t.streams[0]!, subjects: [...t.streams[0]!.subjects, `${base}.c.>`], maxAge: "2 hours" }],
        consumers: [{ ...t.consumers[0]!, ackWait: "10 seconds", maxDeliver: 7 }, t.consumers[1]!],
        kv: t.kv
      }
      const changes = yield* Topology.apply(changed)
      expect(changes).toContainEqual({ resource: `stream ${base}`, action: "updated", fields: ["subjects", "maxAge"] })
      expect(changes).toContainEqual({
        resource: `consumer ${base}/a`,
        action: "updated",
        fields: ["ackWait", "maxDeliver"]
      })
      expect(changes).toContainEqual({ resource: `consumer ${base}/b`, action: "unchanged" })
      const stream = yield* streamInfo(base)
      expect(stream.config.subjects).toEqual([`${base}.a.>`, `${base}.b.>`, `${base}.c.>`])
      expect(stream.config.max_age).toBe(7_200_000_000_000)
      expect(stream.state.messages).toBe(1)
      const a = yield* consumerInfo(base, "a")
      expect(a.config.ack_wait).toBe(10_000_000_000)
      expect(a.config.max_deliver).toBe(7)
      expect((yield* Topology.apply(changed)).every((c) => c.action === "unchanged")).toBe(true)
    })))

  test("refuses a retention change with a TopologyConflict naming field, current and wanted; the messages stay", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const limits: Topology.Topology = {
        streams: [{ name: base, subjects: [`${base}.>`], retention: "limits" }],
        consumers: [],
        kv: []
      }
      yield* Topology.apply(limits)
      yield* publish(`${base}.x`, "1")
      yield* publish(`${base}.y`, "2")
      const error = yield* Effect.flip(Topology.apply({
        ...limits,
        streams: [{ ...limits.streams[0]!, retention: "workqueue" }]
      }))
      expect(error._tag).toBe("TopologyConflict")
      if (error._tag !== "TopologyConflict") return
      expect(error.resource).toBe(`stream ${base}`)
      expect(error.field).toBe("retention")
      expect(error.current).toBe("limits")
      expect(error.wanted).toBe("workqueue")
      expect(error.message).toContain(
        `stream ${base} exists with retention "limits" but msgsys declares "workqueue": this would need deleting ` +
          "the stream and its messages, which msgsys never does. Fix: "
      )
      expect(error.message).toContain(`nats stream rm ${base}`)
      const stream = yield* streamInfo(base)
      expect(stream.config.retention).toBe("limits")
      expect(stream.state.messages).toBe(2)
    })))

  test("refuses a consumer's filter change with a TopologyConflict and leaves the consumer as it was", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const t = sample(base)
      yield* Topology.apply(t)
      const error = yield* Effect.flip(Topology.apply({
        ...t,
        consumers: [{ ...t.consumers[0]!, filterSubject: `${base}.a.only` }, t.consumers[1]!]
      }))
      expect(error._tag).toBe("TopologyConflict")
      if (error._tag !== "TopologyConflict") return
      expect(error.resource).toBe(`consumer ${base}/a`)
      expect(error.field).toBe("filterSubject")
      expect(error.current).toBe(`${base}.a.>`)
      expect(error.wanted).toBe(`${base}.a.only`)
      expect(error.message).toContain(`nats consumer rm ${base} a`)
      expect((yield* consumerInfo(base, "a")).config.filter_subject).toBe(`${base}.a.>`)
    })))

  test("drops a subject that holds no messages, and refuses to drop one that does", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const stream = (subjects: Array<string>): Topology.Topology => ({
        streams: [{ name: base, subjects, retention: "limits" }],
        consumers: [],
        kv: []
      })
      yield* Topology.apply(stream([`${base}.a`, `${base}.b`, `${base}.c`]))
      yield* publish(`${base}.a`, "1")
      const dropped = yield* Topology.apply(stream([`${base}.a`, `${base}.b`]))
      expect(dropped).toEqual([{ resource: `stream ${base}`, action: "updated", fields: ["subjects"] }])
      yield* publish(`${base}.b`, "2")
      const error = yield* Effect.flip(Topology.apply(stream([`${base}.a`])))
      expect(error._tag).toBe("TopologyConflict")
      expect(error.message).toContain(`strand the 1 message stored under ${base}.b`)
      expect((yield* streamInfo(base)).config.subjects).toEqual([`${base}.a`, `${base}.b`])
    })))

  test("creates a KV bucket, then updates its ttl in place (the max_age of KV_<bucket>)", () =>
    h.run(Effect.gen(function*() {
      const bucket = uniqueName("topo_kv")
      const created = yield* Topology.apply({ streams: [], consumers: [], kv: [{ bucket, ttl: "1 hour" }] })
      expect(created).toEqual([{ resource: `kv bucket ${bucket}`, action: "created" }])
      const n = yield* nats
      const kv = yield* Effect.promise(() => n.kvm.open(bucket))
      yield* Effect.promise(() => kv.put("k", "v"))
      // shorter than the 2-minute duplicate window the bucket was created with: it must shrink too
      const updated = yield* Topology.apply({ streams: [], consumers: [], kv: [{ bucket, ttl: "30 seconds" }] })
      expect(updated).toEqual([{ resource: `kv bucket ${bucket}`, action: "updated", fields: ["ttl"] }])
      const info = yield* streamInfo(`KV_${bucket}`)
      expect(info.config.max_age).toBe(30_000_000_000)
      expect(info.state.messages).toBe(1)
      const again = yield* Topology.apply({ streams: [], consumers: [], kv: [{ bucket, ttl: "30 seconds" }] })
      expect(again).toEqual([{ resource: `kv bucket ${bucket}`, action: "unchanged" }])
    })))

  test("two connections applying one topology at the same time both succeed", () =>
    h.run(Effect.gen(function*() {
      const settings = (yield* MsgsysConfig).nats
      const viaOwnConnection = (t: Topology.Topology) =>
        Topology.apply(t).pipe(Effect.provide(Nats.layerFrom(settings), { local: true }))
      for (let round = 0; round < 20; round++) {
        const t = sample(uniqueName("TOPO"))
        const [first, second] = yield* Effect.all([viaOwnConnection(t), viaOwnConnection(t)], { concurrency: 2 })
        expect(first).toHaveLength(4)
        expect(second).toHaveLength(4)
        expect((yield* Topology.apply(t)).every((c) => c.action === "unchanged")).toBe(true)
      }
    })), 30_000)

  test("a stream another process created after this one looked is compared and updated, not failed", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const t = sample(base)
      yield* Topology.apply({ ...t, consumers: [], kv: [] })
      const longer: Topology.Topology = { streams: [{ ...t.streams[0]!, maxAge: "2 hours" }], consumers: [], kv: [] }
      const changes = yield* Topology.apply(longer).pipe(
        Effect.provideService(Nats.Nats, staleFirstRead(yield* nats, base))
      )
      expect(changes).toEqual([{ resource: `stream ${base}`, action: "updated", fields: ["maxAge"] }])
      expect((yield* streamInfo(base)).config.max_age).toBe(7_200_000_000_000)
    })))

  test("a bucket another process created after this one looked is compared and updated, not failed", () =>
    h.run(Effect.gen(function*() {
      const bucket = uniqueName("topo_kv")
      yield* Topology.apply({ streams: [], consumers: [], kv: [{ bucket, ttl: "1 hour", history: 1 }] })
      const changes = yield* Topology.apply({ streams: [], consumers: [], kv: [{ bucket, ttl: "1 hour", history: 5 }] }).pipe(
        Effect.provideService(Nats.Nats, staleFirstRead(yield* nats, `KV_${bucket}`))
      )
      expect(changes).toEqual([{ resource: `kv bucket ${bucket}`, action: "updated", fields: ["history"] }])
      expect((yield* streamInfo(`KV_${bucket}`)).config.max_msgs_per_subject).toBe(5)
    })))

  test("an update the server refuses becomes a TopologyConflict carrying the server's reason", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const one: Topology.Topology = { streams: [{ name: base, subjects: [`${base}.>`], retention: "limits" }], consumers: [], kv: [] }
      yield* Topology.apply(one)
      // nats-server wants max_age >= 100ms
      const error = yield* Effect.flip(Topology.apply({ ...one, streams: [{ ...one.streams[0]!, maxAge: 50 }] }))
      expect(error._tag).toBe("TopologyConflict")
      if (error._tag !== "TopologyConflict") return
      expect(error.kind).toBe("refused")
      expect(error.field).toBe("maxAge, duplicateWindow")
      expect(error.current).toBe("max age needs to be >= 100ms")
      expect(error.message).toContain(`stream ${base}: the server refused maxAge, duplicateWindow "maxAge: 50ms; duplicateWindow: 50ms": max age needs to be >= 100ms`)
      expect(error.message).toContain("it has maxAge: unlimited; duplicateWindow: 2m")
      expect((yield* streamInfo(base)).config.max_age).toBe(0)
    })))

  test("a stream whose subjects another stream holds, and overlapping work-queue filters, are conflicts with a fix", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const t = sample(base)
      yield* Topology.apply({ ...t, kv: [] })
      const overlapping = yield* Effect.flip(Topology.apply({
        streams: [{ name: `${base}_OTHER`, subjects: [`${base}.a.x`], retention: "limits" }],
        consumers: [],
        kv: []
      }))
      expect(overlapping._tag).toBe("TopologyConflict")
      expect(overlapping.message).toContain("subjects overlap with an existing stream")
      expect(overlapping.message).toContain("nats stream ls")
      const filters = yield* Effect.flip(Topology.apply({
        streams: [],
        consumers: [{ stream: base, name: "a2", filterSubject: `${base}.a.*` }],
        kv: []
      }))
      expect(filters._tag).toBe("TopologyConflict")
      expect(filters.message).toContain("filtered consumer not unique on workqueue stream")
      expect(filters.message).toContain(`nats consumer ls ${base}`)
      expect(yield* streamExists(`${base}_OTHER`)).toBe(false)
    })))

  test("two different declarations of one consumer fail with a declared-twice conflict before anything is created", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const t = sample(base)
      const error = yield* Effect.flip(Topology.apply(Topology.merge(t, {
        streams: [],
        consumers: [{ ...t.consumers[0]!, maxDeliver: 9 }],
        kv: []
      })))
      expect(error._tag).toBe("TopologyConflict")
      if (error._tag !== "TopologyConflict") return
      expect(error.kind).toBe("declared-twice")
      expect(error.message).toContain(`consumer ${base}/a is declared twice, with maxDeliver "5" and "9"`)
      expect(yield* streamExists(base)).toBe(false)
    })))

  test("a 2.9 server gets no 2.10-only field (metadata); a newer one gets the owner marker", () =>
    h.run(Effect.gen(function*() {
      const n = yield* nats
      const base = uniqueName("TOPO")
      yield* Topology.apply(sample(base))
      const stream = yield* streamInfo(base)
      const consumer = yield* consumerInfo(base, "a")
      if (n.atLeast("2.10")) {
        expect(stream.config.metadata?.["managed_by"]).toBe("msgsys")
        expect(consumer.config.metadata?.["managed_by"]).toBe("msgsys")
      } else {
        // nats.js throws before sending a 2.10 field to 2.9, so getting here means none was sent
        expect(stream.config.metadata).toBeUndefined()
        expect(consumer.config.metadata).toBeUndefined()
      }
    })))
})

describe("Topology.apply and storage bounds", () => {
  const limits = (name: string, extra: Partial<Topology.StreamSpec> = {}): Topology.Topology => ({
    streams: [{ name, subjects: [`${name}.>`], retention: "limits", ...extra }],
    consumers: [],
    kv: []
  })
  const rejectedPublish = (subject: string) =>
    Effect.flatMap(nats, (n) => Effect.promise(() => n.jetstream.publish(subject, new Uint8Array(200)).then(() => undefined, (e: Error) => e.message)))

  test("bounding an existing stream and making it refuse when full is an update; then it refuses and keeps what it holds", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      yield* Topology.apply(limits(base))
      yield* publish(`${base}.x`, "first")
      const changes = yield* Topology.apply(limits(base, { maxMsgs: 5, discard: "new" }))
      expect(changes).toEqual([{ resource: `stream ${base}`, action: "updated", fields: ["maxMsgs", "discard"] }])
      const outcomes: Array<string | undefined> = []
      for (let i = 0; i < 6; i++) outcomes.push(yield* rejectedPublish(`${base}.x`))
      expect(outcomes.slice(0, 4)).toEqual([undefined, undefined, undefined, undefined])
      expect(outcomes[4]).toContain("maximum messages exceeded")
      const info = yield* streamInfo(base)
      expect(info.config.discard).toBe("new")
      expect([info.state.first_seq, info.state.messages]).toEqual([1, 5])
    })))

  test("a byte bound on a stream that must refuse rather than drop is applied only where the server honours it (2.10.5+)", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const n = yield* nats
      const changes = yield* Topology.apply(limits(base, { maxBytes: 2_000, discard: "new" }))
      expect(changes).toEqual([{ resource: `stream ${base}`, action: "created" }])
      const info = yield* streamInfo(base)
      expect(info.config.discard).toBe("new")
      expect(info.config.max_bytes).toBe(n.atLeast("2.10.5") ? 2_000 : -1)
      // applying again changes nothing either way
      expect(yield* Topology.apply(limits(base, { maxBytes: 2_000, discard: "new" })))
        .toEqual([{ resource: `stream ${base}`, action: "unchanged" }])
    })))

  test("lowering maxBytes below what a stream holds is refused, and no message is deleted", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      yield* Topology.apply(limits(base, { maxBytes: 100_000 }))
      for (let i = 0; i < 20; i++) yield* publish(`${base}.x`, "x".repeat(100))
      const error = yield* Effect.flip(Topology.apply(limits(base, { maxBytes: 1_000 })))
      expect(error._tag).toBe("TopologyConflict")
      if (error._tag !== "TopologyConflict") return
      expect(error.field).toBe("maxBytes")
      expect(error.message).toContain("so the server would delete the oldest messages to fit, which msgsys never does")
      expect(error.message).toContain("Fix: raise the limit")
      const info = yield* streamInfo(base)
      expect(info.state.messages).toBe(20)
      expect(info.config.max_bytes).toBe(100_000)
    })))

  test("a bucket's maxBytes bounds new keys: writes of new keys fail when it is full, existing keys stay writable", () =>
    h.run(Effect.gen(function*() {
      const bucket = uniqueName("topo_kv")
      expect(yield* Topology.apply({ streams: [], consumers: [], kv: [{ bucket, maxBytes: 2_000 }] }))
        .toEqual([{ resource: `kv bucket ${bucket}`, action: "created" }])
      const n = yield* nats
      const kv = yield* Effect.promise(() => n.kvm.open(bucket))
      let failure: string | undefined
      let written = 0
      for (; written < 100 && failure === undefined; written++) {
        failure = yield* Effect.promise(() => kv.put(`k${written}`, new Uint8Array(100)).then(() => undefined, (e: Error) => e.message))
      }
      expect(failure).toContain("maximum bytes exceeded")
      yield* Effect.promise(() => kv.put("k0", new Uint8Array(100)))
      const lower = yield* Effect.flip(Topology.apply({ streams: [], consumers: [], kv: [{ bucket, maxBytes: 500 }] }))
      expect(lower.message).toContain(`kv bucket ${bucket} exists with maxBytes "2000" but msgsys declares "500"`)
      expect((yield* streamInfo(`KV_${bucket}`)).state.messages).toBe(written - 1)
    })))

  test("a declaration the server refuses is a TopologyConflict carrying its reason, and nothing is created", () =>
    h.run(Effect.gen(function*() {
      const base = uniqueName("TOPO")
      const window = yield* Effect.flip(Topology.apply(limits(base, { maxAge: "10 seconds", duplicateWindow: "1 minute" })))
      expect(window._tag).toBe("TopologyConflict")
      expect(window.message).toContain(`stream ${base}: the server refused settings`)
      expect(window.message).toContain("duplicateWindow: 1m")
      expect(yield* streamExists(base)).toBe(false)
      yield* Topology.apply(limits(base))
      const backoff = yield* Effect.flip(Topology.apply({
        streams: [],
        // more backoff steps than deliveries: refused by 2.9 (which wants more deliveries than steps) and by current servers
        consumers: [{ stream: base, name: "c", backoff: ["1 second", "2 seconds"], maxDeliver: 1 }],
        kv: []
      }))
      expect(backoff._tag).toBe("TopologyConflict")
      expect(backoff.message).toContain(`consumer ${base}/c: the server refused settings`)
      expect(backoff.message).toContain("maxDeliver: 1")
    })))
})
