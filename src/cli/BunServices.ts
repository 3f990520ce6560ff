/**
 * The platform services `effect/cli` runs on, for Bun, from effect core and a few lines of Bun:
 * without `@effect/platform-node`, whose peer dependencies pull in redis, @redis/* and undici.
 * Stdio gives the arguments and the output streams, Path is core's, and Terminal serves the
 * `--wizard` prompts. msgsys's commands read no file and spawn no process through Effect, so
 * FileSystem and ChildProcessSpawner refuse.
 * @since 0.1.0
 */
import { type Cause, Effect, FileSystem, Layer, Option, Path, PlatformError, Queue, Sink, Stdio, Stream, Terminal } from "effect"
import { ChildProcessSpawner } from "effect/process"
import * as readline from "node:readline"

const write = (to: NodeJS.WriteStream) => () =>
  Sink.forEach((chunk: string | Uint8Array) => Effect.sync(() => void to.write(chunk)))

const stdio = Stdio.make({
  args: Effect.sync(() => process.argv.slice(2)),
  stdinIsTerminal: Effect.sync(() => process.stdin.isTTY === true),
  stdoutIsTerminal: Effect.sync(() => process.stdout.isTTY === true),
  stderrIsTerminal: Effect.sync(() => process.stderr.isTTY === true),
  stdout: write(process.stdout),
  stderr: write(process.stderr),
  stdin: Stream.fromReadableStream({
    evaluate: () => Bun.stdin.stream(),
    onError: (cause) => PlatformError.systemError({ _tag: "Unknown", module: "Stdio", method: "stdin", cause })
  })
})

/** Escape, Ctrl+C and Ctrl+D end the input, as in a shell. */
const quits = (key: Terminal.Key) => key.name === "escape" || (key.ctrl && (key.name === "c" || key.name === "d"))

// stdin ends once per process, and Bun never sets `readableEnded`: remember it for later readers
let inputEnded = false

const keypresses = Effect.gen(function*() {
  const queue = yield* Queue.unbounded<Terminal.UserInput, Cause.Done>()
  const stdin = process.stdin
  if (inputEnded) {
    Queue.endUnsafe(queue)
    return queue as Queue.Dequeue<Terminal.UserInput, Cause.Done>
  }
  const rl = readline.createInterface({ input: stdin, escapeCodeTimeout: 50 })
  readline.emitKeypressEvents(stdin, rl)
  const raw = stdin.isTTY === true
  if (raw) stdin.setRawMode(true)
  const onKey = (input: string | undefined, k: readline.Key = {}) => {
    const key = { name: k.name ?? "", ctrl: k.ctrl === true, meta: k.meta === true, shift: k.shift === true }
    Queue.offerUnsafe(queue, { input: Option.fromUndefinedOr(input), key })
    if (quits(key)) Queue.endUnsafe(queue)
  }
  const onEnd = () => {
    inputEnded = true
    Queue.endUnsafe(queue)
  }
  stdin.on("keypress", onKey)
  stdin.once("end", onEnd)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      stdin.off("keypress", onKey)
      stdin.off("end", onEnd)
      if (raw) stdin.setRawMode(false)
      rl.close()
    })
  )
  return queue as Queue.Dequeue<Terminal.UserInput, Cause.Done>
})

const terminal = Terminal.make({
  columns: Effect.sync(() => process.stdout.columns ?? 0),
  rows: Effect.sync(() => process.stdout.rows ?? 0),
  // the size now; prompts redraw on every key anyway
  size: Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Terminal.Size, Cause.Done>()
    Queue.offerUnsafe(queue, { columns: process.stdout.columns ?? 0, rows: process.stdout.rows ?? 0 })
    return queue as Queue.Dequeue<Terminal.Size, Cause.Done>
  }),
  readInput: keypresses,
  readLine: Effect.tryPromise({
    try: () =>
      new Promise<string>((resolve, reject) => {
        const rl = readline.createInterface({ input: process.stdin })
        rl.once("line", (line) => {
          resolve(line)
          rl.close()
        })
        rl.once("close", () => reject(new Error("end of input")))
      }),
    catch: () => new Terminal.QuitError({})
  }),
  display: (text) => Effect.sync(() => void process.stdout.write(text))
})

const refuse = (what: string) => `msgsys's commands do not ${what} through Effect`

/**
 * Stdio, Path, Terminal, FileSystem and ChildProcessSpawner for `Command.run` under Bun.
 * @category layers @since 0.1.0
 */
export const layer: Layer.Layer<
  Stdio.Stdio | Path.Path | Terminal.Terminal | FileSystem.FileSystem | ChildProcessSpawner.ChildProcessSpawner
> = Layer.mergeAll(
  Layer.succeed(Stdio.Stdio, stdio),
  Path.layer,
  Layer.succeed(Terminal.Terminal, terminal),
  FileSystem.layerNoop({}),
  Layer.succeed(ChildProcessSpawner.ChildProcessSpawner, ChildProcessSpawner.make(() => Effect.die(refuse("spawn processes"))))
)
