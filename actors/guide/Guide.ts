/**
 * The design guide's universal message system (seed 000): its four domains on msgsys — `etl` and
 * `reports` in the slow pool, `webapp` and the `events` groups in the fast pool, so a long ETL
 * load never delays a welcome email.
 */
import { Layer } from "effect"
import { App } from "msgsys"
import { Etl, EtlLive } from "../etl/Etl.ts"
import * as Warehouse from "../etl/Warehouse.ts"
import * as Events from "../events/Events.ts"
import { Reports, ReportsLive } from "../reports/Reports.ts"
import type { DataDir } from "../shared/DataDir.ts"
import { Webapp, WebappLive } from "../webapp/Webapp.ts"

/** The four domains' actors, groups, events and handlers (which need the data directory). */
export const parts = {
  actors: [Etl, Reports, Webapp],
  subscribers: Events.groups,
  events: Events.events,
  handlers: Layer.mergeAll(EtlLive, ReportsLive, WebappLive, Events.handlers).pipe(Layer.provide(Warehouse.layer))
}

/** The four domains as an app of their own. */
export const app = (data: Layer.Layer<DataDir>) =>
  App.make({ actors: parts.actors, subscribers: parts.subscribers, events: parts.events, handlers: Layer.provide(parts.handlers, data) })
