/**
 * nats-server 2.9.10, SIGKILLed under load and restarted on the same store, can keep messages that
 * were acked shortly before the kill in a work-queue stream for good: every consumer's ack floor is
 * past them and nothing is pending (PITFALLS §10). The worker's stream sweeper removes them, so an
 * actor's task stream ends empty once every task has succeeded.
 */
import { afterEach, describe, expect, test } from "bun:test"
import type { MsgRequest } from "@nats-io/jetstream"
import { Duration, Effect, Option } from "effect"
import { join } from "node:path"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import type { MsgsysSettings } from "../../../src/config/MsgsysConfig.ts"
import * as Client from "../../../src/client/Client.ts"
import { Results } from "../../../src/task/Results.ts"
import { define } from "../../fixtures/chaosApp.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"
import {
  type ClientRuntime,
  clientRuntime,
  finalRecords,
  killAll,
  messagesLeft,
  notSucceeded,
  readLog,
  ready,
  spawnWorker,
  waitFor
} from "./support.ts"

const h = natsHarness()
afterEach(killAll)

/** The consumers' floors and the messages left, with their tasks' status: why a stream is not empty. */
const describeStream = (rt: ClientRuntime, settings: MsgsysSettings, actor: string) =>
  rt.runPromise(Effect.gen(function*() {
    const { manager } = yield* Nats
    const results = yield* Results
    const stream = Subjects.make(settings.streamPrefix).taskStream(actor)
    return yield* Effect.promise(async () => {
      const lines: Array<string> = []
      for await (const c of manager.consumers.list(stream)) {
        lines.push(`${c.name}: ack floor #${c.ack_floor.stream_seq}, delivered #${c.delivered.stream_seq}, ` +
          `${c.num_ack_pending} pending, ${c.num_pending} undelivered`)
      }
      let seq = (await manager.streams.info(stream)).state.first_seq
      for (let i = 0; i < 10; i++) {
        const m = await manager.streams.getMessage(stream, { seq, next_by_subj: ">" } as unknown as MsgRequest)
        if (m === null) break
        const id = m.header?.get("Msgsys-Id") ?? ""
        const record = await Effect.runPromise(Effect.option(results.get(id)))
        lines.push(`#${m.seq} ${m.subject} ${id}: ${Option.match(Option.flatten(record), { onNone: () => "no status", onSome: (r) => r.status })}`)
        seq = m.seq + 1
      }
      return lines.join("\n")
    })
  }))

describe("acked leftovers", () => {
  test("after two broker SIGKILLs under load, the task stream ends empty once every task succeeded", async () => {
    const base = h.settings({ ackWait: Duration.seconds(3) })
    const settings = { ...base, nats: { ...base.nats, reconnectWait: Duration.millis(250) } }
    const actor = actorName("leftover")
    const { Sleep } = define(actor)
    const log = join(settings.dataDir, "chaos.log")
    const env = { MSGSYS_NATS_RECONNECT_WAIT: "250ms", MSGSYS_SWEEP_INTERVAL: "1s", CHAOS_CONCURRENCY: "32" }
    const workers = ["w1", "w2"].map((label) => spawnWorker({ label, settings, actor, log, env }))
    await Promise.all(workers.map((w) => ready(w)))

    const rt = clientRuntime(settings)
    try {
      const total = 2000
      const ids = Array.from({ length: total }, (_, i) => `t-${i}`)
      const handles = await rt.runPromise(Effect.forEach(ids, (id) =>
        Client.Client.use((c) => c.enqueue(Sleep, { id, ms: 0 })), { concurrency: 64 }))
      const taskIds = handles.map((x) => x.id)

      // kill the broker twice while acks stream in
      const done = () => readLog(log).filter((l) => l.kind === "done").length
      for (const share of [0.2, 0.5]) {
        const before = done()
        await waitFor(`${share * 100}% of the tasks to finish`, () => done() >= before + total * 0.15 && done() >= total * share, 60_000, 5)
        await Effect.runPromise(h.server.restart)
      }

      const records = await finalRecords(rt, taskIds, 90_000)
      if (notSucceeded(records, taskIds).length > 0) {
        // for a failure to be read from CI's output: the stream (are the tasks still there?) and what the workers said
        console.error(await describeStream(rt, settings, actor))
        for (const w of workers) console.error(`--- ${w.label}\n${w.output().split("\n").filter((l) => !/level=INFO/.test(l)).join("\n")}`)
      }
      expect(notSucceeded(records, taskIds)).toEqual([])
      // every task succeeded and was acked: nothing may stay in the work-queue stream
      const left = await waitFor("the task stream to be empty", async () => {
        const n = await messagesLeft(rt, settings, actor).catch(() => -1)
        return n === 0 ? n : false
      }, 15_000, 250).catch(async (e) => {
        const sweeps = workers.flatMap((w) => w.output().split("\n").filter((l) => /sweep|had passed|not settled/.test(l)))
        throw new Error(`${(e as Error).message}:\n${await describeStream(rt, settings, actor)}\n${sweeps.join("\n")}`)
      })
      expect(left).toBe(0)
      // how many the sweeper removed (0 on a server without the defect): for the record, not asserted
      const removed = workers.flatMap((w) => [...w.output().matchAll(/removed (\d+) settled message/g)])
        .reduce((n, m) => n + Number(m[1]), 0)
      console.log(`stream sweeper removed ${removed} leftover message(s)`)
    } finally {
      await rt.dispose()
    }
  }, 180_000)
})
