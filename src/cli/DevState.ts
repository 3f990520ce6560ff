/**
 * Where `msgsys dev` left its embedded server, so other commands in the same project
 * (`msgsys enqueue`, `msgsys status`) find it when `MSGSYS_NATS_URL` is unset.
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as MsgsysConfig from "../config/MsgsysConfig.ts"

/** @category models @since 0.1.0 */
export interface DevState {
  readonly url: string
  readonly pid: number
  readonly startedAt: string
}

/** @category paths @since 0.1.0 */
export const path = (dataDir: string) => join(dataDir, "dev.json")

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The running dev server of this project, if any. @category reading @since 0.1.0 */
export const read = (dataDir: string): DevState | undefined => {
  const file = path(dataDir)
  if (!existsSync(file)) return undefined
  try {
    const state = JSON.parse(readFileSync(file, "utf8")) as DevState
    return alive(state.pid) ? state : undefined
  } catch {
    return undefined
  }
}

/**
 * Records the dev server for the life of the scope. Written aside and renamed into place, so a
 * command reading it at that moment finds the whole file or none, never half of it.
 * @category writing @since 0.1.0
 */
export const record = (dataDir: string, state: DevState) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const aside = `${path(dataDir)}.${process.pid}.tmp`
      writeFileSync(aside, JSON.stringify(state, null, 2))
      renameSync(aside, path(dataDir))
    }),
    () => Effect.sync(() => rmSync(path(dataDir), { force: true }))
  )

/**
 * The config from the environment; with no `MSGSYS_NATS_URL`, the server of a running
 * `msgsys dev` in this project.
 * @category layers @since 0.1.0
 */
export const configLayer: Layer.Layer<MsgsysConfig.MsgsysConfig, MsgsysConfig.ConfigInvalid> = Layer.effect(
  MsgsysConfig.MsgsysConfig,
  Effect.gen(function*() {
    const settings = yield* MsgsysConfig.load(process.env)
    if (settings.nats.servers.length > 0) return settings
    const dev = read(settings.dataDir)
    return dev ? { ...settings, nats: { ...settings.nats, servers: [dev.url] } } : settings
  })
)
