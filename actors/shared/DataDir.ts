/**
 * Where the actors keep their files (warehouse, reports, outbox, per-tenant stores): one root
 * directory, `ACTORS_DATA_DIR` (default `actors/` under msgsys's data directory,
 * `MSGSYS_DATA_DIR`, itself `.msgsys` by default). Tests give each run a temp directory.
 */
import { Config, Context, Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"

export class DataDir extends Context.Service<DataDir, {
  readonly root: string
  /** A path under the root; its directory exists. */
  readonly file: (...parts: ReadonlyArray<string>) => string
  /** A directory under the root, created if missing. */
  readonly dir: (...parts: ReadonlyArray<string>) => string
}>()("actors/DataDir") {}

/** The data directory at `root`. */
export const layer = (root: string): Layer.Layer<DataDir> =>
  Layer.sync(DataDir, () => {
    const abs = resolve(root)
    mkdirSync(abs, { recursive: true })
    const dir = (...parts: ReadonlyArray<string>) => {
      const path = join(abs, ...parts)
      mkdirSync(path, { recursive: true })
      return path
    }
    return DataDir.of({
      root: abs,
      dir,
      file: (...parts) => join(dir(...parts.slice(0, -1)), parts[parts.length - 1]!)
    })
  })

/** The variable that names the root. */
export const variable = "ACTORS_DATA_DIR"

/** The data directory from `ACTORS_DATA_DIR` (default `<MSGSYS_DATA_DIR>/actors`, `.msgsys/actors`). */
export const layerFromConfig: Layer.Layer<DataDir> = Layer.unwrap(
  Effect.gen(function*() {
    // an empty variable counts as unset, as msgsys's own do
    const read = (name: string) => Effect.orDie(Config.String(name).pipe(Config.withDefault("")))
    const msgsys = (yield* read("MSGSYS_DATA_DIR")) || ".msgsys"
    return layer((yield* read(variable)) || join(msgsys, "actors"))
  })
)
