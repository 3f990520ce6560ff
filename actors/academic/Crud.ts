/**
 * Typed CRUD event families (seed 003): from one entity schema and the name of its key field,
 * the four events of the entity — `<domain>.<entity>.created` (the whole entity), `.read` (its
 * key and who read it), `.updated` (its key and the changed fields only), `.deleted` (its key).
 * Every event also carries correlation (the envelope's correlation id) and source metadata
 * (`Msgsys-Source`, `Msgsys-User` headers), see `metadataOf`.
 */
import { Schema, Struct } from "effect"
import { type Envelope, Event } from "msgsys"

/** The fields of an entity with its key field alone. */
type KeyFields<F extends Schema.Struct.Fields, K extends keyof F> = { readonly [P in K]: F[K] }

/** The header naming the service that published an event. */
export const SourceHeader = "Msgsys-Source"
/** The header naming the user on whose behalf it was published. */
export const UserHeader = "Msgsys-User"

/** Who published an event and why: the seed's EventMetadata, read from the envelope. */
export interface Metadata {
  readonly eventId: string
  readonly source: string | undefined
  readonly userId: string | undefined
  readonly correlationId: string
  readonly causationId: string | undefined
  readonly tenant: string
  readonly publishedAt: number
}

/** The metadata of a received event. */
export const metadataOf = (envelope: Envelope.Envelope): Metadata => ({
  eventId: envelope.id,
  source: envelope.extra[SourceHeader],
  userId: envelope.extra[UserHeader],
  correlationId: envelope.correlationId,
  causationId: envelope.causationId,
  tenant: envelope.tenant,
  publishedAt: envelope.createdAt
})

/** The headers that carry source metadata on a publish. */
export const headersOf = (source: string, userId?: string): Record<string, string> => ({
  [SourceHeader]: source,
  ...(userId !== undefined ? { [UserHeader]: userId } : {})
})

/** The four events of one entity. */
export const family = <const Domain extends string, const Entity extends string, const F extends Schema.Struct.Fields, const K extends keyof F & string>(
  domain: Domain,
  entity: Entity,
  fields: F,
  key: K
) => {
  const schema = Schema.Struct(fields)
  const keyFields = { [key]: fields[key] } as unknown as KeyFields<F, K>
  const changes = schema.mapFields(Struct.map(Schema.optionalKey))
  const created = Event.make(`${domain}.${entity}.created`, { payload: schema })
  const read = Event.make(`${domain}.${entity}.read`, { payload: Schema.Struct({ ...keyFields, readBy: Schema.String }) })
  const updated = Event.make(`${domain}.${entity}.updated`, { payload: Schema.Struct({ ...keyFields, changes }) })
  const deleted = Event.make(`${domain}.${entity}.deleted`, { payload: Schema.Struct(keyFields) })
  return {
    entity,
    key,
    schema,
    created,
    read,
    updated,
    deleted,
    /** The four, in CRUD order. */
    events: [created, read, updated, deleted] as const,
    /** The key of an entity value. */
    keyOf: (value: typeof schema.Type): string => String((value as Record<string, unknown>)[key]),
    /** The fields of `next` that differ from `prev` (JSON equality), or undefined when none do. */
    diff: (prev: typeof schema.Type, next: typeof schema.Type): Partial<typeof schema.Type> | undefined => {
      const out: Record<string, unknown> = {}
      for (const k of Object.keys(fields)) {
        const a = (prev as Record<string, unknown>)[k]
        const b = (next as Record<string, unknown>)[k]
        if (JSON.stringify(a) !== JSON.stringify(b)) out[k] = b
      }
      return Object.keys(out).length === 0 ? undefined : out as Partial<typeof schema.Type>
    }
  }
}

/** Any family, as generic code (a service of every entity) sees it. */
export interface Family {
  readonly entity: string
  readonly key: string
  readonly schema: Schema.Struct<any>
  readonly created: Event.Any
  readonly read: Event.Any
  readonly updated: Event.Any
  readonly deleted: Event.Any
  readonly events: ReadonlyArray<Event.Any>
  readonly keyOf: (value: any) => string
  readonly diff: (prev: any, next: any) => object | undefined
}
