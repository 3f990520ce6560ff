/**
 * Loads the app a command runs: the module `--entry` names (its default export, or an export
 * named `app`); without `--entry`, the app compiled into this executable, if any, else
 * `actors/index.ts`.
 * @since 0.1.0
 */
import { Context, Data, Effect, Option } from "effect"
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import * as App from "../app/App.ts"

/** The entry module is missing or exports no app. @category errors @since 0.1.0 */
export class EntryInvalid extends Data.TaggedError("EntryInvalid")<{
  readonly path: string
  readonly reason: string
  /** What to do instead; default: what an entry module must export. */
  readonly fix?: string
  readonly cause?: unknown
}> {
  override get message() {
    return `cannot run ${this.path}: ${this.reason} — ` +
      (this.fix ?? "the entry module must `export default App.make({ actors, handlers })`")
  }
}

/** The entry module run when none is given and none is built in. @category constants @since 0.1.0 */
export const defaultEntry = "actors/index.ts"

/**
 * The app built into a compiled `msgsys` (see `scripts/build`): a binary has no source tree to
 * import `actors/index.ts` from, so its build entry hands the app over here.
 * @category references @since 0.1.0
 */
export const Bundled = Context.Reference<App.App | undefined>("msgsys/cli/Entry/Bundled", {
  defaultValue: () => undefined
})

/** Imports an entry module by path. @category loading @since 0.1.0 */
export const importApp = (path: string): Effect.Effect<App.App, EntryInvalid> =>
  Effect.gen(function*() {
    const full = resolve(path)
    if (!existsSync(full)) return yield* new EntryInvalid({ path, reason: "the file does not exist" })
    const mod = yield* Effect.tryPromise({
      try: () => import(full) as Promise<Record<string, unknown>>,
      catch: (e) => new EntryInvalid({ path, reason: `it failed to load: ${(e as Error)?.message ?? String(e)}`, cause: e })
    })
    const app = [mod.default, mod.app].find(App.isApp)
    if (!app) return yield* new EntryInvalid({ path, reason: "it exports no app" })
    return app
  })

/**
 * The app of `--entry` when given; else the bundled app, else `actors/index.ts`.
 * @category loading @since 0.1.0
 */
export const load = (entry: Option.Option<string>): Effect.Effect<App.App, EntryInvalid> =>
  Effect.gen(function*() {
    const bundled = yield* Bundled
    if (Option.isNone(entry)) return bundled ?? (yield* importApp(defaultEntry))
    if (bundled === undefined) return yield* importApp(entry.value)
    // a compiled msgsys carries its own copy of msgsys and effect: a source module finds neither
    return yield* importApp(entry.value).pipe(Effect.mapError((e) =>
      e.reason.startsWith("it failed to load")
        ? new EntryInvalid({
          ...e,
          fix: "this msgsys is compiled with its actors built in and cannot load source modules: " +
            "compile your entry module into a worker binary of its own (README, Building a binary)"
        })
        : e
    ))
  })
