/**
 * The web-app domain of the design guide: user-triggered jobs in the fast pool.
 *
 * - `webapp.email.send` writes the message to the outbox (`webapp/outbox/<message id>.eml`, one
 *   file per email, RFC 5322 headers and a text body), standing in for an SMTP relay. It is
 *   idempotent per message id: a file already there is the email already sent.
 * - `webapp.image.thumbnail` decodes an uploaded PNG (`webapp/uploads/<name>`), scales it to a
 *   width keeping its aspect ratio, and writes a PNG under `webapp/thumbnails/` — with
 *   imagescript's PNG codec and framebuffer, pure JavaScript (see PngImage.ts).
 */
import { Effect, Schema } from "effect"
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs"
import { basename, extname, join, relative } from "node:path"
import { Actor, Retry, Task } from "msgsys"
import { DataDir } from "../shared/DataDir.ts"
import * as PngImage from "./PngImage.ts"

const Address = Schema.String.check(Schema.isPattern(/^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/))

export const SendEmail = Task.make("webapp.email.send", {
  input: {
    to: Address,
    subject: Schema.String.check(Schema.isMaxLength(200)),
    text: Schema.String,
    /** The message id: the outbox file's name, and what makes sending idempotent. Default: the run's idempotency key. */
    messageId: Schema.optional(Schema.String.check(Schema.isPattern(/^[A-Za-z0-9._=-]{1,128}$/)))
  },
  output: { file: Schema.String, messageId: Schema.String, alreadySent: Schema.Boolean }
})

/** The upload is not there or not an image: no retry can help. */
export class NotAnImage extends Schema.TaggedError<NotAnImage>()("NotAnImage", { image: Schema.String, reason: Schema.String }) {
  override get message() {
    return `cannot make a thumbnail of ${this.image}: ${this.reason} (upload a PNG to webapp/uploads/)`
  }
}

export const Thumbnail = Task.make("webapp.image.thumbnail", {
  input: {
    /** A file name under `webapp/uploads/`. */
    image: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9._-]{1,128}$/)),
    width: Schema.Int.check(Schema.isBetween({ minimum: 16, maximum: 1024 }))
  },
  output: { file: Schema.String, width: Schema.Int, height: Schema.Int, bytes: Schema.Int },
  error: NotAnImage,
  permanent: ["NotAnImage"]
})

export const Webapp = Actor.make("webapp", {
  protocol: [SendEmail, Thumbnail],
  pool: "fast",
  concurrency: 8,
  timeout: "1 minute",
  retry: Retry.exponential({ base: "500 millis", maxAttempts: 5, cap: "30 seconds" })
})

/** A file name from any key (`<tenant>/<subject>/key/<key>` has slashes). */
const fileSafe = (s: string) => s.replace(/[^A-Za-z0-9._=-]+/g, "_").slice(0, 128)

export const WebappLive = Webapp.toLayer(Effect.gen(function*() {
  const data = yield* DataDir
  return Webapp.of({
    "webapp.email.send": ({ input, idempotencyKey, envelope }) =>
      Effect.sync(() => {
        const messageId = input.messageId ?? fileSafe(idempotencyKey)
        const outbox = data.dir("webapp", "outbox")
        const file = join(outbox, `${messageId}.eml`)
        if (existsSync(file)) return { file: relative(data.root, file), messageId, alreadySent: true }
        const eml = [
          `Message-ID: <${messageId}@msgsys.local>`,
          `Date: ${new Date(envelope.createdAt).toUTCString()}`,
          "From: msgsys demo <noreply@msgsys.local>",
          `To: ${input.to}`,
          `Subject: ${input.subject.replace(/[\r\n]+/g, " ")}`,
          `X-Correlation-Id: ${envelope.correlationId}`,
          "MIME-Version: 1.0",
          "Content-Type: text/plain; charset=utf-8",
          "",
          input.text,
          ""
        ].join("\r\n")
        // the whole file or none: a crash mid-write never leaves half an email that counts as sent
        writeFileSync(`${file}.tmp`, eml)
        renameSync(`${file}.tmp`, file)
        return { file: relative(data.root, file), messageId, alreadySent: false }
      }),
    "webapp.image.thumbnail": ({ input }) =>
      Effect.gen(function*() {
        const source = join(data.dir("webapp", "uploads"), input.image)
        if (!existsSync(source)) return yield* new NotAnImage({ image: input.image, reason: "no such upload" })
        const image = yield* Effect.try({
          try: () => PngImage.decode(readFileSync(source)),
          catch: (e) => new NotAnImage({ image: input.image, reason: e instanceof Error ? e.message : String(e) })
        })
        const thumb = PngImage.resizeToWidth(image, input.width)
        const png = PngImage.encode(thumb)
        mkdirSync(data.dir("webapp", "thumbnails"), { recursive: true })
        const file = join(data.dir("webapp", "thumbnails"), `${basename(input.image, extname(input.image))}-${input.width}.png`)
        writeFileSync(`${file}.tmp`, png)
        renameSync(`${file}.tmp`, file)
        return { file: relative(data.root, file), width: thumb.width, height: thumb.height, bytes: statSync(file).size }
      })
  })
}))

/** Makes a PNG upload: a seeded pattern of bands and circles, `width` × `height`. */
export const makeUpload = async (dir: string, name: string, width: number, height: number, seed: number) => {
  const pixels = new Uint8Array(width * height * 4)
  const hue = (seed * 47) % 360
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const band = Math.floor((x + y * 0.5 + seed * 13) / 24) % 2
      const d = Math.hypot(x - width / 2, y - height / 2) / Math.min(width, height)
      const light = band === 0 ? 0.55 : 0.4
      const [r, g, b] = PngImage.hsl(((hue + d * 120) % 360) / 360, 0.7, d < 0.3 ? light + 0.2 : light)
      const i = (y * width + x) * 4
      pixels[i] = r
      pixels[i + 1] = g
      pixels[i + 2] = b
      pixels[i + 3] = 255
    }
  }
  mkdirSync(dir, { recursive: true })
  const file = join(dir, name)
  writeFileSync(file, PngImage.encode({ width, height, pixels }, 1))
  return file
}
