import { describe, expect, test } from "bun:test"
import { headers as natsHeaders } from "@nats-io/transport-node"
import { parseHeaderBlock } from "../../../src/broker/Pull.ts"

/** What nats.js itself reads from the same block: code, description, the first value of each key. */
const viaNats = (text: string) => {
  const h = (natsHeaders() as unknown as { constructor: { decode: (a: Uint8Array) => any } }).constructor.decode(new TextEncoder().encode(text))
  const out: Record<string, string> = {}
  for (const k of h.keys()) out[k] = h.get(k)
  return { code: h.code, description: h.description, headers: Object.keys(out).length > 0 ? out : undefined }
}

describe("header blocks are read as nats.js reads them", () => {
  const blocks = [
    "NATS/1.0\r\nMsgsys-Id: 01ABC\r\nNats-Msg-Id: 01ABC\r\n\r\n",
    "NATS/1.0\r\nmsgsys-tenant:  acme  \r\nMsgsys-Tenant: other\r\n\r\n",
    "NATS/1.0\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nX-Url: http://a.example:80/x\r\n\r\n",
    "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\n\r\n",
    "NATS/1.0 404 No Messages\r\n\r\n",
    "NATS/1.0 409 Consumer Deleted\r\n\r\n",
    "NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n",
    "NATS/1.0\r\nNo-Colon-Line\r\nEmpty:\r\nA: 1\r\n\r\n"
  ]
  for (const block of blocks) {
    test(JSON.stringify(block.split("\r\n")[0] + " / " + block.split("\r\n")[1]), () => {
      expect(parseHeaderBlock(block)).toEqual(viaNats(block))
    })
  }
})
