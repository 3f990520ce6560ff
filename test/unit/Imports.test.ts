/**
 * No import cycle in src/, between modules or between folders (issue 16): a folder is one part of
 * the runtime, and the folders form layers, each importing only the ones below it. Type-only
 * imports count. A failure names the cycle and, for folders, the import behind each step.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import * as ImportGraph from "../support/importGraph.ts"

const src = join(import.meta.dir, "..", "..", "src")
const graph = ImportGraph.read(src)

const graphOf = (edges: Record<string, ReadonlyArray<string>>): ImportGraph.Graph =>
  new Map(Object.entries(edges).map(([k, vs]) => [k, new Set(vs)]))

describe("the import graph of src/", () => {
  test("is read from every module, type-only and multi-line imports included", () => {
    expect(graph.size).toBeGreaterThan(100)
    expect(graph.get("index.ts")?.has("task/Task.ts")).toBe(true)
    expect(ImportGraph.specifiersOf([
      "import type { A } from \"./a.ts\"",
      "import {\n  b,\n  type C\n} from \"../b/B.ts\"",
      "export * as D from \"./d.ts\"",
      "import \"./side.ts\"",
      "const e = await import(\"./e.ts\")",
      "import { Effect } from \"effect\"",
      "/** import { F } from \"./f.ts\" */",
      "// import { G } from \"./g.ts\""
    ].join("\n"))).toEqual(["./a.ts", "../b/B.ts", "./d.ts", "./side.ts", "./e.ts"])
  })

  test("the cycle finder names a cycle, between modules and between folders", () => {
    const modules = graphOf({ "a/A.ts": ["b/B.ts"], "b/B.ts": ["c/C.ts"], "c/C.ts": ["a/A.ts"], "d/D.ts": ["a/A.ts"] })
    expect(ImportGraph.cycles(modules)).toEqual([["a/A.ts", "b/B.ts", "c/C.ts", "a/A.ts"]])
    const split = graphOf({ "a/A.ts": ["b/B.ts"], "b/B.ts": [], "b/C.ts": ["a/Z.ts"], "a/Z.ts": [] })
    expect(ImportGraph.cycles(split)).toEqual([])
    const { graph: folders, because } = ImportGraph.folders(split)
    expect(ImportGraph.cycles(folders)).toEqual([["a", "b", "a"]])
    expect(because.get("b -> a")).toBe("b/C.ts imports a/Z.ts")
    expect(ImportGraph.cycles(graphOf({ "a/A.ts": ["a/A.ts"] }))).toEqual([["a/A.ts", "a/A.ts"]])
  })

  test("has no cycle between modules", () => {
    expect(ImportGraph.cycles(graph).map((c) => c.join(" -> "))).toEqual([])
  })

  test("has no cycle between folders", () => {
    const { graph: folders, because } = ImportGraph.folders(graph)
    const found = ImportGraph.cycles(folders).map((cycle) =>
      cycle.slice(1).map((to, i) => `${cycle[i]} -> ${to} (${because.get(`${cycle[i]} -> ${to}`)})`).join(", ")
    )
    expect(found).toEqual([])
  })
})
