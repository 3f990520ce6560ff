/**
 * A msgsys client process for the latency section: enqueues `total` tasks at `rate` per second on
 * a fixed schedule (open loop), each carrying the time it was enqueued. Messages: ready, done.
 */
import * as Io from "../support/childIo.ts"
import { now } from "../support/clock.ts"
import { paced } from "../support/pace.ts"
import * as Runtime from "../support/runtime.ts"

interface Settings {
  readonly url: string
  readonly dir: string
  readonly prefix: string
  readonly actor: string
  readonly rate: number
  readonly total: number
}

Io.run(async () => {
  const s = Io.settings<Settings>()
  const runtime = await Runtime.make({
    url: s.url,
    dir: s.dir,
    prefix: s.prefix,
    actor: s.actor,
    concurrency: 1,
    audit: true,
    results: true
  })
  Io.emit({ type: "ready" })
  const result = await paced(s.rate, s.total, (n) => runtime.run(runtime.client.enqueue(runtime.task, { n, sentAt: now() })))
  Io.emit({ type: "done", ...result })
  await runtime.close()
  process.exit(0)
})
