import { describe, expect, test } from "bun:test"
import * as Progress from "../../../src/cli/Progress.ts"

const capture = (isTTY: boolean) => {
  const out: Array<string> = []
  let clock = 0
  return {
    out,
    tick: (ms: number) => {
      clock += ms
    },
    progress: (label = "tasks pruned") =>
      Progress.make({ label, sink: { isTTY, write: (t) => out.push(t) }, now: () => clock })
  }
}

describe("Progress", () => {
  test("off a terminal, a million updates over 12 seconds print a line every 5 seconds and a final one", () => {
    const c = capture(false)
    const p = c.progress()
    for (let i = 1; i <= 1_000_000; i++) {
      if (i % 1000 === 0) c.tick(12)
      p.update(i, 1_000_000)
    }
    p.finish()
    expect(c.out).toEqual([
      "tasks pruned: 417000/1000000 (42%)\n",
      "tasks pruned: 834000/1000000 (83%)\n",
      "tasks pruned: 1000000/1000000 (100%)\n"
    ])
    expect(c.out.join("")).not.toContain("\r")
  })

  test("on a terminal, the bar is redrawn in place at most every 100 ms and its line ended at the finish", () => {
    const c = capture(true)
    const p = c.progress()
    for (let i = 1; i <= 1000; i++) {
      c.tick(1)
      p.update(i, 1000)
    }
    p.finish()
    expect(c.out.length).toBe(10 + 2)
    expect(c.out.slice(0, -1).every((s) => s.startsWith("\r["))).toBe(true)
    expect(c.out.at(-2)).toBe(`\r[${"#".repeat(30)}] 1000/1000 tasks pruned (100%)`)
    expect(c.out.at(-1)).toBe("\n")
  })

  test("off a terminal, a run that counted nothing prints nothing", () => {
    const c = capture(false)
    const p = c.progress()
    p.update(0, 0)
    p.finish()
    p.finish()
    expect(c.out).toEqual([])
  })

  test("off a terminal, the final count is not printed twice", () => {
    const c = capture(false)
    const p = c.progress()
    c.tick(6000)
    p.update(10, 10)
    p.finish()
    expect(c.out).toEqual(["tasks pruned: 10/10 (100%)\n"])
  })
})
