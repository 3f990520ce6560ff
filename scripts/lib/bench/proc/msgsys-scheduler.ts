/**
 * A msgsys scheduler replica for the schedule section, through the public API: the replica layer
 * with its client and connection, on the bench's server and the section's stream prefix.
 * Messages: ready. Commands: stop.
 */
import { Effect, Exit, Layer, Scope } from "effect"
import { Client, MsgsysConfig } from "msgsys"
import * as Main from "../../../../src/app/Main.ts"
import * as Scheduler from "../../../../src/scheduler/Scheduler.ts"
import * as Services from "../../../../src/app/Services.ts"
import * as Io from "../support/childIo.ts"
import * as Logging from "../../../../src/trace/Logging.ts"

interface Settings {
  readonly url: string
  readonly dir: string
  readonly prefix: string
}

Io.run(async () => {
  const s = Io.settings<Settings>()
  const settings: MsgsysConfig.MsgsysSettings = {
    ...MsgsysConfig.defaults,
    streamPrefix: s.prefix,
    dataDir: s.dir,
    httpPort: 0,
    logLevel: "Warn",
    nats: { ...MsgsysConfig.defaults.nats, servers: [s.url], connectAttempts: 1 }
  }
  const replica = Scheduler.layer().pipe(
    Layer.provideMerge(Client.layer),
    Layer.provideMerge(Services.broker),
    Layer.provideMerge(Layer.succeed(MsgsysConfig.MsgsysConfig, settings))
  )
  const logging = Logging.logging({ logLevel: "Warn", logFormat: "pretty" })
  const scope = await Effect.runPromise(Scope.make())
  await Effect.runPromise(Layer.buildWithScope(replica, scope).pipe(Effect.provide(logging)))
  Io.on("stop", () => {
    Effect.runPromise(Scope.close(scope, Exit.void)).then(() => process.exit(0), (e: unknown) => {
      console.error(e)
      process.exit(1)
    })
  })
  Io.emit({ type: "ready" })
})
