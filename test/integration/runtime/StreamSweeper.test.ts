/**
 * The stream sweeper deletes only messages whose consumer has passed them and whose tasks are
 * settled: never a pending message (it is still redelivered), never an undelivered one, never one
 * whose deliveries ran out before the max-deliveries sweeper moved it.
 */
import { AckPolicy, type JetStreamManager, RetentionPolicy } from "@nats-io/jetstream"
import { headers as natsHeaders } from "@nats-io/transport-node"
import { describe, expect, test } from "bun:test"
import { Duration, Effect } from "effect"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import { MsgsysConfig } from "../../../src/config/MsgsysConfig.ts"
import * as StreamSweeper from "../../../src/runtime/StreamSweeper.ts"
import * as Results from "../../../src/task/Results.ts"
import type { TaskRecord } from "../../../src/task/TaskRecord.ts"
import { natsHarness } from "../../support/harness.ts"

const h = natsHarness()

const seqsOf = (jsm: JetStreamManager, stream: string) =>
  Effect.promise(async () => {
    const out: Array<number> = []
    let seq = 1
    while (true) {
      const m = await jsm.streams.getMessage(stream, { seq, next_by_subj: ">" } as never)
      if (m === null) return out
      out.push(m.seq)
      seq = m.seq + 1
    }
  })

describe("stream sweeper", () => {
  test("deletes settled messages their consumer passed; leaves pending, undelivered and unsettled ones alone", () =>
    h.run(Effect.gen(function*() {
      const nats = yield* Nats
      const config = yield* MsgsysConfig
      const jsm = nats.manager
      const names = Subjects.make(config.streamPrefix)
      const results = yield* Results.make(names.resultsBucket, Duration.hours(1))
      const stream = `${config.streamPrefix}_SWEEP`
      const [a, b] = [`${config.streamPrefix}a`, `${config.streamPrefix}b`]
      yield* Effect.promise(async () => {
        await jsm.streams.add({ name: stream, subjects: [`${a}.>`, `${b}.>`], retention: RetentionPolicy.Workqueue })
        // a: two deliveries 1 s apart; b: one delivery, then the server gives up on a message
        await jsm.consumers.add(stream, {
          durable_name: "a", filter_subject: `${a}.>`, ack_policy: AckPolicy.Explicit, ack_wait: 1e9, max_deliver: 2
        })
        await jsm.consumers.add(stream, {
          durable_name: "b", filter_subject: `${b}.>`, ack_policy: AckPolicy.Explicit, ack_wait: 1e9, max_deliver: 1
        })
      })
      const seq: Record<string, number> = {}
      const publish = (subject: string, id: string) =>
        Effect.promise(async () => {
          const hdrs = natsHeaders()
          hdrs.set("Msgsys-Id", id)
          seq[id] = (await nats.jetstream.publish(subject, "{}", { headers: hdrs })).seq
        })
      const status = (id: string, s: TaskRecord["status"]) =>
        results.put({ id, subject: "x.y", tenant: "default", status: s, attempt: 1, updatedAt: 0 })
      // a fetch that waits at most 1 s: the pull that finds a message's deliveries exhausted
      // gets no answer from 2.9.10 until it expires
      const fetch = (consumer: string, max: number, ack = false) =>
        Effect.promise(async () => {
          const c = await nats.jetstream.consumers.get(stream, consumer)
          const got: Array<readonly [number, number]> = []
          for await (const m of await c.fetch({ max_messages: max, expires: 1000 })) {
            got.push([m.seq, m.info.deliveryCount])
            if (ack) m.ack()
          }
          return got
        })
      const info = (consumer: string) => Effect.promise(() => jsm.consumers.info(stream, consumer))

      // every task but b2 claims to be settled: the consumer's state alone must protect the rest
      for (const id of ["a0", "a1", "a2", "a3", "b1"]) yield* status(id, "succeeded")
      yield* status("b2", "running")

      // a0 and b1, b2 are delivered until their deliveries run out: their consumers pass them
      // without an ack, as the broker defect does with acked ones
      yield* publish(`${a}.t`, "a0")
      yield* publish(`${b}.t`, "b1")
      yield* publish(`${b}.t`, "b2")
      expect(yield* fetch("a", 1)).toEqual([[seq.a0!, 1]])
      expect((yield* fetch("b", 2)).length).toBe(2)
      yield* Effect.sleep("1100 millis")
      expect(yield* fetch("a", 1)).toEqual([[seq.a0!, 2]])
      yield* Effect.sleep("1100 millis")
      expect(yield* fetch("a", 1)).toEqual([])
      expect(yield* fetch("b", 1)).toEqual([])
      // a1 acked: a's ack floor moves past a0; then a2 pending and a3 not delivered
      yield* publish(`${a}.t`, "a1")
      expect(yield* fetch("a", 1, true)).toEqual([[seq.a1!, 1]])
      yield* publish(`${a}.t`, "a2")
      yield* publish(`${a}.t`, "a3")
      expect(yield* fetch("a", 1)).toEqual([[seq.a2!, 1]])
      const before = yield* info("a")
      expect(before.ack_floor.stream_seq).toBeGreaterThanOrEqual(seq.a1!)
      expect(before.num_ack_pending).toBe(1)
      expect((yield* info("b")).num_ack_pending).toBe(0)

      // a small budget: each sweep goes on where the last one stopped
      const removed: Record<string, number> = {}
      let unsettled = 0
      let from = 0
      let sweeps = 0
      do {
        const s = yield* StreamSweeper.sweep({ jsm, names, stream, results, budget: 1 }, from)
        for (const [c, n] of Object.entries(s.removed)) removed[c] = (removed[c] ?? 0) + n
        unsettled += s.unsettled
        from = s.next
        sweeps++
      } while (from !== 0 && sweeps < 20)
      expect(sweeps).toBeGreaterThan(1)

      expect(removed).toEqual({ a: 1, b: 1 })
      expect(unsettled).toBe(1)
      expect(yield* seqsOf(jsm, stream)).toEqual([seq.b2!, seq.a2!, seq.a3!])
      // the pending message is still pending and comes back after ack_wait, and the undelivered one
      // is delivered (a stream purge would have made the server forget the pending one)
      expect((yield* info("a")).num_ack_pending).toBe(1)
      yield* Effect.sleep("1100 millis")
      expect(yield* fetch("a", 2, true)).toEqual([[seq.a2!, 2], [seq.a3!, 1]])
    })), 30_000)
})
