/**
 * msgsys: a universal message runtime for TypeScript on Bun.
 * The public API; every other module is internal.
 * @since 0.1.0
 */
export * as Actor from "./actor/Actor.ts"
export * as App from "./runtime/App.ts"
export * as AuditLog from "./audit/AuditLog.ts"
export * as Client from "./task/Client.ts"
export * as Control from "./runtime/Control.ts"
export * as DeadLetter from "./dlq/DeadLetter.ts"
export * as EmbeddedNats from "./broker/EmbeddedNats.ts"
export * as Envelope from "./envelope/Envelope.ts"
export * as Idempotency from "./idempotency/Idempotency.ts"
export * as Main from "./runtime/Main.ts"
export * as MsgsysConfig from "./config/MsgsysConfig.ts"
export * as Nats from "./broker/Nats.ts"
export * as Retry from "./retry/Retry.ts"
export * as Services from "./runtime/Services.ts"
export * as Task from "./task/Task.ts"
export * as TaskError from "./task/TaskError.ts"
export * as TaskRecord from "./task/TaskRecord.ts"
export * as Topology from "./broker/Topology.ts"
export * as Worker from "./runtime/Worker.ts"
