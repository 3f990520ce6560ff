/**
 * The academic event client (seed 003) on msgsys: CRUD event families for courses, assignments
 * and exams derived from one schema each; a publishing service (`registrar`, the schedule
 * management service: it keeps the catalog and publishes what changed, in one batch per task);
 * and a consuming notes service with durable groups of its own on filtered subjects
 * (`academic.course.*`, `academic.assignment.*`): it keeps a notebook per course and a to-do per
 * assignment. Exam events are published for whoever subscribes; the notes service never sees them.
 */
import { Database } from "bun:sqlite"
import { Context, Effect, Layer, Schema } from "effect"
import { Actor, App, Client, type Event, Retry, Subscriber, Task } from "msgsys"
import { DataDir } from "../shared/DataDir.ts"
import * as Crud from "./Crud.ts"

// ---------------------------------------------------------------------------------------------
// the entities and their event families

export const Course = Crud.family("academic", "course", {
  courseCode: Schema.String,
  courseName: Schema.String,
  semester: Schema.String,
  credits: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 12 })),
  instructor: Schema.String
}, "courseCode")

export const Assignment = Crud.family("academic", "assignment", {
  assignmentId: Schema.String,
  courseCode: Schema.String,
  title: Schema.String,
  dueDate: Schema.String,
  maxPoints: Schema.Int
}, "assignmentId")

export const Exam = Crud.family("academic", "exam", {
  examId: Schema.String,
  courseCode: Schema.String,
  title: Schema.String,
  date: Schema.String,
  durationMinutes: Schema.Int
}, "examId")

export const families = [Course, Assignment, Exam] as const

/** The publishing service's name, sent as `Msgsys-Source` on every event it publishes. */
export const source = "schedule-service"

// ---------------------------------------------------------------------------------------------
// the registrar's catalog (SQLite)

export class Catalog extends Context.Service<Catalog, {
  readonly get: (entity: string, id: string) => unknown | undefined
  readonly put: (entity: string, id: string, value: unknown) => void
  readonly remove: (entity: string, id: string) => boolean
}>()("actors/academic/Catalog") {}

const openDb = (path: string, schema: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const db = new Database(path, { create: true })
      db.run("PRAGMA journal_mode = WAL")
      db.run("PRAGMA busy_timeout = 5000")
      db.run(schema)
      return db
    }),
    (db) => Effect.sync(() => db.close())
  )

export const CatalogLive: Layer.Layer<Catalog, never, DataDir> = Layer.effect(
  Catalog,
  Effect.gen(function*() {
    const db = yield* openDb(
      (yield* DataDir).file("academic", "registrar.sqlite"),
      "CREATE TABLE IF NOT EXISTS entities (entity TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (entity, id))"
    )
    const get = db.prepare<{ value: string }, [string, string]>("SELECT value FROM entities WHERE entity = ? AND id = ?")
    const put = db.prepare("INSERT INTO entities (entity, id, value) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value")
    const remove = db.prepare("DELETE FROM entities WHERE entity = ? AND id = ?")
    return Catalog.of({
      get: (entity, id) => {
        const row = get.get(entity, id)
        return row ? JSON.parse(row.value) : undefined
      },
      put: (entity, id, value) => void put.run(entity, id, JSON.stringify(value)),
      remove: (entity, id) => remove.run(entity, id).changes > 0
    })
  })
)

// ---------------------------------------------------------------------------------------------
// the publishing service: per entity a save, a delete and a get task

const userId = Schema.optional(Schema.String)

const tasksOf = <F extends Crud.Family>(f: F) => ({
  save: Task.make(`registrar.${f.entity}.save`, {
    input: { items: Schema.Array(f.schema), userId },
    output: { created: Schema.Int, updated: Schema.Int, unchanged: Schema.Int }
  }),
  remove: Task.make(`registrar.${f.entity}.delete`, {
    input: { ids: Schema.Array(Schema.String), userId },
    output: { deleted: Schema.Int }
  }),
  get: Task.make(`registrar.${f.entity}.get`, {
    input: { id: Schema.String, userId: Schema.String },
    output: { found: Schema.Boolean }
  })
})

