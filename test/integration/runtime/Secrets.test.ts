/**
 * Secrets are never logged: a worker process started with a NATS password, at the most verbose
 * level in each log format, prints none of it, neither when it connects and runs nor when the
 * password is wrong nor when credentials come in the URL (where they are refused).
 */
import { afterEach, describe, expect, test } from "bun:test"
import { join } from "node:path"
import { cleanEnv, killAll, root, spawn } from "../chaos/support.ts"
import { tempDir, uniqueName } from "../../support/harness.ts"
import { natsHarness } from "../../support/harness.ts"
import { actorName } from "../../support/runtime.ts"

// characters a URL parser splits on, so a half-redacted password would show
const PASSWORD = "Zq8sEcReT@Pw9xQ/Wh7rD:Rd5kV,V42Km"
const WRONG = "Wr0ngPa55@Xy7zQ/Lm3nB:Tg8hJ,Kp4sD"
const pieces = (secret: string) => secret.split(/[@/:,]/)

const h = natsHarness({ config: `authorization { user: alice, password: ${JSON.stringify(PASSWORD)} }` })
afterEach(killAll)

const worker = (env: Record<string, string>) =>
  spawn("worker", ["bun", join(root, "src", "cli", "main.ts"), "worker", "--entry", join(root, "test", "fixtures", "chaosApp.ts")], {
    ...cleanEnv(),
    CHAOS_ACTOR: actorName("secret"),
    MSGSYS_DATA_DIR: tempDir(),
    MSGSYS_STREAM_PREFIX: uniqueName("SEC"),
    MSGSYS_HTTP_PORT: "0",
    MSGSYS_LOG_LEVEL: "Debug",
    MSGSYS_NATS_CONNECT_ATTEMPTS: "1",
    ...env
  })

const expectHidden = (output: string, secret: string) => {
  for (const piece of pieces(secret)) expect(output).not.toContain(piece)
}

describe("secrets in logs", () => {
  for (const format of ["json", "pretty", "logfmt"]) {
    test(`a worker that connects with a password and runs never prints it (${format} logs, Debug level)`, async () => {
      const w = worker({
        MSGSYS_LOG_FORMAT: format,
        MSGSYS_NATS_URL: h.server.url,
        MSGSYS_NATS_USER: "alice",
        MSGSYS_NATS_PASSWORD: PASSWORD
      })
      const deadline = Date.now() + 20_000
      while (!/worker \S+ running/.test(w.output()) && w.alive() && Date.now() < deadline) await Bun.sleep(50)
      expect(w.output()).toMatch(/worker \S+ running/)
      process.kill(w.pid, "SIGTERM")
      expect(await w.exited).toBe(0)
      expect(w.output()).toContain("stopped")
      expectHidden(w.output(), PASSWORD)
    }, 30_000)
  }

  test("a connect refused for a wrong password names the problem and prints neither password", async () => {
    const w = worker({ MSGSYS_LOG_FORMAT: "json", MSGSYS_NATS_URL: h.server.url, MSGSYS_NATS_USER: "alice", MSGSYS_NATS_PASSWORD: WRONG })
    expect(await w.exited).toBe(1)
    expect(w.output().toLowerCase()).toContain("authorization")
    expectHidden(w.output(), WRONG)
    expectHidden(w.output(), PASSWORD)
  }, 30_000)

  test("credentials in MSGSYS_NATS_URL are refused without printing them", async () => {
    const url = h.server.url.replace("nats://", `nats://alice:${PASSWORD}@`)
    const w = worker({ MSGSYS_LOG_FORMAT: "json", MSGSYS_NATS_URL: url })
    expect(await w.exited).toBe(1)
    expect(w.output()).toContain("credentials in the URL")
    expectHidden(w.output(), PASSWORD)
  }, 30_000)
})
