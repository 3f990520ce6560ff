/**
 * Every system of actors/ in one app: what `./scripts/dev` (`msgsys dev`) and `msgsys worker` run
 * by default. `msgsys dev --once` runs one checked round of every system (demo/Demo.ts); `msgsys
 * dev` keeps a gentle demo producer going (demo/Producer.ts). Run this file directly
 * (`bun run actors/index.ts`) for a worker binary.
 *
 * | system | folder | what |
 * | --- | --- | --- |
 * | the design guide's domains | guide/, etl/, reports/, events/, webapp/ | ETL into a warehouse, reports as files, event flows, web-app jobs; fast and slow pools |
 * | chat ingestion | chat/ | versioned events, a SQLite file per tenant, batches, DLQ worker, onboarding |
 * | task-queue backend | taskq/ | priorities, results with TTL, lifecycle events 30 days / 10M, schedules |
 * | CRUD event families | academic/ | created/read/updated/deleted from one schema; a publisher and a notes service |
 * | event bus | bus/ | one EventBus on NATS and in memory; the tax agent's flow |
 *
 * Files go under `ACTORS_DATA_DIR` (default `<MSGSYS_DATA_DIR>/actors`).
 */
import { Layer } from "effect"
import { App } from "msgsys"
import * as Academic from "./academic/Academic.ts"
import * as TaxAgent from "./bus/TaxAgent.ts"
import * as Chat from "./chat/Chat.ts"
import { demo } from "./demo/Demo.ts"
import { producer } from "./demo/Producer.ts"
import * as Guide from "./guide/Guide.ts"
import * as DataDir from "./shared/DataDir.ts"
import * as TaskQueue from "./taskq/TaskQueue.ts"

const systems = [Guide.parts, Chat.parts, TaskQueue.parts, Academic.parts, TaxAgent.parts] as const

const app = App.make({
  actors: [...Guide.parts.actors, ...TaskQueue.parts.actors, ...Academic.parts.actors],
  subscribers: [...Guide.parts.subscribers, ...Chat.parts.subscribers, ...TaskQueue.parts.subscribers, ...Academic.parts.subscribers, ...TaxAgent.parts.subscribers],
  events: systems.flatMap((s) => s.events),
  handlers: Layer.mergeAll(Guide.parts.handlers, Chat.parts.handlers, TaskQueue.parts.handlers, Academic.parts.handlers, TaxAgent.parts.handlers).pipe(
    Layer.provide(DataDir.layerFromConfig)
  ),
  demo: demo(DataDir.layerFromConfig),
  producer: producer(DataDir.layerFromConfig)
})

export default app

if (import.meta.main) App.runWorker(app)
