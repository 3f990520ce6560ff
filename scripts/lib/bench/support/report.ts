/**
 * The bench's results: each figure as the median of its runs, the ratios that read msgsys against
 * raw nats.js and BullMQ, the issue's targets, as a table for people and as one JSON object.
 */
import { type FigureSpec, isNa, type Sample, type SectionName, sectionNames, type Settings } from "./Section.ts"
import { median } from "./stats.ts"

/** How a section ended. */
export type Outcome =
  | { readonly kind: "skipped"; readonly reason: string }
  | { readonly kind: "failed"; readonly error: string; readonly samples: Readonly<Record<string, ReadonlyArray<Sample>>> }
  | { readonly kind: "done"; readonly samples: Readonly<Record<string, ReadonlyArray<Sample>>> }

export interface SectionReport {
  readonly name: SectionName
  readonly title: string
  readonly figures: ReadonlyArray<FigureSpec>
  readonly outcome: Outcome
}

/** A figure's value: the median of its runs, or why there is none. */
export type Value = { readonly median: number; readonly runs: ReadonlyArray<number> } | { readonly na: string }

const valueOf = (report: SectionReport | undefined, key: string): Value => {
  if (!report) return { na: "not selected" }
  const { outcome } = report
  if (outcome.kind === "skipped") return { na: outcome.reason }
  const samples = outcome.samples[key] ?? []
  const missing = samples.find(isNa)
  if (missing) return { na: missing.na }
  if (samples.length === 0) return { na: outcome.kind === "failed" ? `failed: ${outcome.error}` : "no run" }
  const runs = samples as ReadonlyArray<number>
  return { median: median(runs), runs }
}

type Ref = `${SectionName}.${string}`

interface RatioSpec {
  readonly section: SectionName
  readonly key: string
  readonly label: string
  readonly of: Ref
  readonly to: Ref
}

/** msgsys over its baseline; each is the ratio of the two medians. */
const ratios: ReadonlyArray<RatioSpec> = [
  { section: "enqueue", key: "oneByOneToRawPublish", label: "enqueue one by one / raw publish", of: "enqueue.oneByOne", to: "raw.publish" },
  { section: "enqueue", key: "manyToRawPublish", label: "enqueueMany / raw publish", of: "enqueue.many", to: "raw.publish" },
  { section: "drain", key: "resultsToRawKv", label: "drain with results / raw consume+KV+ack", of: "drain.results", to: "raw.consumeKvAck" },
  { section: "drain", key: "resultsToRawAck", label: "drain with results / raw consume+ack", of: "drain.results", to: "raw.consumeAck" },
  { section: "drain", key: "resultsOffToRawAck", label: "drain results off / raw consume+ack", of: "drain.resultsOff", to: "raw.consumeAck" },
  { section: "drain", key: "auditOffToRawKv", label: "drain audit off / raw consume+KV+ack", of: "drain.auditOff", to: "raw.consumeKvAck" },
  { section: "latency", key: "p50ToRaw", label: "msgsys p50 / raw p50", of: "latency.msgsysP50", to: "latency.rawP50" },
  { section: "latency", key: "p99ToRaw", label: "msgsys p99 / raw p99", of: "latency.msgsysP99", to: "latency.rawP99" },
  { section: "memory", key: "rssToRaw", label: "msgsys worker RSS / raw consumer RSS", of: "memory.msgsysRss", to: "memory.rawRss" },
  { section: "events", key: "msgsysToRaw", label: "events to 3 groups: msgsys / raw consumers", of: "events.msgsys", to: "events.raw" },
  { section: "bullmq", key: "manyToAddBulk", label: "msgsys enqueueMany / BullMQ addBulk", of: "enqueue.many", to: "bullmq.addBulk" },
  { section: "bullmq", key: "oneByOneToAdd", label: "msgsys enqueue one by one / BullMQ add one by one", of: "enqueue.oneByOne", to: "bullmq.addOneByOne" },
  { section: "bullmq", key: "resultsOffToProcess", label: "msgsys drain results off / BullMQ processing", of: "drain.resultsOff", to: "bullmq.process" },
  { section: "bullmq", key: "resultsToProcess", label: "msgsys drain with results / BullMQ processing", of: "drain.results", to: "bullmq.process" }
]

