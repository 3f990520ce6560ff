import { afterEach, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import type { Command } from "effect/cli"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import * as EmbeddedNats from "../../../src/broker/EmbeddedNats.ts"
import { Nats } from "../../../src/broker/Nats.ts"
import * as Subjects from "../../../src/broker/Subjects.ts"
import * as Topology from "../../../src/broker/Topology.ts"
import { MsgsysConfig } from "../../../src/config/MsgsysConfig.ts"
import type * as DeadLetter from "../../../src/dlq/DeadLetter.ts"
import * as DeadLetters from "../../../src/dlq/DeadLetters.ts"
import * as ActorTopology from "../../../src/actor/ActorTopology.ts"
import * as Cli from "../../../src/cli/main.ts"
import { natsHarness, tempDir } from "../../support/harness.ts"
import { killAll, spawn, waitFor } from "../chaos/support.ts"

const h = natsHarness()
afterEach(killAll)

/** The caller's environment without MSGSYS_* variables and colour switches, so nothing leaks in. */
const baseEnv = () =>
  Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("MSGSYS_") && k !== "NO_COLOR" && k !== "FORCE_COLOR")
  ) as Record<string, string>

/** Runs the CLI with a clean MSGSYS_* environment plus `env`. */
const msgsys = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const base = baseEnv()
  const proc = Bun.spawn(["bun", "src/cli/main.ts", ...args], {
    env: { ...base, MSGSYS_DATA_DIR: tempDir(), ...env },
    stdout: "pipe",
    stderr: "pipe"
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited
  ])
  return { stdout, stderr, code }
}

const metadata = (i: number): DeadLetter.Metadata => ({
  taskId: `task-${i}`,
  subject: "etl.extract",
  actor: "etl",
  tenant: i % 2 === 0 ? "acme" : "globex",
  reason: "poison",
  error: { tag: "PayloadDecodeError", message: `cannot decode #${i}` },
  attempts: 1,
  history: [],
  deadLetteredAt: 1_000 + i
})
/** Dead letters made in this process for the CLI to read: the given bodies, in order; their sequences. */
const letters = (prefix: string, bodies: ReadonlyArray<Uint8Array>) =>
  h.run(Effect.gen(function*() {
    const config = yield* MsgsysConfig
    const nats = yield* Nats
    const names = Subjects.make(prefix)
    yield* Topology.apply(ActorTopology.shared(names, config))
    return yield* Effect.forEach(bodies, (body, i) =>
      Effect.map(DeadLetters.move(nats, names, {
        stream: `${prefix}_TASKS_etl`,
        sequence: i + 1,
        storedSubject: "etl.extract",
        headers: { "Msgsys-Id": `task-${i}` },
        body,
        storedAt: 1
      }, metadata(i)), (m) => m.sequence))
  }), { streamPrefix: prefix })

