/**
 * Loads the app an entry module exports (default `actors/index.ts`): its default export, or an
 * export named `app`.
 * @since 0.1.0
 */
import { Data, Effect } from "effect"
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import * as App from "../runtime/App.ts"

/** The entry module is missing or exports no app. @category errors @since 0.1.0 */
export class EntryInvalid extends Data.TaggedError("EntryInvalid")<{ readonly path: string; readonly reason: string }> {
  override get message() {
    return `cannot run ${this.path}: ${this.reason} — the entry module must \`export default App.make({ actors, handlers })\``
  }
}

/** @category constants @since 0.1.0 */
export const defaultEntry = "actors/index.ts"

/** @category loading @since 0.1.0 */
export const load = (path: string = defaultEntry): Effect.Effect<App.App, EntryInvalid> =>
  Effect.gen(function*() {
    const full = resolve(path)
    if (!existsSync(full)) return yield* new EntryInvalid({ path, reason: "the file does not exist" })
    const mod = yield* Effect.tryPromise({
      try: () => import(full) as Promise<Record<string, unknown>>,
      catch: (e) => new EntryInvalid({ path, reason: `it failed to load: ${(e as Error)?.message ?? String(e)}` })
    })
    const app = [mod.default, mod.app].find(App.isApp)
    if (!app) return yield* new EntryInvalid({ path, reason: "it exports no app" })
    return app
  })
