/**
 * A three-node nats-server cluster on a private network, one node per Linux network namespace, so
 * a node can be cut off the way a switch port dies: its link goes down, packets are dropped, and
 * no TCP reset tells anybody (unlike a killed process, whose kernel answers with resets). Needs
 * root and iproute2 (`ip netns`); `available` says whether this machine has them.
 *
 * Layout: a bridge in the test's own namespace at 10.213.S.1/24 and, for node i, a namespace with
 * 10.213.S.1i on a veth pair whose other end is on the bridge. Every node listens on 4222 (clients)
 * and 6222 (routes) of its own address. Names carry the test process's pid, so two test processes
 * do not meet, and what a test process that died left behind is removed at the next start.
 */
import { connect } from "@nats-io/transport-node"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { waitForJetStream } from "./cluster.ts"
import { processAlive } from "./harness.ts"

/** Whether this process may make network namespaces (root, `ip` and `nats-server` on PATH). */
export const available: boolean = process.getuid?.() === 0 && Bun.which("ip") !== null && Bun.which("nats-server") !== null

export interface NetnsCluster {
  /** The nodes' server names, n1..n3. */
  readonly names: ReadonlyArray<string>
  /** nats://10.213.S.1i:4222 for each node, in the order of `names`. */
  readonly urls: ReadonlyArray<string>
  /** Takes node `name`'s link down: it and everybody else stop hearing each other, without a reset. */
  readonly cut: (name: string) => void
  /** Brings node `name`'s link back up. */
  readonly heal: (name: string) => void
  readonly close: () => Promise<void>
}

const ip = (...args: Array<string>) => {
  const r = Bun.spawnSync(["ip", ...args], { stderr: "pipe", stdout: "ignore" })
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.toString().trim()}`)
}
const ipQuiet = (...args: Array<string>) => {
  Bun.spawnSync(["ip", ...args], { stderr: "ignore", stdout: "ignore" })
}
const ipLines = (...args: Array<string>) =>
  Bun.spawnSync(["ip", ...args], { stderr: "ignore" }).stdout.toString().split("\n")

/** Namespaces and bridges of test processes that are gone (the veth pairs go with their namespaces). */
const removeLeftovers = () => {
  for (const line of ipLines("netns", "list")) {
    const m = /^(msgsys-(\d+)-n\d)\b/.exec(line)
    if (m && !processAlive(Number(m[2]))) ipQuiet("netns", "del", m[1]!)
  }
  for (const line of ipLines("-o", "link", "show", "type", "bridge")) {
    const m = /^\d+: (mbr(\d+)):/.exec(line)
    if (m && !processAlive(Number(m[2]))) ipQuiet("link", "del", m[1]!)
  }
}

/** Until a client can connect to `url` (a loaded machine takes a while to start three servers). */
const listening = async (url: string, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      await (await connect({ servers: url, timeout: 1000 })).close()
      return
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`nats-server at ${url} did not accept connections within ${timeoutMs} ms: ${String(e)}`)
      await Bun.sleep(100)
    }
  }
}

/** Starts the three namespaces and nodes and waits until JetStream has a meta leader. */
export const startNetnsCluster = async (): Promise<NetnsCluster> => {
  const tag = String(process.pid)
  const subnet = `10.213.${process.pid % 250}`
  const bridge = `mbr${tag}`
  const names = ["n1", "n2", "n3"]
  const ns = (i: number) => `msgsys-${tag}-${names[i]}`
  const hostEnd = (i: number) => `mv${tag}h${i + 1}`
  const nsEnd = (i: number) => `mv${tag}n${i + 1}`
  const address = (i: number) => `${subnet}.${11 + i}`
  const dir = mkdtempSync(join(tmpdir(), "msgsys-netns-"))
  const servers: Array<Bun.Subprocess> = []
  const logs: Array<string> = names.map((n) => join(dir, `${n}.log`))

  const teardown = () => {
    for (const s of servers) s.kill("SIGKILL")
    names.forEach((_, i) => ipQuiet("netns", "del", ns(i)))
    ipQuiet("link", "del", bridge)
  }
  const close = async () => {
    teardown()
    await Promise.all(servers.map((s) => s.exited))
    rmSync(dir, { recursive: true, force: true })
  }

  try {
    removeLeftovers()
    teardown()
    ip("link", "add", bridge, "type", "bridge")
    ip("addr", "add", `${subnet}.1/24`, "dev", bridge)
    ip("link", "set", bridge, "up")
    names.forEach((_, i) => {
      ip("netns", "add", ns(i))
      ip("link", "add", hostEnd(i), "type", "veth", "peer", "name", nsEnd(i))
      ip("link", "set", nsEnd(i), "netns", ns(i))
      ip("link", "set", hostEnd(i), "master", bridge)
      ip("link", "set", hostEnd(i), "up")
      ip("-n", ns(i), "addr", "add", `${address(i)}/24`, "dev", nsEnd(i))
      ip("-n", ns(i), "link", "set", nsEnd(i), "up")
      ip("-n", ns(i), "link", "set", "lo", "up")
    })
    const binary = Bun.which("nats-server")!
    names.forEach((name, i) => {
      const conf = join(dir, `${name}.conf`)
      writeFileSync(conf, [
        `server_name: ${name}`,
        `listen: "${address(i)}:4222"`,
        `jetstream { store_dir: "${join(dir, name)}" }`,
        "cluster {",
        "  name: msgsys-netns",
        `  listen: "${address(i)}:6222"`,
        `  routes: [${names.flatMap((_, j) => j === i ? [] : [`"nats-route://${address(j)}:6222"`]).join(", ")}]`,
        "}"
      ].join("\n"))
      servers.push(Bun.spawn(["ip", "netns", "exec", ns(i), binary, "-c", conf, "-l", logs[i]!], {
        stdout: "ignore",
        stderr: "ignore"
      }))
    })
    const urls = names.map((_, i) => `nats://${address(i)}:4222`)
    await Promise.all(urls.map((url) => listening(url)))
    await waitForJetStream(urls)
    const index = (name: string) => {
      const i = names.indexOf(name)
      if (i < 0) throw new Error(`no node ${name} (nodes: ${names.join(", ")})`)
      return i
    }
    return {
      names,
      urls,
      cut: (name) => ip("link", "set", hostEnd(index(name)), "down"),
      heal: (name) => ip("link", "set", hostEnd(index(name)), "up"),
      close
    }
  } catch (e) {
    await close()
    throw e
  }
}
