// The runs page: plain JavaScript over the REST API, no build step.
"use strict";

const $ = (sel) => document.querySelector(sel);
const keyInput = $("#key");
keyInput.value = localStorage.getItem("sloflow-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("sloflow-key", keyInput.value.trim()); refresh(); });

function headers() {
  const key = keyInput.value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path) {
  const resp = await fetch(path, { headers: headers() });
  if (!resp.ok) {
    let message = `${resp.status}`;
    try { message = (await resp.json()).message || message; } catch (e) { /* not JSON */ }
    throw new Error(`${path}: ${message}`);
  }
  return resp.json();
}

function say(text) { $("#status").textContent = text; }
const fmt = (s) => (s == null ? "–" : s.toFixed(2));
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

function deadlineCell(run) {
  if (run.deadline_met === true) return '<span class="met">met</span>';
  if (run.deadline_met === false) return '<span class="missed">missed</span>';
  return "–";
}

let picked = new URLSearchParams(location.hash.slice(1)).get("run");

async function loadRuns() {
  const { runs } = await api("/v1/runs?limit=50");
  $("#runs tbody").innerHTML = runs.map((r) => {
    const took = r.finished_at && r.started_at ? r.finished_at - r.started_at : null;
    return `<tr data-run="${esc(r.id)}" class="${r.id === picked ? "picked" : ""}">
      <td>${new Date(r.created_at * 1000).toLocaleTimeString()}</td><td>${esc(r.workflow)}</td>
      <td class="${esc(r.status)}">${esc(r.status)}</td><td>${fmt(took)}</td><td>${fmt(r.slo_s)}</td><td>${deadlineCell(r)}</td></tr>`;
  }).join("");
  for (const row of document.querySelectorAll("#runs tbody tr")) {
    row.addEventListener("click", () => pick(row.dataset.run));
  }
  if (!picked && runs.length) pick(runs[0].id);
}

async function loadWorkers() {
  try {
    const body = await api("/v1/admin/workers");
    const workers = body.workers || body;
    $("#workers tbody").innerHTML = workers.map((w) => `<tr><td>${esc(w.id)}</td><td>${esc(w.model)}</td><td>${w.slots}</td>
      <td>${w.queued}</td><td>${w.running}</td><td>${w.draining ? "draining" : "serving"}</td></tr>`).join("");
  } catch (e) {
    $("#workers tbody").innerHTML = `<tr><td colspan="6">${esc(e.message)}</td></tr>`;
  }
}

// One run: its record, and its events followed live over SSE (read with fetch so the key can be sent).
let following = null;
let run = null;
let events = [];

async function pick(id) {
  picked = id;
  history.replaceState(null, "", `#run=${id}`);
  for (const row of document.querySelectorAll("#runs tbody tr")) row.classList.toggle("picked", row.dataset.run === id);
  if (following) following.abort();
  following = new AbortController();
  events = [];
  run = await api(`/v1/runs/${id}`);
  draw();
  follow(id, following.signal).catch((e) => { if (e.name !== "AbortError") say(e.message); });
}

async function follow(id, signal) {
  const resp = await fetch(`/v1/runs/${id}/events`, { headers: headers(), signal });
  if (!resp.ok) throw new Error(`events of ${id}: ${resp.status}`);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      const event = JSON.parse(data);
      if (event.kind === "token") continue; // text pieces: not drawn
      events.push(event);
      if (event.kind === "run_finished") run = await api(`/v1/runs/${id}`);
      draw();
    }
  }
}

// Stages as bars from start to end, the LLM calls of each under it (queue, prefill, decode), the deadline as a line.
function stagesOf() {
  const stages = [];
  const open = {};
  for (const e of events) {
    if (e.kind === "stage_started") {
      open[e.stage] = { name: e.stage, start: e.ts, end: null, failed: false, calls: [] };
      stages.push(open[e.stage]);
    } else if ((e.kind === "stage_finished" || e.kind === "stage_failed") && open[e.stage]) {
      open[e.stage].end = e.ts;
      open[e.stage].failed = e.kind === "stage_failed";
    } else if (e.kind === "llm_call" && open[e.stage]) {
      open[e.stage].calls.push(e.data);
    }
  }
  return stages;
}