export const CourseTasks = tasksOf(Course)
export const AssignmentTasks = tasksOf(Assignment)
export const ExamTasks = tasksOf(Exam)

export const Registrar = Actor.make("registrar", {
  protocol: [
    CourseTasks.save, CourseTasks.remove, CourseTasks.get,
    AssignmentTasks.save, AssignmentTasks.remove, AssignmentTasks.get,
    ExamTasks.save, ExamTasks.remove, ExamTasks.get
  ],
  pool: "fast",
  concurrency: 4,
  retry: Retry.exponential({ base: "200 millis", maxAttempts: 5, cap: "10 seconds" }),
  // one entity kind at a time per worker: two saves of one course never interleave their diffs
  partitionBy: (_input: unknown, envelope) => envelope.type.split(".")[1]!
})

type Request = Actor.Request<Task.Any>

/**
 * The handlers of one family. A save compares each item with the catalog, publishes `created` or
 * `updated` (changed fields only) for what differs — one pipelined batch — and only then writes
 * the catalog. Event ids derive from the task id and the item, so a retry after a crash between
 * the publish and the write publishes the same ids again, which the stream stores once; a retry
 * after the write finds nothing changed and publishes nothing.
 */
const handlersOf = (f: Crud.Family, client: Client.Client["Service"], catalog: Catalog["Service"]) => {
  const meta = (r: Request) => ({ parent: r.envelope, headers: Crud.headersOf(source, r.input.userId) })
  return {
    [`registrar.${f.entity}.save`]: (r: Request) =>
      Effect.gen(function*() {
        const created: Array<unknown> = []
        const updated: Array<{ id: string; changes: object }> = []
        let unchanged = 0
        for (const item of r.input.items as ReadonlyArray<any>) {
          const id = f.keyOf(item)
          const prev = catalog.get(f.entity, id)
          if (prev === undefined) created.push(item)
          else {
            const changes = f.diff(prev as never, item)
            if (changes === undefined) unchanged++
            else updated.push({ id, changes })
          }
        }
        if (created.length > 0) {
          yield* client.publishMany(f.created, created as never, { ...meta(r), id: (v) => `${r.taskId}.c.${f.keyOf(v as never)}` })
        }
        if (updated.length > 0) {
          yield* client.publishMany(f.updated, updated.map((u) => ({ [f.key]: u.id, changes: u.changes })) as never, {
            ...meta(r),
            id: (_, i) => `${r.taskId}.u.${updated[i]!.id}`
          })
        }
        for (const item of r.input.items as ReadonlyArray<any>) catalog.put(f.entity, f.keyOf(item), item)
        return { created: created.length, updated: updated.length, unchanged }
      }),
    [`registrar.${f.entity}.delete`]: (r: Request) =>
      Effect.gen(function*() {
        const ids = (r.input.ids as ReadonlyArray<string>).filter((id) => catalog.get(f.entity, id) !== undefined)
        if (ids.length > 0) {
          yield* client.publishMany(f.deleted, ids.map((id) => ({ [f.key]: id })) as never, { ...meta(r), id: (_, i) => `${r.taskId}.d.${ids[i]}` })
        }
        for (const id of ids) catalog.remove(f.entity, id)
        return { deleted: ids.length }
      }),
    [`registrar.${f.entity}.get`]: (r: Request) =>
      Effect.gen(function*() {
        const found = catalog.get(f.entity, r.input.id) !== undefined
        // reads are audited as events too (who looked at what)
        if (found) yield* client.publish(f.read, { [f.key]: r.input.id, readBy: r.input.userId } as never, { ...meta(r), id: `${r.taskId}.r` })
        return { found }
      })
  }
}

export const RegistrarLive = Registrar.toLayer(Effect.gen(function*() {
  const client = yield* Client.Client
  const catalog = yield* Catalog
  return Object.assign({}, ...families.map((f) => handlersOf(f, client, catalog))) as never
}))

