/**
 * The dashboard's files: one page, its stylesheet and its script, plain HTML, CSS and
 * JavaScript with no framework and nothing fetched from elsewhere, so it works offline. They are
 * imported as text, so a compiled binary carries them.
 * @since 0.1.0
 */
import css from "./dashboard/dashboard.css" with { type: "text" }
import script from "./dashboard/dashboard.client.js" with { type: "text" }
import page from "./dashboard/index.html" with { type: "text" }

/** A file to serve. @category models @since 0.1.0 */
export interface Asset {
  readonly body: string
  readonly contentType: string
}

// bun-types declares every .html import as an HTML bundle; imported as text it is a string
const html = page as unknown as string

const assets: ReadonlyMap<string, Asset> = new Map([
  ["/", { body: html, contentType: "text/html; charset=utf-8" }],
  ["/index.html", { body: html, contentType: "text/html; charset=utf-8" }],
  ["/dashboard.css", { body: css, contentType: "text/css; charset=utf-8" }],
  ["/dashboard.js", { body: script, contentType: "text/javascript; charset=utf-8" }]
])

/** The file at `path`, if the dashboard has one. @category serving @since 0.1.0 */
export const asset = (path: string): Asset | undefined => assets.get(path)
