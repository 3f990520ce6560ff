/**
 * Which stream stores a subject, if any: the check that a subject names a task some worker has
 * declared.
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { Effect, Option } from "effect"
import { brokerFailure } from "../../broker/BrokerError.ts"
import type { Nats } from "../../broker/Nats.ts"

const streamNotFound = 10059

export const streamOf = (nats: Nats["Service"], subject: string) =>
  Effect.tryPromise({ try: () => nats.manager.streams.find(subject), catch: (e) => e }).pipe(
    Effect.map(Option.some),
    Effect.catch((e) =>
      // nats.js answers "no stream matches subject" with a stream-not-found API error of its own
      (e instanceof JetStreamApiError && (e.code === streamNotFound || e.status === 404)) ||
        (e instanceof Error && /no stream matches subject/i.test(e.message))
        ? Effect.succeed(Option.none<string>())
        : Effect.fail(brokerFailure(`look up the stream of ${subject}`)(e))
    )
  )