describe("msgsys command", () => {
  test("--help lists the commands", async () => {
    const { stdout, code } = await msgsys(["--help"])
    expect(code).toBe(0)
    for (const command of ["dev", "worker", "scheduler", "status", "topology", "enqueue", "result", "cancel", "pause", "resume", "schedule", "events", "pipeline", "dlq", "audit"]) {
      expect(stdout).toMatch(new RegExp(`^\\s+${command}\\s`, "m"))
    }
  }, 30_000)

  test("the built-in flags run on msgsys's own Bun services: --version, --completions, --wizard at end of input", async () => {
    const version = await msgsys(["--version"])
    expect([version.code, version.stdout.trim()]).toEqual([0, "msgsys v0.1.0"])
    const completions = await msgsys(["--completions", "bash"])
    expect(completions.code).toBe(0)
    expect(completions.stdout).toContain("msgsys")
    // stdin is closed: the first prompt ends, and the wizard says so
    const wizard = await msgsys(["--wizard"])
    expect(wizard.code).toBe(0)
    expect(wizard.stdout).toContain("Wizard cancelled")
  }, 30_000)

  test("an unknown command, with --help or without, is named with the commands there are, exit 2 (usage)", async () => {
    const cases = [[["frobnicate", "--help"], "frobnicate"], [["frobnicate"], "frobnicate"], [["--log-level", "debug", "frob", "-h"], "frob"]] as const
    for (const [args, name] of cases) {
      const { stdout, stderr, code } = await msgsys(args)
      expect({ args, code }).toEqual({ args, code: 2 })
      expect(stdout).toBe("")
      expect(stderr).toContain(`unknown command "${name}" for msgsys: use one of dev, worker`)
    }
    const nested = await msgsys(["--verbose", "dlq", "frob", "--help"])
    expect(nested.code).toBe(2)
    expect(nested.stderr).toContain('unknown command "frob" for msgsys dlq: use one of list, show, replay, purge, exhausted')
    // known commands still show their help and exit 0
    for (const args of [["dlq", "--help"], ["--log-level", "debug", "--help"], ["enqueue", "--help"]]) {
      const { code, stdout } = await msgsys(args)
      expect({ args, code }).toEqual({ args, code: 0 })
      expect(stdout).toContain("USAGE")
    }
  }, 60_000)

  test("status --broker connects and prints the server version, the streams and the consumers", async () => {
    // declare an app's topology first, so there is something to list
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: "CLITEST" }
    const declared = await msgsys(["topology"], env)
    expect(declared.code).toBe(0)
    expect(declared.stdout).toContain("created   stream CLITEST_TASKS_etl")
    const { stdout, code } = await msgsys(["status", "--broker"], env)
    expect(code).toBe(0)
    expect(stdout).toMatch(/^msgsys CLITEST on nats-server \d+\.\d+\.\d+ at 127\.0\.0\.1:\d+/m)
    expect(stdout).toContain("CLITEST_TASKS_etl")
    expect(stdout).toContain("CLITEST_TASKS_etl/etl-normal")
    // applying again changes nothing
    expect((await msgsys(["topology"], env)).stdout).not.toContain("created")
  }, 30_000)

  test("an unreachable server gives one line naming the address and the fix, exit 1", async () => {
    const port = await Effect.runPromise(EmbeddedNats.freePort)
    const { stderr, code } = await msgsys(["status"], {
      MSGSYS_NATS_URL: `nats://127.0.0.1:${port}`,
      MSGSYS_NATS_RECONNECT_WAIT: "50ms"
    })
    expect(code).toBe(1)
    expect(stderr).toContain(`cannot reach nats://127.0.0.1:${port} after 3 tries`)
    expect(stderr).toContain("MSGSYS_NATS_URL")
  }, 30_000)

  test("bad configuration names every bad variable and what is accepted, exit 1, secrets not shown", async () => {
    const { stderr, code } = await msgsys(["status"], {
      MSGSYS_HTTP_PORT: "70000",
      MSGSYS_ACK_WAIT: "soon",
      MSGSYS_NATS_USER: "svc",
      MSGSYS_NATS_PASSWORD: "hunter2",
      MSGSYS_NATS_TOKEN: "tok-secret"
    })
    expect(code).toBe(1)
    expect(stderr).toContain('MSGSYS_HTTP_PORT="70000"')
    expect(stderr).toContain("0-65535")
    expect(stderr).toContain('MSGSYS_ACK_WAIT="soon"')
    expect(stderr).not.toContain("hunter2")
    expect(stderr).not.toContain("tok-secret")
  }, 30_000)

  test("enqueue with input that is not JSON says so and how to quote it, exit 2", async () => {
    const { stderr, code } = await msgsys(["enqueue", "etl.extract", "{tenant:acme}"], { MSGSYS_NATS_URL: h.server.url })
    expect(code).toBe(2)
    expect(stderr).toContain("not valid JSON")
  }, 30_000)

  test("a task id or subject with wildcards is refused before it reaches the broker, naming the problem", async () => {
    const env = { MSGSYS_NATS_URL: h.server.url }
    // `result '>' --wait` would otherwise subscribe to every task's record, `cancel '>'` write a wildcard key
    for (const args of [["result", ">", "--wait", "2s"], ["result", "*"], ["cancel", ">"]]) {
      const { stderr, code } = await msgsys(args, env)
      expect({ args, code }).toEqual({ args, code: 1 })
      expect(stderr).toContain(`invalid task id ${JSON.stringify(args[1])}`)
      expect(stderr).toContain("no spaces or wildcards")
    }
    const { stdout, stderr, code } = await msgsys(["enqueue", "etl.>", "{}"], env)
    expect(code).toBe(1)
    expect(stdout).toBe("")
    expect(stderr).toContain('invalid task subject "etl.>"')
  }, 60_000)

  test("a worker whose entry module is missing or exports no app names the file and the fix", async () => {
    const missing = await msgsys(["worker", "--entry", "nope/missing.ts"], { MSGSYS_NATS_URL: h.server.url })
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("cannot run nope/missing.ts: the file does not exist")
    const noApp = await msgsys(["worker", "--entry", "src/broker/Subjects.ts"], { MSGSYS_NATS_URL: h.server.url })
    expect(noApp.code).toBe(1)
    expect(noApp.stderr).toContain("it exports no app")
    expect(noApp.stderr).toContain("export default App.make")
  }, 30_000)

  test("a misspelt MSGSYS_* variable is a warning at start naming the closest real one", async () => {
    const worker = await msgsys(["worker", "--actors", "nobody"], { MSGSYS_NATS_URL: h.server.url, MSGSYS_NATS_RECONECT_WAIT: "1s" })
    expect(worker.stderr).toContain("MSGSYS_NATS_RECONECT_WAIT is not a msgsys variable; did you mean MSGSYS_NATS_RECONNECT_WAIT?")
    expect(worker.stderr).toMatch(/WARN/)
  }, 30_000)

  test("a worker whose selection matches no actor lists the actors there are", async () => {
    const none = await msgsys(["worker", "--actors", "nobody"], { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: "CLIPOOL" })
    expect(none.code).toBe(1)
    expect(none.stderr).toContain("no actor matches the selection")
    expect(none.stderr).toContain("actors: etl, reports, webapp, omniq, registrar, welcome, profiles")
  }, 30_000)
})

