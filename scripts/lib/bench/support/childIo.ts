/**
 * The child side of ./children.ts: settings from argv, one JSON message a line on stdout,
 * commands from stdin. Anything else a child prints goes to stderr, so stdout stays parseable.
 */

// console.log in a child (a library's, a logger's) must not corrupt the message stream
console.log = console.error
console.info = console.error

/** This child's settings, as the parent gave them. */
export const settings = <A>(): A => JSON.parse(process.argv[2] ?? "{}") as A

/** Sends one message to the parent. */
export const emit = (message: { readonly type: string; readonly [key: string]: unknown }) => {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

type Command = { readonly type: string; readonly [key: string]: unknown }
const handlers = new Map<string, (c: Command) => void>()

/** Calls `handler` for each command of this type from the parent. */
export const on = (type: string, handler: (command: Command) => void) => {
  handlers.set(type, handler)
}

void (async () => {
  for await (const line of console) {
    if (line.trim().length === 0) continue
    const command = JSON.parse(line) as Command
    handlers.get(command.type)?.(command)
  }
})()

/** Runs `main`; a failure is reported to the parent as `{type: "error"}` and exits 1. */
export const run = (main: () => Promise<void>) => {
  main().catch((e: unknown) => {
    emit({ type: "error", message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) })
    console.error(e)
    process.exit(1)
  })
}
