/**
 * PNG in, PNG out, in pure JavaScript: imagescript's own PNG codec (`imagescript/png/node.js`, with
 * its own inflate/deflate) and its framebuffer (`imagescript/v2/framebuffer.js`, for resizing).
 * The package's main entry loads native codecs (a `.node` file per platform) for JPEG, WebP and
 * GIF, which a compiled single-file executable cannot carry; these two modules need nothing else.
 */
// @ts-expect-error: the PNG codec ships no type declarations
import * as Codec from "imagescript/png/node.js"
import * as FramebufferModule from "imagescript/v2/framebuffer.js"

/** An image as RGBA bytes, 4 per pixel, row by row. */
export interface Rgba {
  readonly width: number
  readonly height: number
  readonly pixels: Uint8Array
}

const codec = Codec as {
  readonly decode: (bytes: Uint8Array) => Rgba
  readonly encode: (pixels: Uint8Array, options: { width: number; height: number; channels: number; level: number }) => Uint8Array
}

// a CommonJS module marked as ES: Bun's runtime and its bundler disagree on what its default import is
type FramebufferClass = typeof FramebufferModule.default
const framebufferExports = FramebufferModule as unknown as { readonly default: FramebufferClass | { readonly default: FramebufferClass } }
const Framebuffer: FramebufferClass = typeof framebufferExports.default === "function"
  ? framebufferExports.default
  : framebufferExports.default.default

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

/** Reads a PNG file's bytes; throws with the reason when they are not one. */
export const decode = (bytes: Uint8Array): Rgba => {
  if (bytes.length < 33 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) throw new Error("not a PNG file")
  return codec.decode(bytes)
}

/** Encodes RGBA pixels as a PNG (deflate level 0-9). */
export const encode = (image: Rgba, level = 3): Uint8Array =>
  codec.encode(image.pixels, { width: image.width, height: image.height, channels: 4, level })

/** Scales an image to `width`, keeping its aspect ratio (linear filtering). */
export const resizeToWidth = (image: Rgba, width: number): Rgba => {
  const height = Math.max(1, Math.round((image.height * width) / image.width))
  const frame = new Framebuffer(image.width, image.height, image.pixels.slice().buffer)
  frame.resize("linear", width, height)
  return { width: frame.width, height: frame.height, pixels: new Uint8Array(frame.u8) }
}

/** RGBA of a colour given as hue, saturation and lightness (each 0..1). */
export const hsl = (h: number, s: number, l: number): readonly [number, number, number] => {
  const a = s * Math.min(l, 1 - l)
  const f = (n: number) => {
    const k = (n + h * 12) % 12
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))))
  }
  return [f(0), f(8), f(4)]
}
