/**
 * The bench script itself, run tiny: it must print one JSON object on stdout, with every section,
 * and measure every figure it can. (It times nothing here: the numbers are not looked at.)
 */
import { describe, expect, test } from "bun:test"

const bench = async (args: ReadonlyArray<string>) => {
  const proc = Bun.spawn(["bun", "scripts/lib/bench/main.ts", ...args], { stdout: "pipe", stderr: "pipe" })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited
  ])
  return { stdout, stderr, code }
}

const sections = ["raw", "enqueue", "drain", "latency", "dispatch", "memory", "schedule", "events", "pipeline", "bullmq"]

type Figure = { readonly median?: number; readonly runs?: ReadonlyArray<number>; readonly na?: string }
type SectionJson = { readonly failed?: string; readonly skipped?: string; readonly figures?: Record<string, Figure> }

describe("./scripts/bench", () => {
  test("--json prints exactly one JSON object on stdout, with every section measured or marked n/a", async () => {
    const { stdout, stderr, code } = await bench([
      "--quick", "--json", "--tasks", "300", "--latency-rate", "200", "--latency-seconds", "1", "--memory-tasks", "200"
    ])
    if (code !== 0) console.error(stderr)
    expect(code).toBe(0)
    // JSON.parse of all of stdout: nothing else may be printed there
    const json = JSON.parse(stdout) as Record<string, unknown>
    expect(Object.keys(json)).toEqual(["meta", ...sections, "targets"])
    for (const name of sections) {
      const section = json[name] as SectionJson
      expect({ name, failed: section.failed }).toEqual({ name, failed: undefined })
      if (name === "bullmq" && section.skipped) continue // no redis-server on this machine
      expect(section.skipped).toBeUndefined()
      for (const [key, figure] of Object.entries(section.figures ?? {})) {
        // a figure is a positive number or says why it has none
        if (figure.na === undefined) expect({ name, key, ok: figure.median! > 0 }).toEqual({ name, key, ok: true })
        else expect(figure.na.length).toBeGreaterThan(0)
      }
      expect(Object.keys(section.figures ?? {}).length).toBeGreaterThan(0)
    }
    // every figure of the hot path is measured now: none is n/a
    for (const name of ["enqueue", "drain", "dispatch"]) {
      for (const [key, figure] of Object.entries((json[name] as SectionJson).figures ?? {})) {
        expect({ name, key, na: figure.na }).toEqual({ name, key, na: undefined })
      }
    }
  }, 120_000)

  test("an unknown section is refused with the list of sections", async () => {
    const { stderr, code } = await bench(["--only", "raw,nope"])
    expect(code).toBe(2)
    expect(stderr).toContain("unknown: nope")
    expect(stderr).toContain(sections.join(", "))
  })
})