describe("msgsys events", () => {
  test("publish declares the domain's stream, prints the id and sequence, and says when the id is a duplicate", async () => {
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: "CLIEVENTS" }
    const first = await msgsys(["events", "publish", "shop.order.placed", '{"orderId":"o-1"}', "--id", "o-1", "--tenant", "acme"], env)
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: "" })
    expect(first.stdout.trim()).toBe("published event o-1 as CLIEVENTS_EVENTS_shop #1")
    const again = await msgsys(["events", "publish", "shop.order.placed", '{"orderId":"o-1"}', "--id", "o-1", "--json"], env)
    expect(JSON.parse(again.stdout)).toEqual({
      id: "o-1", sequence: 1, duplicate: true, subject: "shop.order.placed", stream: "CLIEVENTS_EVENTS_shop"
    })
    const text = await msgsys(["events", "publish", "shop.order.placed", '{"orderId":"o-1"}', "--id", "o-1"], env)
    expect(text.stdout).toContain("duplicate: event o-1 was already stored as CLIEVENTS_EVENTS_shop #1")
    const listed = await msgsys(["events", "groups"], env)
    expect(listed.stdout).toContain("CLIEVENTS_EVENTS_shop  domain shop  1 events held  sequences 1..1\n  no groups")
    // bad input is refused before anything is sent
    const bad = await msgsys(["events", "publish", "shop", "{}"], env)
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('invalid event subject "shop"')
    const notJson = await msgsys(["events", "publish", "shop.order.placed", "{oops"], env)
    expect(notJson.stderr).toContain("the event payload is not valid JSON")
    const noStart = await msgsys(["events", "replay", "billing"], env)
    expect(noStart.code).toBe(2) // the command line lacks --since or --seq
    expect(noStart.stderr).toContain("say where the replay starts: --since 1h")
    const unknown = await msgsys(["events", "replay", "billing", "--seq", "1"], env)
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain("no event group billing on this broker (groups: none)")
  }, 60_000)
})