// ---------------------------------------------------------------------------------------------
// the notes service: a notebook per course, a to-do per assignment

/** A course's notebook. */
export interface Notebook {
  readonly courseCode: string
  readonly title: string
  readonly semester: string
  readonly instructor: string
  readonly deleted: boolean
  readonly views: number
  /** Who last changed it, and in which correlation. */
  readonly source: string | null
  readonly correlationId: string | null
}

/** An assignment's to-do in its course's notebook. */
export interface Todo {
  readonly assignmentId: string
  readonly courseCode: string
  readonly title: string
  readonly dueDate: string
  readonly deleted: boolean
}

export class Notes extends Context.Service<Notes, {
  readonly notebooks: () => ReadonlyArray<Notebook>
  readonly todos: () => ReadonlyArray<Todo>
  /** Runs statements in one transaction. */
  readonly write: (f: (db: Database) => void) => void
}>()("actors/academic/Notes") {}

export const NotesLive: Layer.Layer<Notes, never, DataDir> = Layer.effect(
  Notes,
  Effect.gen(function*() {
    const db = yield* openDb(
      (yield* DataDir).file("academic", "notes.sqlite"),
      `CREATE TABLE IF NOT EXISTS notebooks (course_code TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '',
         semester TEXT NOT NULL DEFAULT '', instructor TEXT NOT NULL DEFAULT '', deleted INTEGER NOT NULL DEFAULT 0,
         views INTEGER NOT NULL DEFAULT 0, source TEXT, correlation_id TEXT);
       CREATE TABLE IF NOT EXISTS todos (assignment_id TEXT PRIMARY KEY, course_code TEXT NOT NULL, title TEXT NOT NULL,
         due_date TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0);
       CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY)`
    )
    return Notes.of({
      notebooks: () =>
        db.query<any, []>("SELECT * FROM notebooks ORDER BY course_code").all().map((r) => ({
          courseCode: r.course_code,
          title: r.title,
          semester: r.semester,
          instructor: r.instructor,
          deleted: r.deleted === 1,
          views: r.views,
          source: r.source,
          correlationId: r.correlation_id
        })),
      todos: () =>
        db.query<any, []>("SELECT * FROM todos ORDER BY assignment_id").all().map((r) => ({
          assignmentId: r.assignment_id,
          courseCode: r.course_code,
          title: r.title,
          dueDate: r.due_date,
          deleted: r.deleted === 1
        })),
      write: (f) => db.transaction(() => f(db))()
    })
  })
)

/** The notes service's course group: every course event, nothing else of the domain. */
export const NotesCourses = Subscriber.make("notes-courses", {
  events: Course.events,
  concurrency: 4,
  // one notebook's events in order (an update never overtakes its create within a worker)
  partitionBy: (payload: { courseCode: string }) => payload.courseCode,
  retry: Retry.exponential({ base: "200 millis", maxAttempts: 3 })
})

/** The notes service's assignment group. */
export const NotesAssignments = Subscriber.make("notes-assignments", {
  events: Assignment.events,
  concurrency: 4,
  partitionBy: (payload: { assignmentId: string }) => payload.assignmentId,
  retry: Retry.exponential({ base: "200 millis", maxAttempts: 3 })
})

/**
 * A write that happens once per event: the event id is recorded in the same transaction, so a
 * redelivery (the handler ran, the ack was lost) changes nothing — a view count is not an upsert.
 */
const once = (notes: Notes["Service"], r: Request, f: (db: Database) => void) =>
  Effect.sync(() =>
    notes.write((db) => {
      if (db.run("INSERT OR IGNORE INTO seen (event_id) VALUES (?)", [`${r.envelope.type}:${r.envelope.id}`]).changes === 0) return
      f(db)
    })
  )

const stamp = (r: Request) => {
  const m = Crud.metadataOf(r.envelope)
  return [m.source ?? null, m.correlationId] as const
}

