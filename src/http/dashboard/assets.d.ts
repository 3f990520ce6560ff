// The dashboard's files are imported as text (Bun's `with { type: "text" }`), so they are part
// of the module graph: served without reading the disk, and embedded by `bun build --compile`.
declare module "*.css" {
  const text: string
  export default text
}
declare module "*.client.js" {
  const text: string
  export default text
}
