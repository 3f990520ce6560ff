// The msgsys dashboard: plain browser JavaScript, no framework, no network beyond this worker.
// Every text from the server goes in with textContent (never innerHTML): subjects, errors and
// tenants are user data.
"use strict"

const POLL_MS = 2000
const state = { search: null, replayed: new Map(), detail: null }

// ---------------------------------------------------------------------------------------------
// small helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue
    if (k === "class") el.className = v
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? "" : String(v))
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

const svgNs = "http://www.w3.org/2000/svg"
function svg(tag, attrs) {
  const el = document.createElementNS(svgNs, tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  return el
}

async function api(path, options) {
  const response = await fetch("/api/" + path, options)
  const body = await response.json().catch(() => ({ error: "HTTP " + response.status }))
  if (!response.ok) throw new Error(body.error || "HTTP " + response.status)
  return body
}

function post(path) {
  return api(path, { method: "POST", headers: { "X-Msgsys-Action": "1" } })
}

function fill(tbody, rows, columns, emptyText) {
  tbody.replaceChildren(...(rows.length > 0 ? rows : [h("tr", {}, h("td", { class: "empty", colspan: columns }, emptyText))]))
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return s + "s"
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s"
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m"
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h"
}

// a long error is cut to a few lines; the whole text is in its tooltip
function errorCell(text) {
  const t = text || ""
  return h("td", { class: "err", title: t.length > 240 ? t : undefined }, t.length > 240 ? t.slice(0, 240) + "…" : t)
}

function time(ms) {
  return new Date(ms).toLocaleTimeString()
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return ""
  return ms < 1000 ? ms.toFixed(ms < 10 ? 1 : 0) + " ms" : (ms / 1000).toFixed(2) + " s"
}

function sparkline(values, color, max) {
  const w = 120, hgt = 26
  const top = Math.max(max === undefined ? 0 : max, ...values, 1e-9)
  const el = svg("svg", { class: "spark", viewBox: "0 0 " + w + " " + hgt, preserveAspectRatio: "none" })
  if (values.length < 2) return el
  const pts = values.map((v, i) => (i * w / (values.length - 1)).toFixed(1) + "," + (hgt - 2 - (v / top) * (hgt - 4)).toFixed(1))
  el.append(svg("polyline", { class: "area", points: "0," + hgt + " " + pts.join(" ") + " " + w + "," + hgt, fill: color }))
  el.append(svg("polyline", { points: pts.join(" "), stroke: color }))
  return el
}

// ---------------------------------------------------------------------------------------------
// the overview: totals, actors with sparklines, pools, workers

function series(activity, actor) {
  const runs = [], errors = [], inFlight = []
  for (let i = 1; i < activity.length; i++) {
    const a = activity[i - 1], b = activity[i]
    const x = a.actors[actor], y = b.actors[actor]
    if (!x || !y) continue
    const dt = Math.max(0.001, (b.at - a.at) / 1000)
    const dRuns = Math.max(0, y.runs - x.runs), dFailed = Math.max(0, y.failed - x.failed)
    runs.push(dRuns / dt)
    errors.push(dRuns > 0 ? dFailed / dRuns : 0)
    inFlight.push(y.inFlight)
  }
  return { runs, errors, inFlight }
}

function renderOverview(o) {
  const r = o.report
  document.getElementById("worker").textContent =
    o.worker.id + " · msgsys " + o.worker.version + " · up " + ago(r.at - o.worker.startedAt)
  document.getElementById("updated").textContent = "updated " + time(r.at)

  const sum = (k) => r.actors.reduce((n, a) => n + a[k], 0)
  const cards = [
    ["queued", sum("queued")], ["running", sum("running")], ["retrying", sum("retrying")],
    ["delayed", sum("delayed")], ["dead letters", r.deadLetters, r.deadLetters > 0], ["workers", r.workers.length]
  ]
  document.getElementById("totals").replaceChildren(...cards.map(([l, n, bad]) =>
    h("div", { class: "card" + (bad ? " bad" : ""), "data-total": l }, h("div", { class: "n" }, n), h("div", { class: "l" }, l))))

  const mine = new Map(o.worker.actors.map((a) => [a.name, a]))
  const rows = r.actors.map((a) => {
    const s = series(o.activity, a.name)
    const last = (xs) => xs.length > 0 ? xs[xs.length - 1] : 0
    const local = mine.get(a.name)
    return h("tr", { "data-actor": a.name },
      h("td", {}, h("b", {}, a.name), a.paused ? h("span", { class: "muted" }, " (paused)") : null),
      h("td", {}, a.pools.join(", ") || (local ? local.pool : "")),
      h("td", { class: "num", "data-field": "queued" }, a.queued),
      h("td", { class: "num", "data-field": "running" }, a.running),
      h("td", { class: "num" }, a.retrying),
      h("td", { class: "num" }, a.delayed),
      h("td", { class: "num" }, a.dead),
      h("td", {}, sparkline(s.runs, "#3b6fd8"), " ", last(s.runs).toFixed(1)),
      h("td", {}, sparkline(s.errors, "#d64545", 1), " ", (last(s.errors) * 100).toFixed(0) + "%"),
      h("td", {}, sparkline(s.inFlight, "#1f9d55", local ? local.concurrency : 1), " ", local ? local.inFlight + "/" + local.concurrency : ""))
  })
  fill(document.querySelector("#actors tbody"), rows, 10, "no actors yet: no task stream on this server")

  fill(document.querySelector("#pools tbody"), r.pools.map((p) =>
    h("tr", {},
      h("td", {}, h("b", {}, p.name)),
      h("td", {}, h("span", { class: "bar" }, h("span", { style: "width:" + Math.min(100, 100 * p.inFlight / Math.max(1, p.size)) + "%" })),
        p.inFlight + " / " + p.size),
      h("td", { class: "num" }, p.workers))), 3, "no live worker")

  fill(document.querySelector("#workers tbody"), r.workers.map((w) =>
    h("tr", {},
      h("td", { class: "mono" }, w.id),
      h("td", {}, w.version),
      h("td", {}, w.actors.map((a) => a.name).join(", ")),
      h("td", { class: "num" }, w.inFlight),
      h("td", {}, ago(r.at - w.since)),
      h("td", {}, ago(r.at - w.heartbeatAt) + " ago"))), 6, "no live worker")
}

// ---------------------------------------------------------------------------------------------
// failures, dead letters, schedules, audit search

function taskLink(id) {
  return h("a", { class: "task mono", onclick: () => showTask(id) }, id)
}

function renderFailures(rows) {
  fill(document.querySelector("#failures tbody"), rows.map((f) =>
    h("tr", {},
      h("td", {}, time(f.at)),
      h("td", {}, taskLink(f.taskId)),
      h("td", {}, f.subject),
      h("td", { class: "num" }, f.attempt),
      h("td", { class: f.step === "dead_lettered" ? "status-dead" : "status-failed" }, f.step === "dead_lettered" ? "dead-lettered" : "failed"),
      errorCell(f.error))), 6, "no failures in the last 24 hours")
}

async function replay(sequence, button) {
  button.disabled = true
  const note = document.getElementById("replay-result")
  try {
    const r = await post("dead-letters/" + sequence + "/replay")
    state.replayed.set(r.taskId, { sequence, status: "queued" })
    note.hidden = false
    note.replaceChildren("Dead letter #" + sequence + " replayed as task ", taskLink(r.taskId), ": ",
      h("b", { id: "replay-status", class: "status-queued", "data-task": r.taskId }, "queued"))
    refreshLetters()
    followReplay(r.taskId)
  } catch (e) {
    button.disabled = false
    note.hidden = false
    note.textContent = "Replay of #" + sequence + " failed: " + e.message
  }
}

async function followReplay(taskId) {
  for (let i = 0; i < 120; i++) {
    try {
      const t = await api("tasks/" + encodeURIComponent(taskId))
      const status = t.status ? t.status.status : "queued"
      const el = document.querySelector('#replay-status[data-task="' + CSS.escape(taskId) + '"]')
      if (el) {
        el.textContent = status
        el.className = "status-" + status
      }
      if (["succeeded", "dead", "cancelled"].includes(status)) return
    } catch (e) { /* try again */ }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

function renderLetters(page) {
  const total = page.letters.length + page.more
  document.getElementById("dlq-count").textContent = total === 0 ? "none" : total + " letter" + (total === 1 ? "" : "s")
  fill(document.querySelector("#dead-letters tbody"), page.letters.map(({ sequence, letter }) =>
    h("tr", { "data-dlq-seq": sequence, "data-task": letter.taskId },
      h("td", { class: "num" }, sequence),
      h("td", {}, taskLink(letter.taskId)),
      h("td", {}, letter.subject),
      h("td", {}, letter.tenant),
      h("td", {}, letter.reason),
      errorCell(letter.error.message),
      h("td", { class: "num" }, letter.attempts),
      h("td", {}, time(letter.deadLetteredAt)),
      h("td", {}, h("button", { class: "primary replay", onclick: (ev) => replay(sequence, ev.currentTarget) }, "Replay")))),
    9, "no dead letters")
}

function renderSchedules(s) {
  const box = document.getElementById("schedules")
  if (!s.scheduler) {
    box.replaceChildren(h("p", { class: "muted", id: "no-scheduler" }, "no scheduler: schedules appear here once a scheduler (or msgsys schedule add) has created its bucket"))
    return
  }
  const rows = s.schedules.map((x) =>
    h("tr", { "data-schedule": x.name },
      h("td", {}, h("b", {}, x.name)),
      h("td", { class: "mono" }, x.when),
      h("td", {}, x.subject + (x.tenant ? " (" + x.tenant + ")" : "")),
      h("td", {}, x.lastTick ? new Date(x.lastTick).toLocaleString() + " (" + ago(Date.now() - x.lastTick) + " ago)" : "never"),
      h("td", { class: "next-run" }, x.paused ? "paused" : x.nextRun ? new Date(x.nextRun).toLocaleString() + " (in " + ago(x.nextRun - Date.now()) + ")" : "none"),
      h("td", { class: "muted", title: "what ticks no scheduler enqueued in time become" }, "missed: " + x.missed),
      h("td", {}, h("button", {
        class: x.paused ? "resume" : "pause",
        onclick: async (ev) => {
          ev.currentTarget.disabled = true
          try { await post("schedules/" + encodeURIComponent(x.name) + "/" + (x.paused ? "resume" : "pause")) } catch (e) { alert(e.message) }
          refreshSchedules()
        }
      }, x.paused ? "Resume" : "Pause"))))
  const table = h("table", {}, h("thead", {}, h("tr", {}, ["schedule", "when", "task", "last run", "next run", "", ""].map((t) => h("th", {}, t)))), h("tbody"))
  fill(table.querySelector("tbody"), rows, 7, "no schedules")
  box.replaceChildren(table)
}

function renderTasks(rows) {
  fill(document.querySelector("#tasks tbody"), rows.map((t) =>
    h("tr", { "data-task": t.taskId },
      h("td", {}, taskLink(t.taskId)),
      h("td", {}, t.subject),
      h("td", {}, t.tenant),
      h("td", { class: "status-" + t.status }, t.status),
      h("td", {}, t.startedAt),
      h("td", { class: "num" }, fmtMs(t.durationMs)),
      h("td", { class: "num" }, t.retries),
      errorCell(t.error))), 8, state.search ? "no task matches" : "no tasks yet")
}

async function showTask(id) {
  const box = document.getElementById("task-detail")
  box.hidden = false
  box.replaceChildren(h("p", { class: "muted" }, "loading " + id + "…"))
  try {
    const t = await api("tasks/" + encodeURIComponent(id))
    const status = t.status ? t.status.status : "unknown (no stored status)"
    box.replaceChildren(
      h("h3", {}, "Task ", h("code", {}, id), " — ", h("span", { class: "status-" + status }, status)),
      h("table", {},
        h("thead", {}, h("tr", {}, ["when", "step", "attempt", "duration", "error"].map((x) => h("th", {}, x)))),
        h("tbody", {}, t.steps.map((s) => h("tr", {},
          h("td", {}, new Date(s.at).toLocaleString()), h("td", {}, s.step), h("td", { class: "num" }, s.attempt),
          h("td", { class: "num" }, fmtMs(s.durationMs)), h("td", { class: "err" }, s.error || ""))))))
    box.scrollIntoView({ block: "nearest" })
  } catch (e) {
    box.replaceChildren(h("p", { class: "err" }, e.message))
  }
}

// ---------------------------------------------------------------------------------------------
// polling

async function refreshOverview() {
  try {
    renderOverview(await api("overview"))
  } catch (e) {
    document.getElementById("updated").textContent = "cannot reach the worker: " + e.message
  }
  try {
    const r = await fetch("/readyz")
    const pill = document.getElementById("ready")
    pill.textContent = r.ok ? "ready" : "not ready"
    pill.className = "pill " + (r.ok ? "ok" : "bad")
    pill.title = await r.text()
  } catch (e) { /* shown above */ }
}

async function refreshLetters() {
  try { renderLetters(await api("dead-letters?limit=50")) } catch (e) { document.getElementById("dlq-count").textContent = e.message }
}
async function refreshSchedules() {
  try { renderSchedules(await api("schedules")) } catch (e) { document.getElementById("schedules").textContent = e.message }
}
async function refreshFailures() {
  try { renderFailures(await api("failures?limit=20")) } catch (e) { /* keep the last */ }
}
async function refreshTasks() {
  const q = new URLSearchParams(state.search || {})
  q.set("limit", "50")
  try { renderTasks(await api("tasks?" + q.toString())) } catch (e) { /* keep the last */ }
}

document.getElementById("search").addEventListener("submit", (ev) => {
  ev.preventDefault()
  const data = Object.fromEntries(new FormData(ev.currentTarget).entries())
  for (const k of Object.keys(data)) if (!String(data[k]).trim()) delete data[k]
  state.search = Object.keys(data).length > 0 ? data : null
  document.getElementById("search-mode").textContent = state.search ? "search results" : "newest tasks, live"
  refreshTasks()
})
document.getElementById("search").addEventListener("reset", () => {
  state.search = null
  document.getElementById("search-mode").textContent = "newest tasks, live"
  setTimeout(refreshTasks, 0)
})

async function tick() {
  await Promise.all([refreshOverview(), refreshLetters(), refreshFailures(), refreshSchedules(), state.search ? null : refreshTasks()])
  setTimeout(tick, POLL_MS)
}
tick()