function draw() {
  if (!run) return;
  $("#run-title").textContent = `${run.workflow} · ${run.id}`;
  const took = run.finished_at && run.started_at ? `${(run.finished_at - run.started_at).toFixed(2)} s` : "running";
  const met = run.deadline_met == null ? "" : run.deadline_met ? " · deadline met" : " · deadline missed";
  $("#run-summary").textContent = `${run.status} · ${took}${run.slo_s ? ` of an SLO of ${run.slo_s} s` : ""}${met}`;
  const stages = stagesOf();
  const t0 = run.created_at;
  const now = Date.now() / 1000;
  const t1 = Math.max(run.deadline || 0, run.finished_at || now, ...stages.map((s) => s.end || now)) + 0.01;
  const width = 900, label = 140, rowH = 22, callH = 8;
  const rows = stages.reduce((n, s) => n + 1 + s.calls.length, 0);
  const height = Math.max(rows * rowH + 30, 60);
  const x = (t) => label + ((t - t0) / (t1 - t0)) * (width - label - 10);
  const parts = [];
  let y = 10;
  for (const s of stages) {
    const end = s.end || now;
    parts.push(`<text x="4" y="${y + 14}" font-size="12">${esc(s.name)}</text>`);
    parts.push(`<rect class="stage" data-stage="${esc(s.name)}" x="${x(s.start)}" y="${y + 3}" width="${Math.max(x(end) - x(s.start), 1)}"
      height="14" fill="${s.failed ? "#f28b82" : s.end ? "#a8c7fa" : "#fde293"}"><title>${esc(s.name)}: ${(end - s.start).toFixed(3)} s</title></rect>`);
    y += rowH;
    for (const c of s.calls) {
      let at = c.started_at + 0;
      const bits = [["queue", c.queue_s || 0, "#bbb"], ["prefill", c.prefill_s || 0, "#f29900"], ["decode", c.decode_s || 0, "#1a73e8"]];
      parts.push(`<text x="14" y="${y + 9}" font-size="10" fill="#555">${esc(c.worker || "llm")}</text>`);
      for (const [what, secs, color] of bits) {
        parts.push(`<rect class="call ${what}" x="${x(at)}" y="${y + 2}" width="${Math.max(x(at + secs) - x(at), 1)}" height="${callH}" fill="${color}">
          <title>${what} ${secs.toFixed(3)} s on ${esc(c.worker)}</title></rect>`);
        at += secs;
      }
      y += rowH;
    }
  }
  if (run.deadline) {
    parts.push(`<line class="deadline" x1="${x(run.deadline)}" x2="${x(run.deadline)}" y1="0" y2="${height}" stroke="#c5221f" stroke-width="2"/>`);
  }
  parts.push(`<text x="${label}" y="${height - 4}" font-size="10" fill="#555">0 s</text>`);
  parts.push(`<text x="${width - 60}" y="${height - 4}" font-size="10" fill="#555">${(t1 - t0).toFixed(2)} s</text>`);
  $("#timeline").innerHTML = `<svg viewBox="0 0 ${width} ${height}" data-run="${esc(run.id)}" data-stages="${stages.length}" data-ended="${events.some((e) => e.kind === "run_finished")}">${parts.join("")}</svg>`;
  $("#calls tbody").innerHTML = stages.flatMap((s) => s.calls.map((c) => `<tr><td>${esc(s.name)}</td><td>${esc(c.worker)}</td>
    <td>${fmt(c.queue_s)}</td><td>${fmt(c.prefill_s)}</td><td>${fmt(c.decode_s)}</td><td>${c.prompt_tokens ?? "?"}/${c.completion_tokens}</td></tr>`)).join("");
}

async function refresh() {
  try {
    await Promise.all([loadRuns(), loadWorkers()]);
    say(`updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    say(e.message);
  }
}

refresh();
if (picked) pick(picked);
setInterval(refresh, 3000);
