/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests: it throws
 * on anything a Prometheus server would reject or that breaks the format's rules — bad names,
 * bad label escapes, unparsable values, a sample before its family's TYPE, a family split in two,
 * a series given twice, a histogram whose buckets are not cumulative or lack `+Inf`, `_sum` or
 * `_count`, a counter below zero.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped"

export interface Sample {
  /** The sample's own name (`x_bucket`, `x_sum` for a histogram `x`). */
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Family {
  readonly name: string
  readonly type: MetricType
  readonly help: string | undefined
  readonly samples: ReadonlyArray<Sample>
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const types = new Set<MetricType>(["counter", "gauge", "histogram", "summary", "untyped"])

const fail = (line: number, why: string, text: string): never => {
  throw new Error(`line ${line}: ${why}: ${JSON.stringify(text)}`)
}

const parseValue = (s: string, line: number, text: string): number => {
  if (s === "+Inf") return Infinity
  if (s === "-Inf") return -Infinity
  if (s === "NaN") return NaN
  if (!/^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$/.test(s)) fail(line, `bad value ${JSON.stringify(s)}`, text)
  return Number(s)
}

/** Reads `{a="1",b="x\"y"}` starting at `i` (the `{`); returns the labels and the index after `}`. */
const parseLabels = (text: string, i: number, line: number): [Record<string, string>, number] => {
  const labels: Record<string, string> = {}
  i++
  while (true) {
    if (text[i] === "}") return [labels, i + 1]
    const eq = text.indexOf("=", i)
    if (eq < 0) fail(line, "label without =", text)
    const name = text.slice(i, eq)
    if (!labelName.test(name)) fail(line, `bad label name ${JSON.stringify(name)}`, text)
    if (name in labels) fail(line, `label ${name} given twice`, text)
    if (text[eq + 1] !== "\"") fail(line, "label value not quoted", text)
    let j = eq + 2
    let value = ""
    while (true) {
      const c = text[j]
      if (c === undefined) fail(line, "unterminated label value", text)
      if (c === "\"") break
      if (c === "\\") {
        const n = text[j + 1]
        if (n === "\\") value += "\\"
        else if (n === "\"") value += "\""
        else if (n === "n") value += "\n"
        else fail(line, `bad escape \\${n}`, text)
        j += 2
        continue
      }
      if (c === "\n") fail(line, "raw newline in a label value", text)
      value += c
      j++
    }
    labels[name] = value
    i = j + 1
    if (text[i] === ",") {
      i++
      continue
    }
    if (text[i] !== "}") fail(line, "expected , or } after a label", text)
  }
}

/** The family a sample name belongs to, given the families declared so far. */
const familyOf = (sample: string, declared: Map<string, { type: MetricType }>): string => {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (sample.endsWith(suffix)) {
      const base = sample.slice(0, -suffix.length)
      const f = declared.get(base)
      if (f && (f.type === "histogram" || (f.type === "summary" && suffix !== "_bucket"))) return base
    }
  }
  return sample
}

const seriesKey = (name: string, labels: Readonly<Record<string, string>>) =>
  `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(",")}}`

/** Parses the whole text, or throws naming the first problem and its line. */
export const parse = (body: string): ReadonlyMap<string, Family> => {
  if (body.length > 0 && !body.endsWith("\n")) throw new Error("the text does not end with a newline")
  const families = new Map<string, { type: MetricType; help: string | undefined; samples: Array<Sample>; typed: boolean }>()
  const closed = new Set<string>()
  const seen = new Set<string>()
  let current: string | undefined
  const open = (name: string, line: number, text: string) => {
    if (current !== name) {
      if (closed.has(name)) fail(line, `family ${name} is split in two`, text)
      if (current !== undefined) closed.add(current)
      current = name
    }
  }
  const lines = body.split("\n")
  if (lines[lines.length - 1] === "") lines.pop()
  lines.forEach((text, index) => {
    const line = index + 1
    if (text.trim() === "") return
    if (text.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(text)
      if (!m) return // a plain comment
      const [, kind, name, rest] = m as unknown as [string, "HELP" | "TYPE", string, string]
      if (!metricName.test(name)) fail(line, `bad metric name ${JSON.stringify(name)}`, text)
      open(name, line, text)
      const f = families.get(name) ?? { type: "untyped" as MetricType, help: undefined, samples: [], typed: false }
      families.set(name, f)
      if (kind === "TYPE") {
        if (f.typed) fail(line, `second TYPE for ${name}`, text)
        if (f.samples.length > 0) fail(line, `TYPE for ${name} after its samples`, text)
        if (!types.has(rest as MetricType)) fail(line, `unknown type ${JSON.stringify(rest)}`, text)
        f.type = rest as MetricType
        f.typed = true
      } else {
        if (f.help !== undefined) fail(line, `second HELP for ${name}`, text)
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) fail(line, "bad escape in HELP", text)
        f.help = rest.replace(/\\n/g, "\n").replace(/\\\\/g, "\\")
      }
      return
    }
    const nameEnd = text.search(/[{ ]/)
    if (nameEnd <= 0) fail(line, "no metric name", text)
    const name = text.slice(0, nameEnd)
    if (!metricName.test(name)) fail(line, `bad metric name ${JSON.stringify(name)}`, text)
    let labels: Record<string, string> = {}
    let i = nameEnd
    if (text[i] === "{") [labels, i] = parseLabels(text, i, line)
    if (text[i] !== " ") fail(line, "expected a space before the value", text)
    const parts = text.slice(i + 1).split(" ")
    if (parts.length < 1 || parts.length > 2 || parts[0] === "") fail(line, "expected a value and an optional timestamp", text)
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1]!)) fail(line, "bad timestamp", text)
    const value = parseValue(parts[0]!, line, text)
    const family = familyOf(name, families)
    open(family, line, text)
    const f = families.get(family) ?? { type: "untyped" as MetricType, help: undefined, samples: [], typed: false }
    families.set(family, f)
    const key = seriesKey(name, labels)
    if (seen.has(key)) fail(line, `series ${key} given twice`, text)
    seen.add(key)
    if (f.type === "counter" && !(value >= 0)) fail(line, "a counter below zero", text)
    if (f.type === "histogram" && name === `${family}_bucket` && labels.le === undefined) fail(line, "a bucket without le", text)
    f.samples.push({ name, labels, value })
  })

  // histograms: per label set, cumulative buckets ending with +Inf = _count, and a _sum
  for (const [name, f] of families) {
    if (f.type !== "histogram") continue
    const groups = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>()
    for (const s of f.samples) {
      const { le, ...rest } = s.labels
      const k = seriesKey("", rest)
      const g = groups.get(k) ?? { buckets: [] }
      groups.set(k, g)
      if (s.name === `${name}_bucket`) g.buckets.push([parseValue(le!, 0, le!), s.value])
      else if (s.name === `${name}_sum`) g.sum = s.value
      else if (s.name === `${name}_count`) g.count = s.value
      else throw new Error(`histogram ${name} has a sample ${s.name}`)
    }
    for (const [k, g] of groups) {
      const where = `histogram ${name}${k}`
      if (g.sum === undefined || g.count === undefined) throw new Error(`${where} lacks _sum or _count`)
      const sorted = [...g.buckets].sort((a, b) => a[0] - b[0])
      if (sorted.length === 0 || sorted[sorted.length - 1]![0] !== Infinity) throw new Error(`${where} has no +Inf bucket`)
      for (let i = 1; i < sorted.length; i++) {
        if (sorted[i]![1] < sorted[i - 1]![1]) throw new Error(`${where}: buckets are not cumulative`)
      }
      if (sorted[sorted.length - 1]![1] !== g.count) throw new Error(`${where}: the +Inf bucket differs from _count`)
    }
  }
  return new Map([...families].map(([name, f]) => [name, { name, type: f.type, help: f.help, samples: f.samples }]))
}
