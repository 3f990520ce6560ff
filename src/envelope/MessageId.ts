/**
 * Message ids: unique and sortable (ULID layout: 26 characters of Crockford base32, a 48-bit
 * millisecond timestamp then 80 random bits). Within one process ids are strictly increasing, even
 * within one millisecond or when the clock steps back, so sorting ids sorts by creation order.
 * @since 0.1.0
 */
import { Clock, Effect } from "effect"

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
const TIME_LEN = 10
const RANDOM_LEN = 16
const MAX_TIME = 2 ** 48 - 1
const DECODE: Record<string, number> = {}
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET[i]!] = i

// Random bytes are drawn in blocks: one crypto call per 256 ids instead of one per id.
const POOL = new Uint8Array(256 * RANDOM_LEN)
let poolOffset = POOL.length

const randomDigits = (into: Uint8Array): void => {
  if (poolOffset + RANDOM_LEN > POOL.length) {
    crypto.getRandomValues(POOL)
    poolOffset = 0
  }
  // 16 digits of 5 bits each are the 80 random bits
  for (let i = 0; i < RANDOM_LEN; i++) into[i] = POOL[poolOffset + i]! & 31
  poolOffset += RANDOM_LEN
}

/** Adds one to the random part; false when all 80 bits were already set (overflow). */
const increment = (digits: Uint8Array): boolean => {
  for (let i = RANDOM_LEN - 1; i >= 0; i--) {
    if (digits[i]! < 31) {
      digits[i]! += 1
      return true
    }
    digits[i] = 0
  }
  return false
}

const encodeTime = (ms: number): string => {
  let out = ""
  let t = ms
  for (let i = 0; i < TIME_LEN; i++) {
    out = ALPHABET[t % 32]! + out
    t = Math.floor(t / 32)
  }
  return out
}

/**
 * A generator with its own ordering state: the ids it makes are strictly increasing. In the same
 * millisecond, or when `nowMs` is earlier than the previous call's, the previous id's random part
 * is incremented under the previous timestamp. `makeUnsafe` is the process-wide generator.
 * @category constructors @since 0.1.0
 */
export const makeGenerator = (): (nowMs: number) => string => {
  let lastTime = -1
  let lastTimePart = ""
  const lastRandom = new Uint8Array(RANDOM_LEN)
  return (nowMs) => {
    const now = Number.isFinite(nowMs) ? Math.min(Math.max(0, Math.floor(nowMs)), MAX_TIME) : 0
    if (now > lastTime) {
      lastTime = now
      lastTimePart = encodeTime(now)
      randomDigits(lastRandom)
    } else if (!increment(lastRandom)) {
      // 2^80 ids in one millisecond cannot happen in practice; borrow the next millisecond to stay ordered
      lastTime = Math.min(lastTime + 1, MAX_TIME)
      lastTimePart = encodeTime(lastTime)
      randomDigits(lastRandom)
    }
    let out = lastTimePart
    for (let i = 0; i < RANDOM_LEN; i++) out += ALPHABET[lastRandom[i]!]
    return out
  }
}

/**
 * Makes an id for the given epoch milliseconds, synchronously (for hot paths). Ids from one
 * process are strictly increasing, even within one millisecond or when the clock steps back
 * (then the id carries the latest timestamp seen).
 * @category constructors @since 0.1.0
 */
export const makeUnsafe: (nowMs: number) => string = makeGenerator()

/**
 * Makes an id from the current time of the `Clock` (so `TestClock` controls its timestamp).
 * @category constructors @since 0.1.0
 */
export const make: Effect.Effect<string> = Effect.map(Clock.currentTimeMillis, makeUnsafe)

const PATTERN = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/

/**
 * Whether `s` is a message id in canonical form (26 upper-case Crockford base32 characters).
 * @category guards @since 0.1.0
 */
export const isMessageId = (s: string): boolean => PATTERN.test(s)

/**
 * The epoch milliseconds encoded in an id; `NaN` when `id` is not a message id.
 * @category getters @since 0.1.0
 */
export const timestampOf = (id: string): number => {
  if (!isMessageId(id)) return Number.NaN
  let t = 0
  for (let i = 0; i < TIME_LEN; i++) t = t * 32 + DECODE[id[i]!]!
  return t
}