describe("msgsys dlq", () => {
  test("list on a server where nothing was ever dead-lettered prints an empty list, exit 0", async () => {
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: "CLIDLQEMPTY" }
    // no dead-letter stream at all
    const missing = await msgsys(["dlq", "list"], env)
    expect(missing.stderr).toBe("")
    expect(missing.code).toBe(0)
    expect(missing.stdout.trim()).toBe("no dead letters")
    // the stream exists and never held a letter (reading #0 used to fail with "bad request")
    await letters("CLIDLQEMPTY", [])
    const empty = await msgsys(["dlq", "list"], env)
    expect(empty.code).toBe(0)
    expect(empty.stdout.trim()).toBe("no dead letters")
    const json = await msgsys(["dlq", "list", "--json"], env)
    expect(JSON.parse(json.stdout)).toEqual({ letters: [], unreadable: [], more: 0, next: null })
  }, 30_000)

  test("list pages, says how many more there are and the command that shows them; show prints metadata and body", async () => {
    const prefix = "CLIDLQPAGE"
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: prefix }
    const jsonBody = new TextEncoder().encode(JSON.stringify({ account: "a-1", amount: 3 }))
    const binary = Uint8Array.from({ length: 5_000 }, (_, i) => i % 251)
    const seqs = await letters(prefix, [jsonBody, binary, jsonBody, jsonBody, jsonBody])

    const first = await msgsys(["dlq", "list", "--limit", "2"], env)
    expect(first.code).toBe(0)
    const lines = first.stdout.trim().split("\n")
    expect(lines).toHaveLength(3)
    expect(lines[0]).toStartWith(`#${seqs[0]}  `)
    expect(lines[0]).toContain("etl.extract  tenant=acme  task=task-0  poison after 1 attempt(s): cannot decode #0  [body 28 B]")
    expect(lines[1]).toContain("[body 4.9 KB]")
    expect(lines[2]).toBe(`3 more: msgsys dlq list --after ${seqs[1]} --limit 2`)
    // following the command shows the rest, each letter once
    const rest = await msgsys(["dlq", "list", "--after", String(seqs[1]), "--limit", "2"], env)
    expect(rest.stdout.trim().split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^#${seqs[2]}  `)),
      expect.stringMatching(new RegExp(`^#${seqs[3]}  `)),
      `1 more: msgsys dlq list --after ${seqs[3]} --limit 2`
    ])
    const last = await msgsys(["dlq", "list", "--after", String(seqs[3]), "--limit", "2"], env)
    expect(last.stdout.trim().split("\n")).toEqual([expect.stringMatching(new RegExp(`^#${seqs[4]}  `))])
    // filters
    const globex = await msgsys(["dlq", "list", "--tenant", "globex", "--json"], env)
    expect(JSON.parse(globex.stdout).letters.map((l: { sequence: number }) => l.sequence)).toEqual([seqs[1], seqs[3]])
    const bad = await msgsys(["dlq", "list", "--tenant", "a.b"], env)
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('invalid tenant "a.b"')

    const shownText = await msgsys(["dlq", "show", String(seqs[0])], env)
    expect(shownText.code).toBe(0)
    expect(shownText.stdout).toContain(`dead letter #${seqs[0]}: task task-0  etl.extract  actor etl  tenant acme`)
    expect(shownText.stdout).toContain("error      PayloadDecodeError: cannot decode #0")
    expect(shownText.stdout).toContain('body       28 B: {"account":"a-1","amount":3}')
    const shownJson = await msgsys(["dlq", "show", String(seqs[0]), "--json"], env)
    expect(shownJson.code).toBe(0)
    const parsed = JSON.parse(shownJson.stdout)
    expect(parsed).toMatchObject({
      sequence: seqs[0],
      taskId: "task-0",
      reason: "poison",
      error: { tag: "PayloadDecodeError", message: "cannot decode #0" },
      headers: { "Msgsys-Id": "task-0" },
      bodySize: jsonBody.length,
      body: { account: "a-1", amount: 3 }
    })
    const shownBinary = JSON.parse((await msgsys(["dlq", "show", String(seqs[1]), "--json"], env)).stdout)
    expect(shownBinary.bodySize).toBe(5_000)
    expect(shownBinary.body).toBeUndefined()
    expect(shownBinary.bodyPreview.length).toBeLessThan(300)
    const none = await msgsys(["dlq", "show", "0"], env)
    expect(none.code).toBe(1)
    expect(none.stderr).toContain("no dead letter #0")
  }, 60_000)
})

