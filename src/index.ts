/**
 * msgsys: a universal message runtime for TypeScript on Bun. This is what an application uses:
 * defining tasks, actors, events, groups and pipelines, running them (`App`), and sending work
 * to them (`Client`, `PromiseClient`, `Pipelines`, `Schedules`). Tests use `msgsys/testing`,
 * operators' tools `msgsys/admin`; every other module is internal.
 * @since 0.1.0
 */

// defining work
/** Tasks: named, typed units of work on a subject. @since 0.1.0 */
export * as Task from "./task/Task.ts"
/** How a handler says a failure is permanent, and the errors the runtime gives a run. @since 0.1.0 */
export * as TaskError from "./task/TaskError.ts"
/** Actors: a subject domain's tasks, handlers, concurrency, retry policy, timeout and pool. @since 0.1.0 */
export * as Actor from "./actor/Actor.ts"
/** Events: typed facts delivered to every subscribing group. @since 0.1.0 */
export * as Event from "./event/Event.ts"
/** Event groups: the events a group takes and how it runs them. @since 0.1.0 */
export * as Subscriber from "./event/Subscriber.ts"
/** Pipelines: tasks chained one after another, or gathered side by side. @since 0.1.0 */
export * as Pipeline from "./pipeline/Pipeline.ts"
/** Retry policies (an Effect `Schedule`). @since 0.1.0 */
export * as Retry from "./retry/Retry.ts"
/** The metadata every message carries (id, tenant, correlation, trace), as handlers receive it. @since 0.1.0 */
export * as Envelope from "./envelope/Envelope.ts"

// running it
/** An app: its actors, groups and handlers, run as a worker (`App.layer`, `App.runWorker`). @since 0.1.0 */
export * as App from "./app/App.ts"
/** Settings: every `MSGSYS_*` variable, from the environment or from code. @since 0.1.0 */
export * as MsgsysConfig from "./config/MsgsysConfig.ts"

// sending work and reading outcomes
/** The client: enqueue tasks, publish events, read statuses, wait for results, cancel. @since 0.1.0 */
export * as Client from "./client/Client.ts"
/** The same client for code without Effect. @since 0.1.0 */
export * as PromiseClient from "./client/PromiseClient.ts"
/** A task's status record, as `Client.status` and `Client.wait` answer it. @since 0.1.0 */
export * as TaskRecord from "./task/TaskRecord.ts"
/** Starting pipelines, waiting for their output, reading their status. @since 0.1.0 */
export * as Pipelines from "./pipeline/Pipelines.ts"
/** Adding, changing, pausing and removing schedules; which tick made a task. @since 0.1.0 */
export * as Schedules from "./scheduler/Schedules.ts"
