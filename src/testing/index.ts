/**
 * msgsys/testing: what a program's tests use instead of a broker, or to start a real one.
 * @since 0.1.0
 */
export * as EmbeddedNats from "../broker/EmbeddedNats.ts"
export * as MemoryBroker from "./MemoryBroker.ts"
