/**
 * The dashboard's JSON API, under `/api/`: the overview (this worker, every actor's counts, the
 * live workers, the activity history), the latest failures and a search over the audit log, one
 * task's steps and status, dead letters with replay, and the schedules with pause and resume.
 *
 * Requests that change something are POSTs carrying the header `X-Msgsys-Action: 1`: a browser
 * sends a custom header to another origin only after a CORS preflight, which this server never
 * grants, so another site cannot make a visitor's browser replay a letter.
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import * as AuditQueries from "../audit/AuditQueries.ts"
import type { Nats } from "../broker/Nats.ts"
import * as Subjects from "../broker/Subjects.ts"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import * as DeadLetters from "../dlq/DeadLetters.ts"
import type { Control } from "../control/Control.ts"
import { describeFailure } from "../trace/Logging.ts"
import { version } from "../config/Version.ts"
import { Worker } from "../runtime/Worker.ts"
import type { Database } from "../sqlite/Database.ts"
import * as StatusReport from "../status/StatusReport.ts"
import { Results } from "../task/Results.ts"
import type * as Activity from "./Activity.ts"
import * as Schedules from "./Schedules.ts"

/** The header a changing request must carry. @category constants @since 0.1.0 */
export const actionHeader = "x-msgsys-action"

/** What the API needs. @category models @since 0.1.0 */
export type Requirements = Nats | Database | Results | Control | Worker | MsgsysConfig

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" } })

const statusOf = (error: unknown): number => {
  const tag = (error as { _tag?: unknown })?._tag
  if (tag === "LetterNotFound" || tag === "ScheduleNotFound") return 404
  if (tag === "InvalidFilter" || tag === "LetterBodyMissing" || tag === "LetterUnreadable") return 400
  return 500
}

const failure = (error: unknown) =>
  json({ error: error instanceof Error ? error.message || error.name : String(error) }, statusOf(error))

const intParam = (url: URL, name: string, fallback: number) => {
  const n = Number.parseInt(url.searchParams.get(name) ?? "", 10)
  return Number.isSafeInteger(n) && n >= 0 ? n : fallback
}

const textParam = (url: URL, name: string) => {
  const v = url.searchParams.get(name)?.trim()
  return v === undefined || v === "" ? undefined : v
}

/**
 * Answers one `/api/...` request, or `undefined` when the path is not the API's.
 * @category handlers @since 0.1.0
 */
export const handle = (
  request: Request,
  url: URL,
  activity: Activity.Activity,
  schedules: Schedules.Panel
): Effect.Effect<Response, never, Requirements> | undefined => {
  const path = url.pathname
  if (!path.startsWith("/api/")) return undefined
  let route: ReadonlyArray<string>
  try {
    route = path.slice("/api/".length).split("/").map(decodeURIComponent)
  } catch {
    return Effect.succeed(json({ error: `the path ${path} is not valid percent-encoding` }, 400))
  }
  const method = request.method
  if (method === "POST" && request.headers.get(actionHeader) !== "1") {
    return Effect.succeed(json({ error: `a changing request needs the header ${actionHeader}: 1` }, 403))
  }
  const answer = (effect: Effect.Effect<unknown, unknown, Requirements>) =>
    effect.pipe(
      Effect.map((body) => json(body)),
      Effect.catchCause((cause) => {
        const error = cause.reasons.find((r) => r._tag === "Fail")
        return Effect.succeed(error !== undefined ? failure(error.error) : json({ error: describeFailure(cause) }, 500))
      })
    )
  const names = Effect.map(MsgsysConfig, (c) => Subjects.make(c.streamPrefix))

  if (method === "GET" && route[0] === "overview" && route.length === 1) {
    return answer(Effect.gen(function*() {
      const worker = yield* Worker
      const report = yield* StatusReport.read(yield* names)
      return {
        worker: {
          id: worker.id,
          version,
          startedAt: worker.startedAt,
          actors: yield* worker.state,
          pools: yield* worker.pools
        },
        report,
        activity: activity.samples()
      }
    }))
  }
  if (method === "GET" && route[0] === "failures" && route.length === 1) {
    return answer(AuditQueries.failures({ limit: Math.min(200, intParam(url, "limit", 20)) }))
  }
  if (method === "GET" && route[0] === "tasks" && route.length === 1) {
    return answer(AuditQueries.search({
      taskId: textParam(url, "task"),
      subject: textParam(url, "subject"),
      tenant: textParam(url, "tenant"),
      status: textParam(url, "status"),
      limit: intParam(url, "limit", 50)
    }))
  }
  if (method === "GET" && route[0] === "tasks" && route.length === 2) {
    const taskId = route[1]!
    return answer(Effect.gen(function*() {
      const results = yield* Results
      const steps = yield* AuditQueries.show(taskId)
      const record = yield* results.get(taskId)
      return { taskId, steps, status: Option.getOrUndefined(record) ?? null }
    }))
  }
  if (method === "GET" && route[0] === "dead-letters" && route.length === 1) {
    return answer(Effect.flatMap(names, (n) =>
      DeadLetters.list(n, {
        limit: Math.min(500, intParam(url, "limit", 50)),
        after: intParam(url, "after", 0),
        actor: textParam(url, "actor"),
        tenant: textParam(url, "tenant")
      })))
  }
  if (method === "POST" && route[0] === "dead-letters" && route.length === 3 && route[2] === "replay") {
    const sequence = Number.parseInt(route[1]!, 10)
    return answer(Effect.gen(function*() {
      const taskId = yield* DeadLetters.replay(yield* names, sequence)
      yield* Effect.logInfo(`dead letter #${sequence} replayed from the dashboard as task ${taskId}`)
      return { sequence, taskId }
    }))
  }
  if (method === "GET" && route[0] === "schedules" && route.length === 1) {
    return answer(schedules.list)
  }
  if (method === "POST" && route[0] === "schedules" && route.length === 3 && (route[2] === "pause" || route[2] === "resume")) {
    const name = route[1]!
    const paused = route[2] === "pause"
    return answer(Effect.tap(schedules.setPaused(name, paused), () =>
      Effect.logInfo(`schedule ${name} ${paused ? "paused" : "resumed"} from the dashboard`)))
  }
  return Effect.succeed(json({ error: `no API route ${method} ${path}` }, 404))
}