export const NotesCoursesLive = NotesCourses.toLayer(Effect.gen(function*() {
  const notes = yield* Notes
  return {
    [Course.created.subject]: (r: Request) =>
      once(notes, r, (db) =>
        db.run(
          `INSERT INTO notebooks (course_code, title, semester, instructor, deleted, source, correlation_id) VALUES (?, ?, ?, ?, 0, ?, ?)
           ON CONFLICT DO UPDATE SET title = excluded.title, semester = excluded.semester, instructor = excluded.instructor,
             deleted = 0, source = excluded.source, correlation_id = excluded.correlation_id`,
          [r.input.courseCode, r.input.courseName, r.input.semester, r.input.instructor, ...stamp(r)]
        )),
    [Course.updated.subject]: (r: Request) =>
      once(notes, r, (db) => {
        const c = r.input.changes
        db.run("INSERT OR IGNORE INTO notebooks (course_code) VALUES (?)", [r.input.courseCode])
        db.run(
          `UPDATE notebooks SET title = coalesce(?, title), semester = coalesce(?, semester), instructor = coalesce(?, instructor),
             source = ?, correlation_id = ? WHERE course_code = ?`,
          [c.courseName ?? null, c.semester ?? null, c.instructor ?? null, ...stamp(r), r.input.courseCode]
        )
      }),
    [Course.deleted.subject]: (r: Request) =>
      once(notes, r, (db) =>
        db.run(
          `INSERT INTO notebooks (course_code, deleted, source, correlation_id) VALUES (?, 1, ?, ?)
           ON CONFLICT DO UPDATE SET deleted = 1, source = excluded.source, correlation_id = excluded.correlation_id`,
          [r.input.courseCode, ...stamp(r)]
        )),
    [Course.read.subject]: (r: Request) =>
      once(notes, r, (db) => db.run("UPDATE notebooks SET views = views + 1 WHERE course_code = ?", [r.input.courseCode]))
  } as never
}))

export const NotesAssignmentsLive = NotesAssignments.toLayer(Effect.gen(function*() {
  const notes = yield* Notes
  return {
    [Assignment.created.subject]: (r: Request) =>
      once(notes, r, (db) => {
        // the course's notebook may not have been created yet: a stub that its created event fills in
        db.run("INSERT OR IGNORE INTO notebooks (course_code) VALUES (?)", [r.input.courseCode])
        db.run(
          `INSERT INTO todos (assignment_id, course_code, title, due_date, deleted) VALUES (?, ?, ?, ?, 0)
           ON CONFLICT DO UPDATE SET course_code = excluded.course_code, title = excluded.title, due_date = excluded.due_date, deleted = 0`,
          [r.input.assignmentId, r.input.courseCode, r.input.title, r.input.dueDate]
        )
      }),
    [Assignment.updated.subject]: (r: Request) =>
      once(notes, r, (db) =>
        db.run(
          "UPDATE todos SET title = coalesce(?, title), due_date = coalesce(?, due_date) WHERE assignment_id = ?",
          [r.input.changes.title ?? null, r.input.changes.dueDate ?? null, r.input.assignmentId]
        )),
    [Assignment.deleted.subject]: (r: Request) =>
      once(notes, r, (db) => db.run("UPDATE todos SET deleted = 1 WHERE assignment_id = ?", [r.input.assignmentId])),
    [Assignment.read.subject]: () => Effect.void
  } as never
}))

/** The academic system's actors, groups, events and handlers (which need the data directory). */
export const parts = {
  actors: [Registrar],
  subscribers: [NotesCourses, NotesAssignments],
  events: families.flatMap((f): ReadonlyArray<Event.Any> => f.events),
  handlers: Layer.mergeAll(RegistrarLive, NotesCoursesLive, NotesAssignmentsLive).pipe(
    Layer.provide(Layer.mergeAll(CatalogLive, NotesLive))
  )
}

/** The academic system as an app of its own. */
export const app = (data: Layer.Layer<DataDir>) =>
  App.make({ ...parts, handlers: Layer.provide(parts.handlers, data) })