/** Every command path under `command`, the root's included (`[]`), e.g. `["dlq", "list"]`. */
const commandPaths = (command: Command.Command.Any, path: ReadonlyArray<string> = []): Array<ReadonlyArray<string>> => [
  path,
  ...command.subcommands.flatMap((g) => g.commands).flatMap((sub) => commandPaths(sub, [...path, sub.name]))
]

/** Runs `cmd` on a pseudo-terminal (util-linux `script`): what a person at a terminal sees. */
const onTerminal = async (cmd: string, env: Record<string, string>) => {
  const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { env: { ...baseEnv(), ...env }, stdout: "pipe", stderr: "pipe" })
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
  return { out, code }
}
const hasScript = Bun.which("script") !== null

describe("msgsys help, output and exit codes", () => {
  test("every command's --help shows examples of that command, exit 0", async () => {
    const paths = commandPaths(Cli.msgsys)
    expect(paths.length).toBeGreaterThanOrEqual(30)
    for (let i = 0; i < paths.length; i += 4) {
      await Promise.all(paths.slice(i, i + 4).map(async (path) => {
        const { stdout, code } = await msgsys([...path, "--help"])
        const examples = stdout.includes("EXAMPLES") ? stdout.slice(stdout.indexOf("EXAMPLES")) : ""
        expect({ path, code, examples: examples.includes(["msgsys", ...path].join(" ")) }).toEqual({ path, code: 0, examples: true })
      }))
    }
  }, 120_000)

  test("exit codes: 0 done, 1 failed, 2 a wrong command line (nothing on stdout; the problem and the usage on stderr)", async () => {
    expect((await msgsys(["--version"])).code).toBe(0)
    const port = await Effect.runPromise(EmbeddedNats.freePort)
    const failed = await msgsys(["result", "01JD3Q5Z8X2M4W7K9R1T6Y0B3C"], { MSGSYS_NATS_URL: `nats://127.0.0.1:${port}`, MSGSYS_NATS_RECONNECT_WAIT: "50ms" })
    expect(failed.code).toBe(1)

    const parseErrors = [
      [["result"], "Missing required argument: task-id", "usage: msgsys result [flags] <task-id>"],
      [["dlq", "show", "abc"], 'Invalid value for argument <sequence>: "abc"', "usage: msgsys dlq show"],
      [["enqueue", "etl.extract", "{}", "--bogus"], "Unrecognized flag: --bogus", "usage: msgsys enqueue"],
      [["audit", "prune"], "Missing required flag: --older-than", "usage: msgsys audit prune"]
    ] as const
    for (const [args, problem, usage] of parseErrors) {
      const { stdout, stderr, code } = await msgsys(args)
      expect({ args, code, stdout }).toEqual({ args, code: 2, stdout: "" })
      expect(stderr).toContain(`msgsys: ${problem}`)
      expect(stderr).toContain(usage)
      expect(stderr).toContain(`\`msgsys ${args[0] === "dlq" || args[0] === "audit" ? `${args[0]} ${args[1]}` : args[0]} --help\``)
      expect(stderr.trim().split("\n").length).toBeLessThanOrEqual(2)
    }
    // arguments that do not go together, or a malformed value: told before connecting (nobody listens on the port)
    const unreachable = { MSGSYS_NATS_URL: `nats://127.0.0.1:${port}` }
    const wrongValues = [
      [["dlq", "replay"], "no letter given"],
      [["dlq", "replay", "3", "--all"], "a letter number and --all were both given"],
      [["enqueue", "etl.extract", "{tenant:acme}"], "not valid JSON"],
      [["result", "01JD3Q5Z8X2M4W7K9R1T6Y0B3C", "--wait", "soon"], '--wait "soon" is not a duration']
    ] as const
    for (const [args, problem] of wrongValues) {
      const { stdout, stderr, code } = await msgsys(args, unreachable)
      expect({ args, code, stdout }).toEqual({ args, code: 2, stdout: "" })
      expect(stderr).toContain(problem)
    }
    // a group without a subcommand: its help, on stderr
    for (const args of [[], ["dlq"]]) {
      const { stdout, stderr, code } = await msgsys(args)
      expect({ args, code, stdout }).toEqual({ args, code: 2, stdout: "" })
      expect(stderr).toContain("SUBCOMMANDS")
    }
  }, 60_000)

  test("a failure is one line without a stack trace; --verbose prints every error with its stack and cause", async () => {
    const dir = tempDir()
    const entry = join(dir, "broken.ts")
    writeFileSync(entry, 'throw new Error("kaput")\n')
    const env = { MSGSYS_NATS_URL: h.server.url }
    const plain = await msgsys(["worker", "--entry", entry], env)
    expect(plain.code).toBe(1)
    expect(plain.stderr.trim().split("\n")).toEqual([
      `msgsys: cannot run ${entry}: it failed to load: kaput — the entry module must \`export default App.make({ actors, handlers })\``
    ])
    const verbose = await msgsys(["--verbose", "worker", "--entry", entry], env)
    expect(verbose.code).toBe(1)
    expect(verbose.stderr).toContain("msgsys: EntryInvalid: cannot run")
    expect(verbose.stderr).toMatch(/^\s+at .*Entry\.ts:\d+/m)
    expect(verbose.stderr).toContain("[cause]: Error: kaput")
    expect(verbose.stderr).toMatch(/^\s+at .*broken\.ts:1/m)
    // the flag is accepted after the command too
    expect((await msgsys(["worker", "--entry", entry, "--verbose"], env)).stderr).toContain("[cause]: Error: kaput")
  }, 30_000)

  test("--json prints what a parser reads: topology, enqueue, result, dlq list/show, audit stats/show/tail", async () => {
    const dataDir = tempDir()
    // no DLQ worker: it would take the dead letter below away to the exhausted table at once
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: "CLITEST", MSGSYS_DATA_DIR: dataDir, MSGSYS_DLQ_WORKER: "off" }
    const json = async (args: ReadonlyArray<string>, code = 0) => {
      const r = await msgsys(args, env)
      expect({ args, code: r.code, stderr: r.code === code ? "" : r.stderr }).toEqual({ args, code, stderr: "" })
      return JSON.parse(r.stdout)
    }
    const changes = await json(["topology", "--json"])
    expect(changes).toContainEqual({ resource: "stream CLITEST_TASKS_etl", action: expect.stringMatching(/^(created|unchanged)$/) })

    const worker = spawn("worker", ["bun", "src/cli/main.ts", "worker"], { ...baseEnv(), ...env, MSGSYS_HTTP_PORT: "0" })
    await waitFor("the worker to run", () => /worker \S+ running/.test(worker.stderr()), 30_000)

    const mail = '{"to":"ada@example.com","subject":"hello","text":"from the CLI","messageId":"cli-json-1"}'
    const enqueued = await json(["enqueue", "webapp.email.send", mail, "--json"])
    expect(enqueued).toEqual({ id: expect.any(String), subject: "webapp.email.send", duplicate: false })
    const record = await json(["result", enqueued.id, "--wait", "20s", "--json"])
    expect(record).toMatchObject({ id: enqueued.id, status: "succeeded", output: { messageId: "cli-json-1", alreadySent: false } })
    const text = await msgsys(["result", enqueued.id], env)
    expect(text.stdout).toContain(`${enqueued.id}  webapp.email.send  succeeded  attempt 1`)
    expect(text.stdout).toContain('"messageId":"cli-json-1"')

    // a task that ends dead: its record, and exit 1
    const missing = '{"image":"no-such-upload.png","width":64}'
    const dead = await json(["enqueue", "webapp.image.thumbnail", missing, "--wait", "--json"], 1)
    expect(dead).toMatchObject({ status: "dead", error: { tag: "NotAnImage" } })
    const page = await json(["dlq", "list", "--json"])
    const letter = page.letters.find((l: { taskId: string }) => l.taskId === dead.id)
    expect(letter).toMatchObject({ subject: "webapp.image.thumbnail", reason: "permanent" })
    expect(await json(["dlq", "show", String(letter.sequence), "--json"])).toMatchObject({
      sequence: letter.sequence,
      taskId: dead.id,
      body: { image: "no-such-upload.png", width: 64 }
    })

    // the worker's audit trail, read from the same SQLite file
    const stats = await json(["audit", "stats", "--json"])
    expect(stats.byStatus.reduce((n: number, b: { count: number }) => n + b.count, 0)).toBeGreaterThan(0)
    const steps = await json(["audit", "show", enqueued.id, "--json"])
    expect(steps.map((s: { step: string }) => s.step)).toContain("succeeded")
    const tail = await msgsys(["audit", "tail", "--limit", "50", "--json"], env)
    const rows = tail.stdout.trim().split("\n").map((l) => JSON.parse(l))
    expect(rows).toContainEqual(expect.objectContaining({ messageId: enqueued.id, step: "succeeded" }))

    const replayed = await msgsys(["dlq", "replay", String(letter.sequence)], env)
    expect(replayed.stdout.trim()).toBe(`replayed #${letter.sequence} as task ${dead.id}`)

    worker.proc.kill("SIGTERM")
    expect(await worker.exited).toBe(0)
    // its logs went to a pipe: no colour codes in them
    expect(worker.stderr()).toContain("INFO")
    expect(worker.stderr()).not.toContain("\x1b[")
  }, 90_000)

  test("no colour codes in piped output; colours on a terminal, none there with NO_COLOR", async () => {
    const prefix = "CLICOLOUR"
    const env = { MSGSYS_NATS_URL: h.server.url, MSGSYS_STREAM_PREFIX: prefix }
    await letters(prefix, [new TextEncoder().encode("{}")])
    const piped = await Promise.all([
      msgsys(["--help"], env),
      msgsys(["dlq", "list"], env),
      msgsys(["dlq", "show", "1"], env),
      msgsys(["dlq", "show", "x"], env),
      msgsys(["result", "nope"], env)
    ])
    for (const r of piped) expect(r.stdout + r.stderr).not.toContain("\x1b[")
    expect(piped[1]!.stdout).toContain("poison")

    if (!hasScript) return console.warn("skipped the terminal half: util-linux `script` is not installed")
    const cmd = "bun src/cli/main.ts dlq list"
    const tty = await onTerminal(cmd, env)
    expect(tty.code).toBe(0)
    expect(tty.out).toContain("\x1b[31mpoison\x1b[39m")
    const noColor = await onTerminal(cmd, { ...env, NO_COLOR: "1" })
    expect(noColor.out).toContain("poison")
    expect(noColor.out).not.toContain("\x1b[")
  }, 60_000)
})
