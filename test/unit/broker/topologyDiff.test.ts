import { describe, expect, test } from "bun:test"
import type { ConsumerConfig, StreamConfig } from "@nats-io/jetstream"
import { Duration } from "effect"
import * as Diff from "../../../src/broker/internal/topologyDiff.ts"
import * as Topology from "../../../src/broker/Topology.ts"

const on29: Diff.Features = { metadata: false }
const on210: Diff.Features = { metadata: true }

/** What nats-server 2.9.10 reports for a stream created from `config`. */
const serverStream = (config: Partial<StreamConfig>): StreamConfig => ({
  max_consumers: -1,
  max_msgs: -1,
  max_bytes: -1,
  max_age: 0,
  max_msgs_per_subject: -1,
  max_msg_size: -1,
  discard: "old",
  storage: "file",
  num_replicas: 1,
  duplicate_window: 120_000_000_000,
  ...config
} as StreamConfig)

describe("durations", () => {
  test("converts declared durations to JetStream nanoseconds and back", () => {
    expect(Topology.durationToNanos("2 minutes")).toBe(120_000_000_000)
    expect(Topology.durationToNanos(1500)).toBe(1_500_000_000)
    expect(Topology.durationToNanos(Duration.infinity)).toBe(0)
    expect(Duration.toMillis(Topology.nanosToDuration(30_000_000_000))).toBe(30_000)
  })
})

describe("streams", () => {
  test("a declared stream matches what the server made of it, defaults included", () => {
    const s = Diff.normalizeStream({ name: "S", subjects: ["a.>"], retention: "workqueue", maxAge: "1 minute" })
    const sent = Diff.streamConfig(s, on29)
    // the server keeps what it was sent; the default window shrinks to max_age as the server's does
    expect(sent.duplicate_window).toBe(60_000_000_000)
    const plan = Diff.diffStream(s, serverStream(sent))
    expect(plan.changed).toEqual([])
    expect(plan.conflicts).toEqual([])
  })

  test("reports retention and storage as conflicts, and updatable fields by their declared names", () => {
    const s = Diff.normalizeStream({ name: "S", subjects: ["a.>", "b.>"], retention: "workqueue", maxAge: "1 hour" })
    const plan = Diff.diffStream(s, serverStream({ name: "S", subjects: ["a.>"], retention: "limits", storage: "memory" }))
    expect(plan.conflicts).toEqual([
      { field: "retention", current: "limits", wanted: "workqueue" },
      { field: "storage", current: "memory", wanted: "file" }
    ])
    expect(plan.changed).toEqual(["subjects", "maxAge"])
    expect(plan.removedSubjects).toEqual([])
    expect(plan.update.max_age).toBe(3_600_000_000_000)
  })

  test("lists the subjects a declaration drops", () => {
    const s = Diff.normalizeStream({ name: "S", subjects: ["a.>"], retention: "limits" })
    expect(Diff.diffStream(s, serverStream({ subjects: ["a.>", "b.>"], retention: "limits" })).removedSubjects)
      .toEqual(["b.>"])
  })

  test("leaves an undeclared description alone", () => {
    const s = Diff.normalizeStream({ name: "S", subjects: ["a"], retention: "limits" })
    expect(Diff.diffStream(s, serverStream({ subjects: ["a"], retention: "limits", description: "by hand" })).changed)
      .toEqual([])
  })

  test("sends metadata only to servers that have it (2.10+)", () => {
    const s = Diff.normalizeStream({ name: "S", subjects: ["a"], retention: "limits" })
    expect("metadata" in Diff.streamConfig(s, on29)).toBe(false)
    expect(Diff.streamConfig(s, on210).metadata).toEqual({ managed_by: "msgsys" })
  })

  test("rejects a duplicate window longer than max age before the server does", () => {
    const problems: Array<Diff.Problem> = []
    Diff.normalizeStream({ name: "S", subjects: ["a"], retention: "limits", maxAge: "10 seconds", duplicateWindow: "1 minute" }, problems)
    expect(problems.map((p) => p.field)).toEqual(["duplicateWindow"])
  })
})

