/**
 * What a bench section is: a set of figures, measured once per run, with the setup and teardown
 * that are never timed. The sections live beside this folder, one module each.
 */

/** The sections, in the order they run and print. */
export const sectionNames = ["raw", "enqueue", "drain", "latency", "dispatch", "memory", "schedule", "events", "pipeline", "bullmq"] as const
export type SectionName = (typeof sectionNames)[number]

/** A figure that could not be measured, and why (printed as "n/a (why)"). */
export interface NotAvailable {
  readonly na: string
}
export const na = (reason: string): NotAvailable => ({ na: reason })
export const isNa = (u: unknown): u is NotAvailable => typeof u === "object" && u !== null && "na" in u

/** One measurement of a figure in one run. */
export type Sample = number | NotAvailable

export interface FigureSpec {
  readonly key: string
  readonly label: string
  readonly unit: string
  /** How many decimals to print. */
  readonly digits?: number
}

/** What every section is given. */
export interface Env {
  /** The embedded nats-server of this bench run. */
  readonly url: string
  /** A temp folder for this bench run, removed at the end. */
  readonly dir: string
  readonly settings: Settings
  /** A name unique in this bench run, for streams, actors and queues (letters and digits). */
  readonly unique: (base: string) => string
  /** Progress for people: stderr, never stdout. */
  readonly log: (message: string) => void
}

export interface Settings {
  readonly tasks: number
  readonly runs: number
  /** Publishes/enqueues in flight at once. */
  readonly inFlight: number
  /** The drain actor's concurrency. */
  readonly concurrency: number
  readonly latencyRate: number
  readonly latencySeconds: number
  readonly latencyWarmup: number
  /** Latency section: the producer process writes its own SQLite file instead of the worker's. */
  readonly separateSqlite: boolean
  readonly memoryTasks: number
  /** Messages of the untimed warm-up run before the measured runs (0: none). */
  readonly warmup: number
  readonly quick: boolean
}

/** A section's runs, set up. */
export interface Runner {
  /** One measured run: a sample for each figure. `index` counts from 0. */
  readonly run: (index: number) => Promise<Readonly<Record<string, Sample>>>
  readonly close: () => Promise<void>
}

export interface Section {
  readonly name: SectionName
  readonly title: string
  /** The figures, labelled for these settings. */
  readonly figures: (settings: Settings) => ReadonlyArray<FigureSpec>
  /** Prepares the runs (servers, warm-up). A string instead of a runner skips the section, with that reason. */
  readonly setup: (env: Env) => Promise<Runner | string>
}
