/**
 * msgsys/admin: what operators' tools use, as the `msgsys` command does: the audit trail, dead
 * and exhausted letters, pauses, the status report, the workers alive, event group replays, and
 * a DLQ worker of its own. Each call runs on the services of `Services.layer` (from the
 * environment) or of a running `App.layer`; the names of streams and buckets come from
 * `Subjects.make(streamPrefix)`.
 * @since 0.1.0
 */

/** Statistics, a task's history, a tail, search, failures, prune and vacuum over the audit tables. @since 0.1.0 */
export * as AuditQueries from "../audit/AuditQueries.ts"
/** Pausing and resuming actors and pools on every worker. @since 0.1.0 */
export * as Control from "../control/Control.ts"
/** Dead letters: list, read, replay, remove. @since 0.1.0 */
export * as DeadLetters from "../dlq/DeadLetters.ts"
/** The DLQ worker on its own: retries dead letters with long backoff, keeps what still fails. @since 0.1.0 */
export * as DlqWorker from "../dlq/DlqWorker.ts"
/** Replaying exhausted letters. @since 0.1.0 */
export * as ExhaustedLetters from "../dlq/ExhaustedLetters.ts"
/** What the DLQ worker gave up on, kept in SQLite for a person. @since 0.1.0 */
export * as ExhaustedStore from "../dlq/ExhaustedStore.ts"
/** Replaying an event group from a sequence or a time. @since 0.1.0 */
export * as Replay from "../event/Replay.ts"
/** The services these calls run on, from `MsgsysConfig`. @since 0.1.0 */
export * as Services from "../app/Services.ts"
/** Per actor and pool: queued, running, retrying, delayed, dead; the workers alive. @since 0.1.0 */
export * as StatusReport from "../status/StatusReport.ts"
/** The names of every stream, consumer and bucket of a stream prefix. @since 0.1.0 */
export * as Subjects from "../broker/Subjects.ts"
/** The workers alive now, as they announce themselves. @since 0.1.0 */
export * as WorkerRegistry from "../registry/WorkerRegistry.ts"
