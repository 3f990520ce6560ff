/**
 * A TCP proxy on a loopback port that a test can cut and restore: while cut it refuses
 * connections and has closed the ones it carried, as a lost network path does for one client
 * while the server and its other clients go on. It can also stall the connections it carries:
 * they stay open and carry nothing, as when a host dies without a word.
 */
import type { Socket, TCPSocketListener } from "bun"

export interface TcpProxy {
  /** nats://127.0.0.1:PORT */
  readonly url: string
  /** Closes every connection it carries and refuses new ones. */
  readonly cut: () => void
  /** Accepts connections again, on the same port. */
  readonly restore: () => void
  /** The connections it carries now stop carrying bytes, both ways, and stay open; new ones work. */
  readonly stall: () => void
  readonly close: () => void
}

interface Pair {
  upstream: Socket<Pair> | undefined
  pending: Array<Uint8Array>
  client: Socket<Pair>
  stalled?: boolean
}

export const tcpProxy = (target: { readonly host: string; readonly port: number }): TcpProxy => {
  const pairs = new Set<Pair>()
  let listener: TCPSocketListener<Pair> | undefined
  let port = 0
  const listen = () => {
    listener = Bun.listen<Pair>({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(client) {
          const pair: Pair = { upstream: undefined, pending: [], client }
          client.data = pair
          pairs.add(pair)
          void Bun.connect<Pair>({
            hostname: target.host,
            port: target.port,
            data: pair,
            socket: {
              open(upstream) {
                pair.upstream = upstream
                for (const chunk of pair.pending) upstream.write(chunk)
                pair.pending = []
              },
              data(_upstream, chunk) {
                if (!pair.stalled) pair.client.write(chunk)
              },
              close() {
                pair.client.end()
                pairs.delete(pair)
              }
            }
          })
        },
        data(client, chunk) {
          const pair = client.data
          if (pair.stalled) return
          if (pair.upstream) pair.upstream.write(chunk)
          else pair.pending.push(new Uint8Array(chunk))
        },
        close(client) {
          client.data?.upstream?.end()
          pairs.delete(client.data)
        }
      }
    })
    port = listener.port
  }
  listen()
  const cut = () => {
    listener?.stop(true)
    listener = undefined
    for (const pair of pairs) {
      pair.client.end()
      pair.upstream?.end()
    }
    pairs.clear()
  }
  const stall = () => {
    for (const pair of pairs) pair.stalled = true
  }
  return { url: `nats://127.0.0.1:${port}`, cut, restore: () => listener ?? listen(), stall, close: cut }
}
