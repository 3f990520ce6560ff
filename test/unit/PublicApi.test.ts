/**
 * The public surface (issue 16): three entry points, `msgsys` with the namespaces an application
 * uses, and no way to the raw nats.js connection or the raw SQLite handle from any of them.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import pkg from "../../package.json" with { type: "json" }
import { Nats } from "../../src/broker/Nats.ts"
import { Database } from "../../src/sqlite/Database.ts"

const entries = ["msgsys", "msgsys/testing", "msgsys/admin"] as const
const load = (entry: string) => import(entry) as Promise<Record<string, Record<string, unknown>>>

describe("the public API", () => {
  test("package.json exports the three entry points, each an index module under src/", () => {
    expect(pkg.exports).toEqual({
      ".": "./src/index.ts",
      "./testing": "./src/testing/index.ts",
      "./admin": "./src/admin/index.ts"
    })
    for (const path of Object.values(pkg.exports)) expect(Bun.file(join(import.meta.dir, "..", "..", path)).size).toBeGreaterThan(0)
  })

  test("msgsys exports the namespaces an application uses, and no others", async () => {
    expect(Object.keys(await load("msgsys")).sort()).toEqual([
      "Actor", "App", "Client", "Envelope", "Event", "MsgsysConfig", "Pipeline", "Pipelines", "PromiseClient",
      "Retry", "Schedules", "Subscriber", "Task", "TaskError", "TaskRecord"
    ])
    expect(Object.keys(await load("msgsys/testing")).sort()).toEqual(["EmbeddedNats", "MemoryBroker"])
  })

  test("no entry point hands out the NATS connection's service or the SQLite file's", async () => {
    const found: Array<string> = []
    for (const entry of entries) {
      for (const [namespace, module] of Object.entries(await load(entry))) {
        for (const [name, value] of Object.entries(module)) {
          if (value === Nats || value === Database) found.push(`${entry}: ${namespace}.${name}`)
        }
      }
    }
    expect(found).toEqual([])
    // the check sees the services where they are
    expect(Object.values(await import("../../src/broker/Nats.ts"))).toContain(Nats)
  })
})
