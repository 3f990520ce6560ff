/**
 * The worker's HTTP port (`MSGSYS_HTTP_PORT`, 0 turns it off; `MSGSYS_HTTP_HOST`), served by
 * `Bun.serve`: `/healthz` (the process answers), `/readyz` (see `Health`; 503 with the reasons
 * when not ready), `/metrics` (Prometheus text, see `Scrape`), the dashboard at `/` and its API
 * under `/api/` (see `Api`). It stops serving when its scope closes, before the worker's graceful
 * shutdown begins.
 * @since 0.1.0
 */
import { Context, Data, Effect, Layer } from "effect"
import { MsgsysConfig } from "../config/MsgsysConfig.ts"
import { Worker } from "../runtime/Worker.ts"
import { describeFailure } from "../trace/Logging.ts"
import * as Activity from "./Activity.ts"
import * as Api from "./Api.ts"
import * as Dashboard from "./Dashboard.ts"
import * as Health from "./Health.ts"
import * as Schedules from "./Schedules.ts"
import * as Scrape from "./Scrape.ts"

/** The port is taken. @category errors @since 0.1.0 */
export class HttpPortInUse extends Data.TaggedError("HttpPortInUse")<{
  readonly host: string
  readonly port: number
  readonly reason: string
}> {
  override get message() {
    return `cannot listen on ${this.host}:${this.port} for /healthz, /readyz, /metrics and the dashboard (${this.reason}): ` +
      "another worker or program has the port; give each worker on a host its own MSGSYS_HTTP_PORT, or set it to 0 to turn HTTP off"
  }
}

/** @category services @since 0.1.0 */
export class HttpServer extends Context.Service<HttpServer, {
  /** Where the dashboard is, e.g. `http://127.0.0.1:7777/`; undefined when HTTP is off. */
  readonly url: string | undefined
  /** The port listened on; 0 when HTTP is off. */
  readonly port: number
}>()("msgsys/HttpServer") {}

const text = (body: string, status = 200, contentType = "text/plain; charset=utf-8") =>
  new Response(body, { status, headers: { "content-type": contentType, "cache-control": "no-store" } })

/**
 * Serves the port the config names while the layer lives; nothing when it is 0.
 * @category layers @since 0.1.0
 */
export const layer: Layer.Layer<HttpServer, HttpPortInUse, Api.Requirements> = Layer.effect(
  HttpServer,
  Effect.gen(function*() {
    const config = yield* MsgsysConfig
    if (config.httpPort === 0) return HttpServer.of({ url: undefined, port: 0 })
    const worker = yield* Worker
    const probe = yield* Health.makeProbe
    const activity = yield* Activity.make(worker)
    const schedules = yield* Schedules.make
    const context = yield* Effect.context<Api.Requirements>()
    const run = Effect.runPromiseWith(context)

    const route = (request: Request): Effect.Effect<Response, never, Api.Requirements> => {
      const url = new URL(request.url)
      const api = Api.handle(request, url, activity, schedules)
      if (api !== undefined) return api
      if (request.method !== "GET" && request.method !== "HEAD") return Effect.succeed(text("method not allowed\n", 405))
      switch (url.pathname) {
        case "/healthz":
          return Effect.succeed(text("ok\n"))
        case "/readyz":
          return Effect.map(probe, (r) => text(Health.render(r), r.ready ? 200 : 503))
        case "/metrics":
          return Effect.map(Scrape.render, (body) => text(body, 200, Scrape.contentType))
        default: {
          const asset = Dashboard.asset(url.pathname)
          return Effect.succeed(asset ? text(asset.body, 200, asset.contentType) : text("not found\n", 404))
        }
      }
    }

    const server = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          Bun.serve({
            port: config.httpPort,
            hostname: config.httpHost,
            fetch: (request) =>
              run(route(request).pipe(
                Effect.catchCause((cause) => Effect.succeed(text(`internal error: ${describeFailure(cause)}\n`, 500))),
                // a dashboard polls every 2 s and Prometheus scrapes: no spans of theirs in the traces
                Effect.withTracerEnabled(false)
              ))
          }),
        catch: (e) => new HttpPortInUse({ host: config.httpHost, port: config.httpPort, reason: e instanceof Error ? e.message : String(e) })
      }),
      (s) => Effect.promise(() => s.stop(true))
    )
    const shownHost = config.httpHost === "0.0.0.0" || config.httpHost === "::" ? "127.0.0.1" : config.httpHost
    const url = `http://${shownHost.includes(":") ? `[${shownHost}]` : shownHost}:${server.port}/`
    yield* Effect.logInfo(`dashboard, /healthz, /readyz and /metrics at ${url}`)
    return HttpServer.of({ url, port: server.port ?? config.httpPort })
  })
)