interface TargetSpec {
  readonly label: string
  /** A ratio (`of` / `to`) or a figure (`of` alone). */
  readonly of: Ref
  readonly to?: Ref
  readonly atLeast?: number
  readonly below?: number
  readonly atMost?: number
  /** Why the target does not apply to a run with these settings, if it does not. */
  readonly void?: (settings: Settings) => string | undefined
}

/** The targets of issue 12 (audit and idempotency on throughout). */
const targets: ReadonlyArray<TargetSpec> = [
  { label: "drain with results >= 0.8 x raw consume+KV+ack", of: "drain.results", to: "raw.consumeKvAck", atLeast: 0.8 },
  { label: "drain results off >= 0.5 x raw consume+ack (aim 0.7)", of: "drain.resultsOff", to: "raw.consumeAck", atLeast: 0.5 },
  { label: "drain results off >= 2 x BullMQ processing", of: "drain.resultsOff", to: "bullmq.process", atLeast: 2 },
  { label: "enqueue one by one >= 0.5 x raw publish", of: "enqueue.oneByOne", to: "raw.publish", atLeast: 0.5 },
  { label: "enqueueMany >= BullMQ addBulk", of: "enqueue.many", to: "bullmq.addBulk", atLeast: 1 },
  { label: "p99 enqueue->start <= 2 x raw p99", of: "latency.msgsysP99", to: "latency.rawP99", atMost: 2 },
  { label: "dispatch < 10 us/msg", of: "dispatch.perMessage", below: 10 },
  {
    label: "worker RSS with 10k in flight < 120 MiB",
    of: "memory.msgsysRss",
    below: 120,
    void: (s) => s.memoryTasks === 10_000 ? undefined : `measured with ${s.memoryTasks} in flight`
  }
]

const lookup = (reports: ReadonlyArray<SectionReport>, ref: Ref): Value => {
  const [section, key] = ref.split(".") as [SectionName, string]
  return valueOf(reports.find((r) => r.name === section), key)
}

const quotient = (reports: ReadonlyArray<SectionReport>, of: Ref, to: Ref): Value => {
  const a = lookup(reports, of)
  const b = lookup(reports, to)
  if ("na" in a) return { na: `${of}: ${a.na}` }
  if ("na" in b) return { na: `${to}: ${b.na}` }
  return { median: a.median / b.median, runs: [] }
}

const targetResult = (reports: ReadonlyArray<SectionReport>, t: TargetSpec, settings: Settings) => {
  const bound = t.atLeast !== undefined ? `>= ${t.atLeast}` : t.atMost !== undefined ? `<= ${t.atMost}` : `< ${t.below}`
  const voided = t.void?.(settings)
  const v: Value = voided !== undefined ? { na: voided } : t.to ? quotient(reports, t.of, t.to) : lookup(reports, t.of)
  if ("na" in v) return { label: t.label, value: null, need: bound, met: null, na: v.na }
  const met = t.atLeast !== undefined ? v.median >= t.atLeast : t.atMost !== undefined ? v.median <= t.atMost : v.median < t.below!
  return { label: t.label, value: round(v.median, 3), need: bound, met }
}

const round = (x: number, digits: number) => Number(x.toFixed(digits))

/** The JSON object: `meta`, one key per section (every section, run or not), `targets`. */
export const toJson = (meta: Readonly<Record<string, unknown>>, reports: ReadonlyArray<SectionReport>, settings: Settings) => {
  const out: Record<string, unknown> = { meta }
  for (const name of sectionNames) {
    const report = reports.find((r) => r.name === name)
    if (!report) {
      out[name] = { skipped: "not selected (--only)" }
      continue
    }
    const figures: Record<string, unknown> = {}
    for (const f of report.figures) {
      const v = valueOf(report, f.key)
      const digits = f.digits ?? 0
      figures[f.key] = "na" in v
        ? { label: f.label, unit: f.unit, na: v.na }
        : { label: f.label, unit: f.unit, median: round(v.median, digits), runs: v.runs.map((x) => round(x, digits)) }
    }
    const sectionRatios: Record<string, unknown> = {}
    for (const r of ratios.filter((r) => r.section === name)) {
      const v = quotient(reports, r.of, r.to)
      sectionRatios[r.key] = "na" in v ? { label: r.label, na: v.na } : { label: r.label, value: round(v.median, 3) }
    }
    out[name] = {
      title: report.title,
      ...(report.outcome.kind === "skipped" ? { skipped: report.outcome.reason } : {}),
      ...(report.outcome.kind === "failed" ? { failed: report.outcome.error } : {}),
      figures,
      ...(Object.keys(sectionRatios).length > 0 ? { ratios: sectionRatios } : {})
    }
  }
  out.targets = targets.map((t) => targetResult(reports, t, settings))
  return out
}