describe("consumers", () => {
  test("with a backoff, expects ack_wait to be the first step, as the server sets it", () => {
    const c = Diff.normalizeConsumer({ stream: "S", name: "c", backoff: ["1 second", "5 seconds"], maxDeliver: 5 })
    const sent = Diff.consumerConfig(c, on29)
    expect(sent.ack_wait).toBe(1_000_000_000)
    const stored = { ...sent, max_waiting: 512, num_replicas: 0 } as ConsumerConfig
    expect(Diff.diffConsumer(c, stored).changed).toEqual([])
  })

  test("deliver policy, ack policy, filter and push delivery are conflicts", () => {
    const c = Diff.normalizeConsumer({ stream: "S", name: "c", filterSubject: "a.x" })
    const plan = Diff.diffConsumer(c, {
      ack_policy: "all",
      deliver_policy: "new",
      filter_subject: "a.y",
      deliver_subject: "push.here",
      replay_policy: "instant"
    } as ConsumerConfig)
    expect(plan.conflicts.map((x) => x.field)).toEqual(["kind", "ackPolicy", "deliverPolicy", "filterSubject"])
  })

  test("ack wait, max deliver, max ack pending and backoff are updates", () => {
    const c = Diff.normalizeConsumer({ stream: "S", name: "c", ackWait: "10 seconds", maxDeliver: 3, maxAckPending: 5 })
    const plan = Diff.diffConsumer(c, {
      ack_policy: "explicit",
      deliver_policy: "all",
      ack_wait: 1_000_000_000,
      backoff: [1_000_000_000],
      max_deliver: -1,
      max_ack_pending: 1000
    } as ConsumerConfig)
    expect(plan.conflicts).toEqual([])
    expect(plan.changed).toEqual(["backoff", "ackWait", "maxDeliver", "maxAckPending"])
  })

  test("rejects a max deliver not above the backoff length (server error 10116) up front", () => {
    const problems: Array<Diff.Problem> = []
    Diff.normalizeConsumer({ stream: "S", name: "c", backoff: ["1 second", "2 seconds"], maxDeliver: 2 }, problems)
    expect(problems.map((p) => p.field)).toEqual(["maxDeliver"])
  })
})

describe("kv", () => {
  test("a ttl change updates max_age and shortens a longer duplicate window with it", () => {
    const k = Diff.normalizeKv({ bucket: "b", ttl: "30 seconds" })
    const plan = Diff.diffKv(k, serverStream({ max_msgs_per_subject: 1 }))
    expect(plan.changed).toEqual(["ttl"])
    expect(plan.update.max_age).toBe(30_000_000_000)
    expect(plan.update.duplicate_window).toBe(30_000_000_000)
  })
})

describe("merge", () => {
  test("two declarations of one stream become one with the union of their subjects", () => {
    const t = Topology.merge(
      { streams: [{ name: "S", subjects: ["a.>"], retention: "workqueue" }], consumers: [], kv: [] },
      { streams: [{ name: "S", subjects: ["b.>", "a.>"], retention: "workqueue" }], consumers: [], kv: [] }
    )
    expect(t.streams).toEqual([{ name: "S", subjects: ["a.>", "b.>"], retention: "workqueue" }])
    expect(Diff.disagreements(t)).toEqual([])
  })

  test("keeps two different declarations of one consumer, and names the field they disagree on", () => {
    const t = Topology.merge(
      { streams: [], consumers: [{ stream: "S", name: "c", ackWait: "10 seconds" }], kv: [] },
      { streams: [], consumers: [{ stream: "S", name: "c", ackWait: 10_000 }], kv: [] },
      { streams: [], consumers: [{ stream: "S", name: "c", ackWait: "20 seconds" }], kv: [] }
    )
    expect(t.consumers).toHaveLength(2)
    expect(Diff.disagreements(t)).toEqual([
      { resource: "consumer S/c", field: "ackWait", first: "10s", second: "20s" }
    ])
  })

  test("merging with empty changes nothing", () => {
    const t: Topology.Topology = { streams: [], consumers: [], kv: [{ bucket: "b", history: 3 }] }
    expect(Topology.merge(Topology.empty, t)).toEqual(t)
  })
})

describe("subjects", () => {
  test("matches wildcards the way NATS does", () => {
    expect(Diff.subjectMatches("a.>", "a.b.c")).toBe(true)
    expect(Diff.subjectMatches("a.>", "a")).toBe(false)
    expect(Diff.subjectMatches("a.*", "a.b")).toBe(true)
    expect(Diff.subjectMatches("a.*", "a.b.c")).toBe(false)
    expect(Diff.subjectMatches("a.b", "a.b")).toBe(true)
  })

  test("counts as stranded only messages no kept subject covers", () => {
    expect(Diff.strandedCount({ "b.x": 2, "b.keep": 3 }, ["b.keep"])).toBe(2)
  })
})
