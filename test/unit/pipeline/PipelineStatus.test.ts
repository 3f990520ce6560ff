import { describe, expect, test } from "bun:test"
import type { PipelineRecord } from "../../../src/pipeline/PipelineRecord.ts"
import * as PipelineStatus from "../../../src/pipeline/PipelineStatus.ts"
import type { TaskRecord } from "../../../src/task/TaskRecord.ts"

const record: PipelineRecord = { id: "P", tenant: "default", plan: ["p.a", ["p.b", "p.c"], "p.d"], createdAt: 1 }
const task = (id: string, status: TaskRecord["status"], extra: Partial<TaskRecord> = {}): [string, TaskRecord] =>
  [id, { id, subject: "p.x", tenant: "default", status, attempt: 1, updatedAt: 2, ...extra }]
const statuses = (s: PipelineStatus.PipelineStatus) => s.steps.map((t) => `${t.taskId}:${t.status}`)

describe("a pipeline's status, from its steps' task records", () => {
  test("before any worker took its first step: running at step 1, queued, the rest waiting", () => {
    const s = PipelineStatus.derive(record, new Map())
    expect([s.status, s.current, s.length]).toEqual(["running", 1, 3])
    expect(statuses(s)).toEqual(["P.1:queued", "P.2.1:waiting", "P.2.2:waiting", "P.3:waiting"])
  })

  test("a step whose tasks all succeeded lets the next one be queued; a gather waits for all its tasks", () => {
    const s = PipelineStatus.derive(record, new Map([task("P.1", "succeeded"), task("P.2.1", "succeeded")]))
    expect([s.status, s.current]).toEqual(["running", 2])
    expect(statuses(s)).toEqual(["P.1:succeeded", "P.2.1:succeeded", "P.2.2:queued", "P.3:waiting"])
  })

  test("a failed attempt with a retry scheduled keeps the pipeline running", () => {
    const s = PipelineStatus.derive(record, new Map([task("P.1", "failed", { error: { tag: "E", message: "once" } })]))
    expect([s.status, s.current, s.failure]).toEqual(["running", 1, undefined])
  })

  test("a dead task fails the pipeline at its step, with its error; the first in step order is the one named", () => {
    const s = PipelineStatus.derive(record, new Map([
      task("P.1", "succeeded"),
      task("P.2.1", "running"),
      task("P.2.2", "dead", { error: { tag: "Boom", message: "boom" }, attempt: 3 })
    ]))
    expect([s.status, s.current]).toEqual(["failed", 2])
    expect(s.failure).toMatchObject({ step: 2, child: 2, taskId: "P.2.2", status: "dead", attempt: 3, error: { tag: "Boom", message: "boom" } })
    expect(PipelineStatus.isFinal(s.status)).toBe(true)
  })

  test("a cancelled task cancels the pipeline", () => {
    const s = PipelineStatus.derive(record, new Map([task("P.1", "cancelled")]))
    expect([s.status, s.current, s.failure?.taskId]).toEqual(["cancelled", 1, "P.1"])
  })

  test("a dead step replayed (queued again) makes the pipeline run again", () => {
    const s = PipelineStatus.derive(record, new Map([task("P.1", "queued", { attempt: 0 })]))
    expect([s.status, s.current, s.failure]).toEqual(["running", 1, undefined])
  })

  test("once every step succeeded: succeeded, with the last step's output (a gather's: its tasks' outputs in order)", () => {
    const done = new Map([task("P.1", "succeeded"), task("P.2.1", "succeeded"), task("P.2.2", "succeeded")])
    const s = PipelineStatus.derive(record, new Map([...done, task("P.3", "succeeded", { output: { total: 3 } })]))
    expect([s.status, s.current, s.output]).toEqual(["succeeded", undefined, { total: 3 }])
    const gathered = PipelineStatus.derive({ ...record, plan: ["p.a", ["p.b", "p.c"]] }, new Map([
      task("P.1", "succeeded"),
      task("P.2.1", "succeeded", { output: { b: 1 } }),
      task("P.2.2", "succeeded", { output: { c: 2 } })
    ]))
    expect([gathered.status, gathered.output]).toEqual(["succeeded", [{ b: 1 }, { c: 2 }]])
  })
})
