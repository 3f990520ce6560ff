/**
 * The key scope of each event by stream sequence: before any replay one scope; after replays, the
 * latest replay that starts at or before the event, and the group's first scope before them all.
 */
import { describe, expect, test } from "bun:test"
import * as ReplayEpochs from "../../../src/control/ReplayEpochs.ts"

const at = new Date("2026-11-30T10:00:00Z")

describe("ReplayEpochs", () => {
  test("a group never replayed keys every event under group/<name>", () => {
    const scope = ReplayEpochs.scopeOf("mail", ReplayEpochs.initial)
    expect([1, 500, 10_000].map(scope)).toEqual(["group/mail", "group/mail", "group/mail"])
  })

  test("a replay gives the events from its start a new scope and leaves the ones before it alone", () => {
    const once = ReplayEpochs.add(ReplayEpochs.initial, 100, at)
    const scope = ReplayEpochs.scopeOf("mail", once)
    expect([99, 100, 101].map(scope)).toEqual(["group/mail", "group/mail#1", "group/mail#1"])
  })

  test("a later replay from a later start leaves the earlier replay's range in its epoch", () => {
    const twice = ReplayEpochs.add(ReplayEpochs.add(ReplayEpochs.initial, 100, at), 200, at)
    const scope = ReplayEpochs.scopeOf("mail", twice)
    expect([50, 150, 250].map(scope)).toEqual(["group/mail", "group/mail#1", "group/mail#2"])
  })

  test("a later replay from an earlier start covers the replays it starts before", () => {
    const twice = ReplayEpochs.add(ReplayEpochs.add(ReplayEpochs.initial, 200, at), 100, at)
    expect(twice.replays.map((r) => [r.from, r.epoch])).toEqual([[100, 2]])
    const scope = ReplayEpochs.scopeOf("mail", twice)
    expect([50, 150, 250].map(scope)).toEqual(["group/mail", "group/mail#2", "group/mail#2"])
  })

  test("stored epochs read back; text that is not epochs reads as undefined", () => {
    const epochs = ReplayEpochs.add(ReplayEpochs.initial, 7, at)
    expect(ReplayEpochs.decode(ReplayEpochs.encode(epochs))).toEqual(epochs)
    expect(ReplayEpochs.decode("paused")).toBeUndefined()
    expect(ReplayEpochs.decode(JSON.stringify({ epoch: "1", replays: [] }))).toBeUndefined()
  })
})
