/**
 * What can go wrong talking to NATS, each named with its fix. `Nats.ts` maps nats.js errors to
 * these tags once, so the rest of msgsys never inspects a nats.js error.
 * @since 0.1.0
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { NoRespondersError, RequestError, TimeoutError } from "@nats-io/transport-node"
import { Data, Duration, Effect, Schedule } from "effect"

/** No server answered. @category errors @since 0.1.0 */
export class NatsUnreachable extends Data.TaggedError("NatsUnreachable")<{
  readonly servers: ReadonlyArray<string>
  readonly attempts: number
  readonly reason: string
}> {
  override get message() {
    return `cannot reach ${this.servers.join(", ")} after ${this.attempts} ${this.attempts === 1 ? "try" : "tries"} ` +
      `(${this.reason}) — is nats-server running? set MSGSYS_NATS_URL, or unset it to use the embedded server`
  }
}

/** The server refused the credentials. @category errors @since 0.1.0 */
export class NatsAuthorizationFailed extends Data.TaggedError("NatsAuthorizationFailed")<{
  readonly servers: ReadonlyArray<string>
  readonly reason: string
}> {
  override get message() {
    return `${this.servers.join(", ")} refused the connection: ${this.reason} — check MSGSYS_NATS_USER/` +
      "MSGSYS_NATS_PASSWORD, MSGSYS_NATS_TOKEN, MSGSYS_NATS_NKEY_SEED or MSGSYS_NATS_CREDS"
  }
}

/** TLS could not be negotiated. @category errors @since 0.1.0 */
export class NatsTlsFailed extends Data.TaggedError("NatsTlsFailed")<{
  readonly servers: ReadonlyArray<string>
  readonly reason: string
}> {
  override get message() {
    return `TLS with ${this.servers.join(", ")} failed: ${this.reason} — ` +
      (this.reason.includes("does not support")
        ? "the server has no TLS: use a nats:// URL and unset MSGSYS_NATS_TLS_*, or enable tls in nats-server.conf"
        : "check MSGSYS_NATS_TLS_CA (the CA that signed the server certificate) and MSGSYS_NATS_TLS_CERT/KEY")
  }
}

/** The server runs without JetStream. @category errors @since 0.1.0 */
export class JetStreamNotEnabled extends Data.TaggedError("JetStreamNotEnabled")<{
  readonly server: string
}> {
  override get message() {
    return `JetStream is not enabled on ${this.server}: start nats-server with -js ` +
      "(or `jetstream {}` in its config), or enable JetStream for this account"
  }
}

/** Connecting failed in a way the other tags do not cover. @category errors @since 0.1.0 */
export type NatsConnectError = NatsUnreachable | NatsAuthorizationFailed | NatsTlsFailed | JetStreamNotEnabled

/** A broker call failed after the connection was up. @category errors @since 0.1.0 */
export class BrokerError extends Data.TaggedError("BrokerError")<{
  readonly operation: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message() {
    return `${this.operation} failed: ${this.reason}`
  }
}

/** Wraps whatever a nats.js call threw as the failure of `operation`. @category constructors @since 0.1.0 */
export const brokerFailure = (operation: string) => (cause: unknown): BrokerError =>
  new BrokerError({ operation, reason: (cause as Error)?.message ?? String(cause), cause })

/** JetStream's "system temporarily unavailable": a cluster choosing its meta leader, or a node catching up. */
const temporarilyUnavailable = 10008

/**
 * True for a request that may well succeed if asked again soon: nobody answered (on a cluster, a
 * stream between leaders or a node restarting), the answer timed out, or JetStream said it is
 * temporarily unavailable. Not for a refusal, a permission, or a closed connection.
 * @category errors @since 0.1.0
 */
export const isTransient = (cause: unknown): boolean => {
  // nats.js wraps them (a JetStream publish nobody answered is "jetstream is not enabled" caused by
  // a no-responders RequestError), and so do msgsys's own errors: look down the chain of causes
  let e: unknown = cause
  for (let depth = 0; depth < 4 && e !== undefined && e !== null; depth++) {
    if (e instanceof NoRespondersError || e instanceof TimeoutError) return true
    if (e instanceof RequestError && e.isNoResponders()) return true
    if (e instanceof JetStreamApiError && e.code === temporarilyUnavailable) return true
    e = (e as { readonly cause?: unknown }).cause
  }
  return false
}

// How long a transient failure is asked again: 100 ms doubling up to 2 s a wait, for about twenty
// seconds in all (a cluster gives a stream a new leader in a few seconds, longer when loaded).
const transientRetry = Schedule.exponential("100 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(2)))),
  Schedule.upTo({ times: 14 })
)

/**
 * `self`, asked again on `transientRetry` while it fails with a transient failure anywhere in its
 * chain of causes (a BrokerError, an IdempotencyError or a raw nats.js error alike).
 * @category errors @since 0.1.0
 */
export const retryTransient = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  self.pipe(Effect.retry({ schedule: transientRetry, while: isTransient }))
