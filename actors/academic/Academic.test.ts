/**
 * The academic system on a real nats-server, and the same scenario in memory: the registrar
 * publishes CRUD events with source and correlation metadata, in batches; the notes service's
 * groups read their families only.
 */
import { describe, expect, test } from "bun:test"
import { Context, Effect, Layer, Schema } from "effect"
import { Client, MsgsysConfig } from "msgsys"
import { DeadLetters, Subjects } from "msgsys/admin"
import { MemoryBroker } from "msgsys/testing"
import * as DataDir from "../shared/DataDir.ts"
import { eventually, natsServer, quietLogs } from "../support/TestRuntime.ts"
import { app, AssignmentTasks, Course, CourseTasks, ExamTasks, Notes, NotesLive, source } from "./Academic.ts"
import * as Crud from "./Crud.ts"

const cs101 = { courseCode: "CS101", courseName: "Intro to Computer Science", semester: "Fall 2026", credits: 3, instructor: "Dr. Smith" }
const ma201 = { courseCode: "MA201", courseName: "Linear Algebra", semester: "Fall 2026", credits: 4, instructor: "Dr. Noether" }
const ph110 = { courseCode: "PH110", courseName: "Mechanics", semester: "Fall 2026", credits: 4, instructor: "Dr. Meitner" }

const scenario = (dir: string, deadLetters: Effect.Effect<number>) =>
  Effect.gen(function*() {
    const client = yield* Client.Client
    const notes = () => Notes.use((n) => Effect.sync(() => ({ notebooks: n.notebooks(), todos: n.todos() }))).pipe(
      Effect.provide(NotesLive),
      Effect.provide(DataDir.layer(dir))
    )
    const save = yield* client.enqueue(CourseTasks.save, { items: [cs101, ma201, ph110], userId: "admin-1" }, { correlationId: "term-setup-2026" })
    expect(yield* client.result(save, "20 seconds")).toEqual({ created: 3, updated: 0, unchanged: 0 })
    yield* eventually("three notebooks", Effect.map(notes(), (n) => n.notebooks.length === 3))
    const first = (yield* notes()).notebooks
    expect(first.map((b) => [b.courseCode, b.title, b.instructor, b.source, b.correlationId])).toEqual([
      ["CS101", "Intro to Computer Science", "Dr. Smith", source, "term-setup-2026"],
      ["MA201", "Linear Algebra", "Dr. Noether", source, "term-setup-2026"],
      ["PH110", "Mechanics", "Dr. Meitner", source, "term-setup-2026"]
    ])

    // one changed field: one updated event carrying only that field; an unchanged course: nothing
    const change = yield* client.enqueue(CourseTasks.save, { items: [{ ...cs101, instructor: "Dr. Hopper" }, ma201] })
    expect(yield* client.result(change, "20 seconds")).toEqual({ created: 0, updated: 1, unchanged: 1 })
    yield* eventually("the new instructor", Effect.map(notes(), (n) => n.notebooks[0]!.instructor === "Dr. Hopper"))
    expect((yield* notes()).notebooks[0]!.correlationId).toBe(change.id)

    // assignments become to-dos; exams are published but never reach the notes service
    const hw = yield* client.enqueue(AssignmentTasks.save, {
      items: [{ assignmentId: "CS101-hw1", courseCode: "CS101", title: "Recursion", dueDate: "2026-10-01", maxPoints: 100 }]
    })
    const exam = yield* client.enqueue(ExamTasks.save, {
      items: [{ examId: "CS101-mid", courseCode: "CS101", title: "Midterm", date: "2026-10-20", durationMinutes: 90 }]
    })
    yield* client.result(hw, "20 seconds")
    expect(yield* client.result(exam, "20 seconds")).toEqual({ created: 1, updated: 0, unchanged: 0 })
    yield* eventually("the to-do", Effect.map(notes(), (n) => n.todos.length === 1))
    expect((yield* notes()).todos).toEqual([
      { assignmentId: "CS101-hw1", courseCode: "CS101", title: "Recursion", dueDate: "2026-10-01", deleted: false }
    ])

    // a read is an event too (counted once per event), a delete marks the notebook
    const get = yield* client.enqueue(CourseTasks.get, { id: "MA201", userId: "student-7" })
    expect(yield* client.result(get, "20 seconds")).toEqual({ found: true })
    const removed = yield* client.enqueue(CourseTasks.remove, { ids: ["PH110", "XX999"] })
    expect(yield* client.result(removed, "20 seconds")).toEqual({ deleted: 1 })
    yield* eventually("the view and the deletion", Effect.map(notes(), (n) => n.notebooks[1]!.views === 1 && n.notebooks[2]!.deleted))
    yield* Effect.sleep("200 millis")
    expect(yield* deadLetters).toBe(0)
  })

describe("academic events on NATS", () => {
  const nats = natsServer()
  test("the registrar's CRUD events reach the notes service with their metadata, each family to its own group", () =>
    Effect.runPromise(Effect.gen(function*() {
      const dir = nats.dir()
      const ctx = yield* nats.start(app(DataDir.layer(dir)), nats.settings(dir))
      const names = Subjects.make(Context.get(ctx, MsgsysConfig.MsgsysConfig).streamPrefix)
      const letters = DeadLetters.list(names, { limit: 100 }).pipe(
        Effect.map((p) => p.letters.length),
        Effect.provideContext(ctx),
        Effect.orDie
      )
      yield* scenario(dir, letters).pipe(Effect.provideContext(ctx))
    }).pipe(Effect.scoped, Effect.provide(quietLogs))), 60_000)
})

describe("academic events in memory", () => {
  const nats = natsServer()
  test("the same scenario on the in-memory broker", () =>
    Effect.runPromise(Effect.gen(function*() {
      const dir = nats.dir()
      const ctx = yield* Layer.build(MemoryBroker.layerApp(app(DataDir.layer(dir))))
      const letters = Effect.map(Context.get(ctx, MemoryBroker.MemoryBroker).deadLetters, (l) => l.length)
      yield* scenario(dir, letters).pipe(Effect.provideContext(ctx))
    }).pipe(Effect.scoped, Effect.provide(quietLogs))), 30_000)
})

describe("CRUD families", () => {
  test("created needs the whole entity, updated takes any subset of fields, read and deleted the key", () => {
    const decode = (s: Schema.Codec<any, any, never, never>, u: unknown) => Schema.decodeUnknownExit(s)(u)._tag
    expect(Course.events.map((e) => e.subject)).toEqual([
      "academic.course.created", "academic.course.read", "academic.course.updated", "academic.course.deleted"
    ])
    expect(decode(Course.created.payload, { courseCode: "CS101" })).toBe("Failure")
    expect(decode(Course.created.payload, cs101)).toBe("Success")
    expect(decode(Course.updated.payload, { courseCode: "CS101", changes: { credits: 5 } })).toBe("Success")
    expect(decode(Course.updated.payload, { courseCode: "CS101", changes: { credits: 99 } })).toBe("Failure")
    expect(decode(Course.deleted.payload, { courseCode: "CS101" })).toBe("Success")
    expect(decode(Course.read.payload, { courseCode: "CS101" })).toBe("Failure")
    expect(Course.diff(cs101, { ...cs101, credits: 5 })).toEqual({ credits: 5 })
    expect(Course.diff(cs101, cs101)).toBeUndefined()
    expect(Crud.headersOf("svc", "u1")).toEqual({ "Msgsys-Source": "svc", "Msgsys-User": "u1" })
  })
})