const format = (x: number, digits: number) =>
  x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** The table, for people. */
export const toTable = (header: string, reports: ReadonlyArray<SectionReport>, settings: Settings): string => {
  const rows: Array<[string, string, string, string, string]> = [["section", "figure", "median", "runs", "unit"]]
  for (const report of reports) {
    if (report.outcome.kind === "skipped") {
      rows.push([report.name, `skipped: ${report.outcome.reason}`, "", "", ""])
      continue
    }
    if (report.outcome.kind === "failed") rows.push([report.name, `FAILED: ${report.outcome.error}`, "", "", ""])
    for (const f of report.figures) {
      const v = valueOf(report, f.key)
      const digits = f.digits ?? 0
      rows.push("na" in v
        ? [report.name, f.label, "n/a", `(${v.na})`, f.unit]
        : [report.name, f.label, format(v.median, digits), v.runs.map((x) => format(x, digits)).join(" "), f.unit])
    }
  }
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length)))
  const lines = [header, ""]
  for (const r of rows) {
    lines.push([r[0].padEnd(widths[0]!), r[1].padEnd(widths[1]!), r[2].padStart(widths[2]!), r[3].padEnd(widths[3]!), r[4]].join("  ").trimEnd())
  }
  const ran = (name: SectionName) => reports.some((r) => r.name === name)
  const shown = ratios.filter((r) => ran(r.section))
  if (shown.length > 0) {
    lines.push("", "ratios (of the medians)")
    const w = Math.max(...shown.map((r) => r.label.length))
    for (const r of shown) {
      const v = quotient(reports, r.of, r.to)
      lines.push(`  ${r.label.padEnd(w)}  ${"na" in v ? `n/a (${v.na})` : format(v.median, 2)}`)
    }
  }
  lines.push("", "targets (issue 12)")
  const w = Math.max(...targets.map((t) => t.label.length))
  for (const t of targets) {
    const r = targetResult(reports, t, settings)
    const mark = r.met === null ? "n/a " : r.met ? "met " : "MISS"
    lines.push(`  ${mark}  ${t.label.padEnd(w)}  ${r.value === null ? `(${r.na})` : format(r.value, 2)}`)
  }
  return lines.join("\n")
}

/** The same results as Markdown tables, to paste into BENCHMARKS.md. */
export const toMarkdown = (header: string, reports: ReadonlyArray<SectionReport>, settings: Settings): string => {
  const lines = [header, "", "| section | figure | median | runs | unit |", "| --- | --- | ---: | --- | --- |"]
  for (const report of reports) {
    if (report.outcome.kind === "skipped") {
      lines.push(`| ${report.name} | skipped: ${report.outcome.reason} | | | |`)
      continue
    }
    if (report.outcome.kind === "failed") lines.push(`| ${report.name} | FAILED: ${report.outcome.error} | | | |`)
    for (const f of report.figures) {
      const v = valueOf(report, f.key)
      const digits = f.digits ?? 0
      lines.push("na" in v
        ? `| ${report.name} | ${f.label} | n/a (${v.na}) | | ${f.unit} |`
        : `| ${report.name} | ${f.label} | ${format(v.median, digits)} | ${v.runs.map((x) => format(x, digits)).join(" / ")} | ${f.unit} |`)
    }
  }
  const shown = ratios.filter((r) => reports.some((s) => s.name === r.section))
  if (shown.length > 0) {
    lines.push("", "| ratio (of the medians) | value |", "| --- | ---: |")
    for (const r of shown) {
      const v = quotient(reports, r.of, r.to)
      lines.push(`| ${r.label} | ${"na" in v ? `n/a (${v.na})` : format(v.median, 2)} |`)
    }
  }
  lines.push("", "| target (issue 12) | value | |", "| --- | ---: | --- |")
  for (const t of targets) {
    const r = targetResult(reports, t, settings)
    lines.push(`| ${t.label} | ${r.value === null ? `n/a (${r.na})` : format(r.value, 2)} | ${r.met === null ? "n/a" : r.met ? "met" : "missed"} |`)
  }
  return lines.join("\n")
}
