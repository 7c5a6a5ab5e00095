// vsearch web page: plain JS over the REST API. The API key lives in localStorage and in a cookie, so that
// <img> and <video> requests (which cannot send headers) are authorised too.
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
const COLOURS = ["black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown"];
// the attribute model's colours (vsearch.attributes): a description's top and bottom
const UPPER_COLOURS = ["black", "blue", "green", "gray", "purple", "red", "white", "yellow"];
const LOWER_COLOURS = ["black", "blue", "brown", "gray", "green", "pink", "purple", "white", "yellow"];
let queryFiles = [], chosenBox = null, lastResult = null, persons = [];
// investigator feedback on the results, by sighting id (each card's best sighting): sent with the next search
const marks = { confirmed: new Set(), rejected: new Set() };

function setKey(key) {
  localStorage.setItem("vsearch_key", key);
  document.cookie = `vsearch_key=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
}
function key() { return localStorage.getItem("vsearch_key") || ""; }
function status(text, isError = false) { const s = $("status"); s.textContent = text; s.className = isError ? "error" : ""; }

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { "X-API-Key": key(), ...(options.headers || {}) } });
  let body = null;
  try { body = await res.json(); } catch (_) { /* media or empty */ }
  if (!res.ok) throw new Error((body && body.detail) || `${res.status} ${res.statusText}`);
  return body;
}

async function loadCameras() {
  const box = $("cameras");
  try {
    const cams = await api("/cameras");
    box.innerHTML = "<legend>Cameras</legend>" + (cams.length ? cams.map((c) =>
      `<label><input type="checkbox" name="cam" value="${esc(c.id)}" checked> ${esc(c.id)} <span class="hint">(${esc(c.sightings)})</span></label>`).join(" ")
      : '<span class="hint">none ingested yet</span>');
  } catch (e) { box.innerHTML = `<legend>Cameras</legend><span class="hint">${esc(e.message)}</span>`; }
}

function showPreview(files) {
  // several images of the same person are searched together; a new query clears the marks of the last one
  queryFiles = [...files]; chosenBox = null; persons = [];
  marks.confirmed.clear(); marks.rejected.clear(); showMarks();
  const img = $("preview");
  img.onload = () => { $("preview-wrap").hidden = false; $("go").disabled = false; drawPersons([]); };
  img.src = URL.createObjectURL(queryFiles[0]);
  $("more").innerHTML = queryFiles.slice(1).map((f) => `<img alt="${esc(f.name)}" src="${URL.createObjectURL(f)}">`).join("");
  const kb = Math.round(queryFiles.reduce((a, f) => a + f.size, 0) / 1024);
  status(`query: ${queryFiles.map((f) => f.name).join(", ")} (${kb} KB)`);
}

function showMarks() {
  const n = marks.confirmed.size + marks.rejected.size;
  $("refine").hidden = n === 0;
  $("refine").textContent = `Search again with ${marks.confirmed.size} confirmed, ${marks.rejected.size} rejected`;
  document.querySelectorAll(".card").forEach((card) => {
    const id = Number(card.dataset.sighting);
    card.classList.toggle("same", marks.confirmed.has(id));
    card.classList.toggle("different", marks.rejected.has(id));
  });
}

function mark(id, verdict) {
  const [mine, other] = verdict === "same" ? [marks.confirmed, marks.rejected] : [marks.rejected, marks.confirmed];
  other.delete(id);
  if (mine.has(id)) mine.delete(id); else mine.add(id);
  showMarks();
}

function drawPersons(boxes) {
  const img = $("preview"), svg = $("persons");
  svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  svg.innerHTML = "";
  $("pick-hint").hidden = boxes.length < 2;
  boxes.forEach((b) => {
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    r.setAttribute("x", b[0]); r.setAttribute("y", b[1]); r.setAttribute("width", b[2] - b[0]); r.setAttribute("height", b[3] - b[1]);
    if (chosenBox && chosenBox.every((v, i) => Math.abs(v - b[i]) < 1)) r.classList.add("chosen");
    r.addEventListener("click", () => { chosenBox = b; search(); });
    svg.appendChild(r);
  });
}

// why the investigator looks: the reason typed and the case selected, recorded with each search, clip view and export
function purpose() {
  const p = {}, reason = $("reason").value.trim(), caseId = $("case-select") && $("case-select").value;
  if (reason) p.reason = reason;
  if (caseId) p.case_id = caseId;
  return p;
}
function withPurpose(url) {
  const q = new URLSearchParams(purpose()).toString();
  return q ? url + (url.includes("?") ? "&" : "?") + q : url;
}

function utc(inputId) { const v = $(inputId).value; return v ? v + (v.length === 16 ? ":00" : "") + "Z" : ""; }

async function search(ev) {
  if (ev) ev.preventDefault();
  if (!queryFiles.length) return;
  const form = new FormData();
  queryFiles.forEach((f) => form.append("image", f));
  marks.confirmed.forEach((id) => form.append("confirmed", id));
  marks.rejected.forEach((id) => form.append("rejected", id));
  if (utc("from")) form.append("from", utc("from"));
  if (utc("to")) form.append("to", utc("to"));
  const cams = [...document.querySelectorAll("input[name=cam]")];
  if (cams.length && cams.some((c) => !c.checked)) form.append("cameras", cams.filter((c) => c.checked).map((c) => c.value).join(",") || "-none-");
  if ($("upper").value) form.append("upper", $("upper").value);
  if ($("lower").value) form.append("lower", $("lower").value);
  form.append("top_k", $("topk").value || "20");
  if (chosenBox && queryFiles.length === 1) form.append("box", chosenBox.map(Math.round).join(","));
  Object.entries(purpose()).forEach(([k, v]) => form.append(k, v));
  status("searching…");
  $("go").disabled = true;
  try {
    const r = await api("/search", { method: "POST", body: form });
    lastResult = r;
    if (!chosenBox) persons = r.query.persons_xyxy;  // a search with a chosen box does not detect again
    drawPersons(persons);
    const refined = marks.confirmed.size + marks.rejected.size ? `; refined by ${marks.confirmed.size} confirmed, ${marks.rejected.size} rejected` : "";
    const unsearched = (r.unsearched || []).map((u) => `${u.from || "the start"} to ${u.to || "now"}`);
    status(`${r.clips.length} clips from ${r.candidates} sightings in the filters; query: ${r.queries.map((q) => q.source).join(", ")}${refined}; ` +
      `${Math.round(Object.values(r.latency_ms).reduce((a, b) => a + b, 0))} ms` +
      (unsearched.length ? `. WARNING: not searched (a shard owner is down): ${unsearched.join("; ")}` : ""), unsearched.length > 0);
    showResults(r.clips);
    showTimeline(r.clips);
  } catch (e) { status(e.message, true); } finally { $("go").disabled = false; }
}

// search by description: POST /find with the phrase or the chosen attributes, and the same filters as a search
async function describe(ev) {
  if (ev) ev.preventDefault();
  const body = { top_k: Number($("topk").value || 20), ...purpose() };
  if (body.case_id) body.case_id = Number(body.case_id);
  const phrase = $("phrase").value.trim();
  if (phrase) body.description = phrase;
  else {
    if ($("d-gender").value) body.gender = $("d-gender").value;
    body.carrying = [...document.querySelectorAll("input[name=d-carry]:checked")].map((c) => c.value);
    if ($("d-upper").value) body.upper = $("d-upper").value;
    if ($("d-lower").value) body.lower = $("d-lower").value;
  }
  if (utc("from")) body.from = utc("from");
  if (utc("to")) body.to = utc("to");
  const cams = [...document.querySelectorAll("input[name=cam]")];
  if (cams.length && cams.some((c) => !c.checked)) body.cameras = cams.filter((c) => c.checked).map((c) => c.value);
  if (body.cameras && !body.cameras.length) { status("no camera chosen", true); return; }
  status("finding…");
  $("find").disabled = true;
  try {
    const r = await api("/find", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    lastResult = r;
    const missing = r.without_attributes ? `; ${r.without_attributes} sightings have no attributes yet (vsearch reindex-attributes)` : "";
    status(`${r.clips.length} clips from ${r.candidates} sightings in the filters for ${JSON.stringify(r.description)}${missing}`);
    showResults(r.clips, false);
    showTimeline(r.clips);
  } catch (e) { status(e.message, true); } finally { $("find").disabled = false; }
}

function fmtTime(iso) { return iso.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, ""); }

function showResults(clips, markable = true) {
  $("results-wrap").hidden = false;
  $("results").innerHTML = clips.length ? "" : '<p class="hint">No matching sightings.</p>';
  clips.forEach((c, i) => {
    const card = document.createElement("div");
    card.className = "card"; card.dataset.clip = c.id; card.dataset.sighting = c.best.id;
    card.innerHTML = `<img loading="lazy" src="${esc(c.thumbnail_url)}" alt="match ${i + 1}">
      <div class="meta"><span class="score">${(c.score * 100).toFixed(1)}%</span> · ${esc(c.camera_id)}<br>
      ${fmtTime(c.start)} · ${c.duration_s.toFixed(0)} s<br><span class="hint">${esc(c.best.upper_color || "?")} / ${esc(c.best.lower_color || "?")}</span>
      ${markable ? `<div class="verdict"><button type="button" class="same-btn" title="This is the person: add to the query">Same person</button>
      <button type="button" class="different-btn" title="Not the person: rank it and look-alikes last">Not this person</button></div>` : ""}</div>`;
    card.addEventListener("click", () => play(c));
    if (markable) {
      card.querySelector(".same-btn").addEventListener("click", (e) => { e.stopPropagation(); mark(c.best.id, "same"); });
      card.querySelector(".different-btn").addEventListener("click", (e) => { e.stopPropagation(); mark(c.best.id, "different"); });
    }
    $("results").appendChild(card);
  });
  showMarks();
}

function showTimeline(clips) {
  const svg = $("timeline");
  $("timeline-wrap").hidden = !clips.length;
  if (!clips.length) return;
  const cams = [...new Set(clips.map((c) => c.camera_id))].sort();
  const t0 = Math.min(...clips.map((c) => c.start_ts_s)), t1 = Math.max(...clips.map((c) => c.end_ts_s));
  const W = 1000, left = 110, rowH = 26, H = cams.length * rowH + 24, span = Math.max(1, t1 - t0);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  let html = "";
  cams.forEach((cam, i) => { html += `<text x="4" y="${i * rowH + 17}">${esc(cam)}</text><line x1="${left}" x2="${W - 4}" y1="${i * rowH + 13}" y2="${i * rowH + 13}" stroke="#d0d5dd"/>`; });
  clips.forEach((c) => {
    const x = left + ((c.start_ts_s - t0) / span) * (W - left - 8), w = Math.max(4, ((c.end_ts_s - c.start_ts_s) / span) * (W - left - 8));
    const y = cams.indexOf(c.camera_id) * rowH + 5;
    html += `<rect class="mark" data-clip="${esc(c.id)}" x="${x}" y="${y}" width="${w}" height="16" opacity="${0.35 + 0.65 * Math.max(0, c.score)}"><title>${esc(c.camera_id)} ${fmtTime(c.start)} score ${c.score.toFixed(3)}</title></rect>`;
  });
  for (let k = 0; k <= 4; k++) {  // time axis: five ticks, the first with the date
    const x = left + (k / 4) * (W - left - 8), t = fmtTime(new Date((t0 + (k / 4) * span) * 1000).toISOString());
    html += `<line x1="${x}" x2="${x}" y1="${H - 20}" y2="${H - 14}" stroke="#98a2b3"/>` +
      `<text x="${x}" y="${H - 3}" text-anchor="${k === 0 ? "start" : k === 4 ? "end" : "middle"}">${k === 0 ? t : t.slice(11)}</text>`;
  }
  svg.innerHTML = html;
  svg.querySelectorAll(".mark").forEach((m) => m.addEventListener("click", () => play(clips.find((c) => c.id === m.dataset.clip))));
}

function play(c) {
  $("player-title").textContent = `${c.camera_id} · ${fmtTime(c.start)} → ${fmtTime(c.end)} · score ${c.score.toFixed(3)}`;
  const v = $("video");
  v.src = withPurpose(c.clip_url);
  $("download").href = withPurpose(c.clip_url);
  $("frame-link").href = c.frame_url;
  $("player").showModal();
  v.play().catch(() => {});
}

function init() {
  COLOURS.forEach((c) => { $("upper").add(new Option(c, c)); $("lower").add(new Option(c, c)); });
  UPPER_COLOURS.forEach((c) => $("d-upper").add(new Option(c, c)));
  LOWER_COLOURS.forEach((c) => $("d-lower").add(new Option(c, c)));
  $("describe").addEventListener("submit", describe);
  $("apikey").value = key();
  if (key()) setKey(key());
  $("apikey").addEventListener("change", () => { setKey($("apikey").value.trim()); loadCameras(); });
  $("file").addEventListener("change", (e) => e.target.files.length && showPreview(e.target.files));
  $("refine").addEventListener("click", () => search());
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files.length) showPreview(e.dataTransfer.files); });
  $("filters").addEventListener("submit", search);
  $("close").addEventListener("click", () => { $("video").pause(); $("player").close(); });
  if (key()) loadCameras();
}
init();
