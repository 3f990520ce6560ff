/**
 * The compiled executables, run as a user runs them: `./scripts/build` makes `msgsys` (the CLI
 * with the actors of actors/ built in) and a worker binary of an entry module; both run from an
 * empty directory, with no source tree and no node_modules, against a real nats-server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { natsHarness, tempDir } from "../../support/harness.ts"
import { makeUpload } from "../../../actors/webapp/Webapp.ts"
import { cleanEnv, killAll, root, spawn, waitFor } from "../chaos/support.ts"

const h = natsHarness()
afterEach(killAll)

const out = tempDir("msgsys-build-")
const msgsysBin = join(out, "msgsys")
const workerBin = join(out, "worker")
/** Where the binaries run: an empty directory, so nothing can be read from a source tree. */
const cwd = tempDir("msgsys-bin-cwd-")
afterAll(() => {
  rmSync(out, { recursive: true, force: true })
  rmSync(cwd, { recursive: true, force: true })
})

const build = async (args: ReadonlyArray<string>) => {
  const proc = Bun.spawn(["./scripts/build", ...args], { cwd: root, stdout: "pipe", stderr: "pipe" })
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
  if (code !== 0) throw new Error(`./scripts/build ${args.join(" ")} exited ${code}:\n${stderr}`)
}

beforeAll(async () => {
  await build(["--outfile", msgsysBin])
  await build(["--entry", "actors/index.ts", "--outfile", workerBin])
}, 120_000)

const env = () => ({
  ...cleanEnv(),
  MSGSYS_NATS_URL: h.server.url,
  MSGSYS_STREAM_PREFIX: "BIN",
  MSGSYS_DATA_DIR: join(cwd, ".msgsys"),
  // no HTTP port: the default one may be taken on a shared machine
  MSGSYS_HTTP_PORT: "0"
})

/** Runs the compiled msgsys to its end. */
const run = async (args: ReadonlyArray<string>) => {
  const proc = Bun.spawn([msgsysBin, ...args], { cwd, env: env(), stdout: "pipe", stderr: "pipe" })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { stdout, stderr, code }
}

const json = async (args: ReadonlyArray<string>) => {
  const r = await run(args)
  expect({ args, code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ args, code: 0, stderr: "" })
  return JSON.parse(r.stdout)
}

describe("compiled executables", () => {
  test("the compiled msgsys names no path of the machine that built it", () => {
    expect(readFileSync(msgsysBin).includes(Buffer.from(root))).toBe(false)
    expect(readFileSync(workerBin).includes(Buffer.from(root))).toBe(false)
  })

  test("a compiled binary runs no code a bunfig.toml of its working directory preloads", async () => {
    const dir = join(cwd, "with-bunfig")
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, "preload.ts"), 'console.error("PRELOADED")\n')
    writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./preload.ts"]\n')
    // the same directory under `bun run` does preload it: the check can fail
    const underBun = Bun.spawnSync(["bun", "-e", "0"], { cwd: dir, stderr: "pipe" })
    expect(underBun.stderr.toString()).toContain("PRELOADED")
    for (const bin of [msgsysBin, workerBin]) {
      const proc = Bun.spawnSync([bin, ...(bin === msgsysBin ? ["--version"] : [])], {
        cwd: dir,
        env: { ...env(), MSGSYS_NATS_URL: "nats://127.0.0.1:1", MSGSYS_NATS_CONNECT_ATTEMPTS: "1" },
        stdout: "pipe",
        stderr: "pipe"
      })
      expect({ bin, stderr: proc.stderr.toString() }).toEqual({ bin, stderr: expect.not.stringContaining("PRELOADED") })
    }
  }, 30_000)

  test("the compiled msgsys answers --version and --help, and a wrong command line exits 2", async () => {
    expect(await run(["--version"])).toMatchObject({ code: 0, stdout: "msgsys v0.1.0\n" })
    const help = await run(["enqueue", "--help"])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("EXAMPLES")
    const wrong = await run(["dlq", "show", "x"])
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toContain("usage: msgsys dlq show")
  }, 30_000)

  test("the compiled msgsys runs its built-in actors from an empty directory: worker, enqueue, process, result, audit", async () => {
    const worker = spawn("msgsys worker", [msgsysBin, "worker"], env(), { cwd })
    await waitFor("the compiled worker to run", () => /worker \S+ running .*webapp \(fast\)/.test(worker.stderr()), 30_000)

    const mail = '{"to":"ada@example.com","subject":"hello","text":"from the binary","messageId":"bin-1"}'
    const enqueued = await json(["enqueue", "webapp.email.send", mail, "--json"])
    const record = await json(["result", enqueued.id, "--wait", "20s", "--json"])
    expect(record).toMatchObject({ id: enqueued.id, status: "succeeded", output: { messageId: "bin-1", alreadySent: false } })
    expect(readFileSync(join(cwd, ".msgsys", "actors", record.output.file), "utf8")).toContain("from the binary")
    // a PNG thumbnail, made by the image code built into the binary
    await makeUpload(join(cwd, ".msgsys", "actors", "webapp", "uploads"), "bin.png", 200, 100, 1)
    expect(await json(["enqueue", "webapp.image.thumbnail", '{"image":"bin.png","width":50}', "--wait"]))
      .toMatchObject({ width: 50, height: 25 })
    // the audit trail the worker wrote in SQLite, read by the binary too
    const steps = await json(["audit", "show", enqueued.id, "--json"])
    expect(steps.map((s: { step: string }) => s.step)).toContain("succeeded")

    worker.proc.kill("SIGTERM")
    expect(await worker.exited).toBe(0)
  }, 60_000)

  test("a worker binary compiled from an entry module that calls App.runWorker runs its actors, and stops with exit 0", async () => {
    const worker = spawn("worker binary", [workerBin], env(), { cwd })
    await waitFor("the worker binary to run", () => /worker \S+ running/.test(worker.stderr()), 30_000)
    const mail = '{"to":"grace@example.com","subject":"hi","text":"from a worker binary","messageId":"bin-2"}'
    const output = await json(["enqueue", "webapp.email.send", mail, "--wait", "--timeout", "20s"])
    expect(output).toMatchObject({ messageId: "bin-2", alreadySent: false })
    worker.proc.kill("SIGTERM")
    expect(await worker.exited).toBe(0)
  }, 60_000)
})
