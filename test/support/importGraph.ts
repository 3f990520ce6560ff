/**
 * The import graph of a source tree, read from the text of its files: every relative `import`
 * and `export ... from` (type-only ones included: a type import ties two modules as much as a
 * value import does, only not at run time), and `import("./...")` with a literal path. Bare
 * specifiers (`effect`, `@nats-io/...`, `bun:sqlite`) are not edges.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve, sep } from "node:path"

/** Module (path relative to the root, `/`-separated) -> the modules it imports. */
export type Graph = ReadonlyMap<string, ReadonlySet<string>>

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return sourceFiles(path)
    return /\.tsx?$/.test(name) && !name.endsWith(".d.ts") ? [path] : []
  })

// comments go first: a doc comment may show an import as an example
const comments = /\/\*[\s\S]*?\*\/|(^|[^:"'`\\])\/\/[^\n]*/g
const staticImports = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w$*{},\s]+?\s+from\s+)?["'](\.{1,2}\/[^"']+)["']/g
const dynamicImports = /\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g

/** The relative specifiers a module's text imports. */
export const specifiersOf = (text: string): ReadonlyArray<string> => {
  const code = text.replace(comments, "$1")
  return [...code.matchAll(staticImports), ...code.matchAll(dynamicImports)].map((m) => m[1]!)
}

/** The graph of every module under `root`; imports that leave `root` (package.json) are not edges. */
export const read = (root: string): Graph => {
  const graph = new Map<string, Set<string>>()
  const name = (path: string) => relative(root, path).split(sep).join("/")
  for (const file of sourceFiles(root)) {
    const targets = new Set<string>()
    for (const spec of specifiersOf(readFileSync(file, "utf8"))) {
      const target = resolve(dirname(file), spec)
      if (!relative(root, target).startsWith("..")) targets.add(name(target))
    }
    graph.set(name(file), targets)
  }
  return graph
}

/**
 * The folder graph: folder -> folders it imports, with one import that makes each edge (to name
 * it in a failure). A module at the root (an entry point such as `index.ts`) belongs to no folder.
 */
export const folders = (graph: Graph): { readonly graph: Graph; readonly because: ReadonlyMap<string, string> } => {
  const folderOf = (module: string) => module.includes("/") ? module.slice(0, module.indexOf("/")) : undefined
  const out = new Map<string, Set<string>>()
  const because = new Map<string, string>()
  for (const [from, targets] of graph) {
    const a = folderOf(from)
    if (a === undefined) continue
    for (const to of targets) {
      const b = folderOf(to)
      if (b === undefined || b === a) continue
      if (!out.has(a)) out.set(a, new Set())
      out.get(a)!.add(b)
      if (!because.has(`${a} -> ${b}`)) because.set(`${a} -> ${b}`, `${from} imports ${to}`)
    }
  }
  return { graph: out, because }
}

/**
 * Every cycle of the graph, one per strongly connected component, as the path that closes it
 * (`[a, b, a]`); none when the graph is a DAG. Self-imports count.
 */
export const cycles = (graph: Graph): ReadonlyArray<ReadonlyArray<string>> => {
  // Tarjan's strongly connected components
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const components: Array<Array<string>> = []
  let next = 0
  const visit = (v: string) => {
    index.set(v, next)
    low.set(v, next++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: Array<string> = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1 || graph.get(v)?.has(v)) components.push(component)
    }
  }
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v)

  // a concrete cycle through each component: a shortest path from its first member back to it
  return components.map((component) => {
    const members = new Set(component)
    const start = [...component].sort()[0]!
    const previous = new Map<string, string>()
    const queue = [start]
    while (queue.length > 0) {
      const v = queue.shift()!
      for (const w of [...(graph.get(v) ?? [])].sort()) {
        if (!members.has(w) || previous.has(w)) continue
        previous.set(w, v)
        if (w === start) {
          const path: Array<string> = [start]
          for (let at = v; at !== start; at = previous.get(at)!) path.unshift(at)
          return [start, ...path]
        }
        queue.push(w)
      }
    }
    return [start, start]
  })
}
