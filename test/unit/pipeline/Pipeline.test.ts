import { describe, expect, test } from "bun:test"
import { Option, Schema } from "effect"
import * as Pipeline from "../../../src/pipeline/Pipeline.ts"
import * as PipelineHeader from "../../../src/pipeline/PipelineHeader.ts"
import * as Task from "../../../src/task/Task.ts"

const A = Task.make("p.a", { input: { n: Schema.Number }, output: { s: Schema.String } })
const B = Task.make("p.b", { input: { s: Schema.String }, output: { ok: Schema.Boolean } })
const C = Task.make("p.c", { input: { ok: Schema.Boolean }, output: { n: Schema.Number } })
const D = Task.make("p.d", { input: { ok: Schema.Boolean }, output: { m: Schema.String } })
const E = Task.make("p.e", {
  input: Schema.Tuple([Schema.Struct({ n: Schema.Number }), Schema.Struct({ m: Schema.String })]),
  output: { done: Schema.Boolean }
})

describe("chain and gather (definitions)", () => {
  test("a chain's plan lists its steps in order; a nested chain's steps are spliced in; a gather is one step of several tasks", () => {
    expect(Pipeline.planOf(Pipeline.chain(A, B, C))).toEqual(["p.a", "p.b", "p.c"])
    expect(Pipeline.planOf(Pipeline.chain(Pipeline.chain(A, B), C))).toEqual(["p.a", "p.b", "p.c"])
    expect(Pipeline.planOf(Pipeline.chain(A, B, Pipeline.gather([C, D]), E))).toEqual(["p.a", "p.b", ["p.c", "p.d"], "p.e"])
    // a gather of one task is still a gather: its output is a one-element tuple
    expect(Pipeline.planOf(Pipeline.gather([C]))).toEqual([["p.c"]])
    expect(Pipeline.planOf(Pipeline.chain(A))).toEqual(["p.a"])
  })

  test("the compiler refuses a chain whose step output does not fit the next step's input", () => {
    const ok: Pipeline.Pipeline<{ readonly n: number }, { readonly done: boolean }> = Pipeline.chain(A, B, Pipeline.gather([C, D]), E)
    expect(ok._tag).toBe("Pipeline")
    // @ts-expect-error A outputs { s }, C takes { ok }
    expect(Pipeline.planOf(Pipeline.chain(A, C))).toEqual(["p.a", "p.c"])
    // @ts-expect-error the gather outputs [{ n }, { m }], C takes { ok }
    Pipeline.chain(B, Pipeline.gather([C, D]), C)
    // a gather's input must fit every task of it: C and D take { ok }
    const g: Pipeline.Pipeline<{ readonly ok: boolean }, [{ readonly n: number }, { readonly m: string }]> = Pipeline.gather([C, D])
    expect(g.stages.length).toBe(1)
  })

  test("a definition that cannot run is refused when it is made, naming the problem and the fix", () => {
    const NoResult = Task.make("p.quiet", { input: { n: Schema.Number }, output: { n: Schema.Number }, result: false })
    expect(() => Pipeline.chain(NoResult)).toThrow(/task p\.quiet stores no result \(result: false\).*leave result at its default/)
    expect(() => Pipeline.gather([] as never)).toThrow(/a gather needs at least one task/)
    expect(() => Pipeline.gather(Array.from({ length: 101 }, () => C) as never)).toThrow(/101 tasks is over the limit of 100/)
    expect(() => Pipeline.chain(A, "p.b" as never)).toThrow(/step 2 is neither a task nor a pipeline/)
    const long = Array.from({ length: 150 }, (_, i) => Task.make(`p.step-with-a-rather-long-name-${i}`, { input: {}, output: {} }))
    expect(() => Pipeline.chain(...(long as unknown as [Task.Any]))).toThrow(/takes \d+ bytes in the header each step carries, over 4096: split it/)
    expect(() => Pipeline.chain(NoResult)).toThrow(Task.InvalidDefinition)
  })
})

describe("the pipeline header", () => {
  const plan = ["p.a", ["p.c", "p.d"], "p.e"]
  test("reads what it writes", () => {
    const header = { id: "P1", step: 2, child: 2, plan, priority: "high" as const }
    expect(PipelineHeader.decode(PipelineHeader.encode(header))).toEqual(Option.some(header))
  })
  test("a header that is not JSON, not a header, has an id or subject msgsys never makes, or names a step or task its plan does not have does not read", () => {
    for (
      const bad of [
        "not json",
        "{}",
        JSON.stringify({ id: "P1", step: 4, plan }),
        JSON.stringify({ id: "P1", step: 0, plan }),
        JSON.stringify({ id: "P1", step: 2, plan }), // a gather's task needs its number
        JSON.stringify({ id: "P1", step: 2, child: 3, plan }),
        JSON.stringify({ id: "P1", step: 1, child: 1, plan }), // a one-task step has none
        JSON.stringify({ id: "P.*", step: 1, plan }), // ids become keys and subjects
        JSON.stringify({ id: "P1", step: 1, plan: ["p.a", "p.>"] }),
        JSON.stringify({ id: "P1", step: 1, plan: ["p.a", []] })
      ]
    ) expect(PipelineHeader.decode(bad)).toEqual(Option.none())
  })
})
