// Cases on the investigators' page: "Add to case" on each result, the case panel (items, route timeline with a
// lane per camera, a map of cameras with coordinates, companions, evidence export) and "people seen in this window".
// Plain JS over the REST API; uses app.js's helpers ($, esc, api, fmtTime, utc, play) and its last search.
"use strict";
let currentCase = null, searchSnapshot = null;

function caseStatus(text, isError = false) { const s = $("case-status"); s.textContent = text; s.className = isError ? "error" : "hint"; }

async function loadCases(selectId) {
  const sel = $("case-select");
  try {
    const cases = await api("/cases");
    sel.innerHTML = '<option value="">— choose a case —</option>' + cases.map((c) =>
      `<option value="${c.id}">#${c.id} ${esc(c.name)} (${c.items_count})</option>`).join("");
    if (selectId) sel.value = String(selectId);
    if (sel.value) await showCase(Number(sel.value)); else clearCase();
  } catch (e) { caseStatus(e.message, true); }
}

function clearCase() {
  currentCase = null;
  ["case-items", "companions"].forEach((id) => { $(id).innerHTML = ""; });
  $("route").innerHTML = ""; $("route-summary").textContent = ""; $("map").hidden = true;
  ["case-export", "case-companions", "case-close"].forEach((id) => { $(id).disabled = true; });
}

async function newCase(ev) {
  if (ev) ev.preventDefault();
  const name = $("case-name").value.trim();
  if (!name) { caseStatus("give the new case a name", true); return; }
  try {
    const c = await api("/cases", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }) });
    $("case-name").value = "";
    caseStatus(`opened case #${c.id}`);
    await loadCases(c.id);
  } catch (e) { caseStatus(e.message, true); }
}

async function addToCase(clipId, button) {
  if (!currentCase) { caseStatus("choose or open a case first", true); $("case-wrap").scrollIntoView(); return; }
  const form = new FormData();
  form.append("ids", clipId);
  if (queryFiles.length) form.append("query_image", queryFiles[0]);  // the (first) query image of the search
  if (searchSnapshot) form.append("filters", JSON.stringify(searchSnapshot));
  try {
    button.disabled = true;
    await api(`/cases/${currentCase.id}/items`, { method: "POST", body: form });
    button.textContent = "In case ✓";
    caseStatus(`added ${clipId} to case #${currentCase.id}`);
    await loadCases(currentCase.id);
  } catch (e) { button.disabled = false; caseStatus(e.message, true); }
}

async function showCase(id) {
  try {
    const c = await api(`/cases/${id}`);
    currentCase = c;
    $("case-export").disabled = $("case-companions").disabled = !c.items.length;
    $("case-close").disabled = !!c.closed_at;
    if (c.closed_at) caseStatus(`closed ${fmtTime(c.closed_at)}: ${c.close_reason} (its footage is no longer held from retention)`);
    $("companions").innerHTML = "";
    $("case-items").innerHTML = c.items.map((i) => `<li data-item="${i.id}"><img src="${esc(i.thumbnail_url)}" alt="">
      <span>${esc(i.camera_id)} · ${fmtTime(i.start)} → ${fmtTime(i.end).slice(11)}<br><span class="hint">${esc(i.kind)} ${esc(i.ref)} · added by ${esc(i.added_by)}</span></span>
      <button type="button" class="link-btn" data-remove="${i.id}">remove</button></li>`).join("") || '<li class="hint">No confirmed items yet: use "Add to case" on a search result.</li>';
    $("case-items").querySelectorAll("[data-remove]").forEach((b) => b.addEventListener("click", async () => {
      try { await api(`/cases/${id}/items/${b.dataset.remove}`, { method: "DELETE" }); await loadCases(id); } catch (e) { caseStatus(e.message, true); }
    }));
    const route = await api(`/cases/${id}/route`);
    drawRoute(route);
    drawMap(route);
  } catch (e) { caseStatus(e.message, true); }
}

function drawRoute(route) {
  const svg = $("route"), stops = route.stops;
  if (!stops.length) { svg.innerHTML = ""; $("route-summary").textContent = ""; return; }
  const cams = [...new Set(stops.map((s) => s.camera_id))];
  const t0 = Math.min(...stops.map((s) => s.start_ts_s)), t1 = Math.max(...stops.map((s) => s.end_ts_s));
  const W = 1000, left = 130, rowH = 30, H = cams.length * rowH + 26, span = Math.max(1, t1 - t0), sx = (t) => left + ((t - t0) / span) * (W - left - 10);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  let html = "";
  cams.forEach((cam, i) => {
    const name = (route.cameras[cam] && route.cameras[cam].name) || cam;
    html += `<g class="lane" data-camera="${esc(cam)}"><text x="4" y="${i * rowH + 19}">${esc(name)}</text><line x1="${left}" x2="${W - 6}" y1="${i * rowH + 15}" y2="${i * rowH + 15}" stroke="#d0d5dd"/></g>`;
  });
  route.moves.forEach((m) => {
    const y1 = cams.indexOf(m.from_camera) * rowH + 15, y2 = cams.indexOf(m.to_camera) * rowH + 15;
    html += `<line class="move ${m.kind}" x1="${sx(m.from_ts_s)}" x2="${sx(m.to_ts_s)}" y1="${y1}" y2="${y2}"><title>${m.kind} ${m.duration_s.toFixed(1)} s</title></line>`;
  });
  stops.forEach((s, k) => {
    const x = sx(s.start_ts_s), w = Math.max(5, sx(s.end_ts_s) - x), y = cams.indexOf(s.camera_id) * rowH + 6;
    html += `<rect class="stop" data-stop="${k}" x="${x}" y="${y}" width="${w}" height="18"><title>${esc(s.camera_id)} ${fmtTime(s.start)} → ${fmtTime(s.end).slice(11)} (${s.duration_s.toFixed(1)} s)</title></rect>`;
  });
  for (let k = 0; k <= 4; k++) {
    const x = left + (k / 4) * (W - left - 10), t = fmtTime(new Date((t0 + (k / 4) * span) * 1000).toISOString());
    html += `<text x="${x}" y="${H - 4}" text-anchor="${k === 0 ? "start" : k === 4 ? "end" : "middle"}">${k === 0 ? t : t.slice(11)}</text>`;
  }
  svg.innerHTML = html;
  const per = Object.entries(route.per_camera_s).map(([c, s]) => `${c} ${s.toFixed(0)} s`).join(", ");
  const transits = route.moves.filter((m) => m.kind === "transit").map((m) => `${m.from_camera}→${m.to_camera} ${m.duration_s.toFixed(0)} s`);
  $("route-summary").textContent = `${stops.length} stops · time per camera: ${per}` + (transits.length ? ` · transits: ${transits.join(", ")}` : "");
}

function drawMap(route) {
  const canvas = $("map"), located = Object.values(route.cameras).filter((c) => c.lat !== null && c.lon !== null);
  canvas.hidden = !located.length;
  if (!located.length) return;
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 40;
  const lats = located.map((c) => c.lat), lons = located.map((c) => c.lon);
  const la0 = Math.min(...lats), la1 = Math.max(...lats), lo0 = Math.min(...lons), lo1 = Math.max(...lons);
  const k = Math.cos(((la0 + la1) / 2) * Math.PI / 180);  // equirectangular: east-west degrees shrink with latitude
  const spanX = Math.max((lo1 - lo0) * k, 1e-6), spanY = Math.max(la1 - la0, 1e-6), s = Math.min((W - 2 * pad) / spanX, (H - 2 * pad) / spanY);
  const px = (c) => [W / 2 + ((c.lon - (lo0 + lo1) / 2) * k) * s, H / 2 - (c.lat - (la0 + la1) / 2) * s];
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  const path = route.stops.map((st) => route.cameras[st.camera_id]).filter((c) => c && c.lat !== null);
  ctx.strokeStyle = "#c4320a"; ctx.lineWidth = 2; ctx.beginPath();
  path.forEach((c, i) => { const [x, y] = px(c); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
  ctx.stroke();
  ctx.font = "12px system-ui, sans-serif";
  located.forEach((c) => {
    const [x, y] = px(c);
    ctx.fillStyle = "#1d2330"; ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI); ctx.fill();
    ctx.fillText(c.name || c.id, x + 8, y - 6);
  });
  canvas.dataset.points = String(located.length);
}

async function showCompanions() {
  if (!currentCase) return;
  const box = $("companions");
  box.innerHTML = '<p class="hint">looking…</p>';
  try {
    const rows = await api(`/cases/${currentCase.id}/companions`);
    box.innerHTML = rows.length ? "<h3>Seen with</h3>" + rows.slice(0, 10).map((c) => `<div class="companion">
      ${c.sighting_id ? `<img src="/sightings/${c.sighting_id}/thumbnail.jpg" alt="">` : ""}
      <span>#${c.rank} · ${c.visits} stay(s) · ${esc(c.cameras.join(", "))} · closest ${c.min_distance_h.toFixed(2)} heights</span></div>`).join("")
      : '<p class="hint">Nobody was seen close to this person in the confirmed items.</p>';
  } catch (e) { box.innerHTML = `<p class="error">${esc(e.message)}</p>`; }
}

// everyone but each item's own person is pixelated unless "unredacted" is chosen: that needs an admin and a reason
async function exportCase() {
  if (!currentCase) return;
  const redact = $("case-redact").value;
  let url = withPurpose(`/cases/${currentCase.id}/export?redact=${encodeURIComponent(redact)}`);
  if (redact === "none" && !purpose().reason) {
    const reason = (window.prompt("An unredacted export shows every bystander. Reason (audited):") || "").trim();
    if (!reason) { caseStatus("not exported: an unredacted export needs a reason", true); return; }
    url += `&reason=${encodeURIComponent(reason)}`;
  }
  caseStatus(`exporting (clips are rendered${redact === "none" ? "" : ", redacted"} and checked)…`);
  try {
    const res = await fetch(url, { method: "POST", headers: { "X-API-Key": key() } });
    if (!res.ok) { const b = await res.json().catch(() => null); throw new Error((b && b.detail) || res.statusText); }
    const blob = await res.blob(), link = $("case-export-link");
    link.href = URL.createObjectURL(blob); link.download = `case-${currentCase.id}-evidence.zip`; link.hidden = false;
    link.textContent = `Download evidence ZIP (${Math.round(blob.size / 1024)} KB)`;
    caseStatus(`exported; manifest sha256 ${res.headers.get("X-Manifest-SHA256")} (recorded in the audit log)`);
  } catch (e) { caseStatus(e.message, true); }
}

// closing a case ends its hold on footage (retention may then delete it): a reason is required and audited
async function closeCase() {
  if (!currentCase) return;
  const reason = (window.prompt(`Close case #${currentCase.id}? Its footage is then no longer held from deletion. Reason:`) || "").trim();
  if (!reason) { caseStatus("not closed: closing a case needs a reason", true); return; }
  try {
    await api(`/cases/${currentCase.id}/close`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ reason }) });
    await showCase(currentCase.id);
  } catch (e) { caseStatus(e.message, true); }
}

async function showPeople() {
  const box = $("people"), from = utc("from"), to = utc("to");
  if (!from || !to) { box.innerHTML = '<p class="error">Set From and To above to choose the window.</p>'; return; }
  box.innerHTML = '<p class="hint">grouping…</p>';
  try {
    const people = await api(`/identities?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
    box.innerHTML = `<p class="hint">${people.length} putative people (grouped by appearance; check before relying on it)</p>` +
      people.map((p) => `<div class="person"><img src="/sightings/${p.representative_sighting_id}/thumbnail.jpg" alt="">
      <span>${p.sightings} sightings · ${p.tracks.length} tracks<br>${esc(p.cameras.join(", "))}<br>${fmtTime(p.first_seen).slice(11)}–${fmtTime(p.last_seen).slice(11)}</span></div>`).join("");
  } catch (e) { box.innerHTML = `<p class="error">${esc(e.message)}</p>`; }
}

function decorateResults() {  // an "Add to case" button on each result card, once
  document.querySelectorAll("#results .card").forEach((card) => {
    if (card.querySelector(".add-case")) return;
    const b = document.createElement("button");
    b.type = "button"; b.className = "add-case"; b.textContent = "Add to case";
    b.addEventListener("click", (ev) => { ev.stopPropagation(); addToCase(card.dataset.clip, b); });
    card.appendChild(b);
  });
  searchSnapshot = {  // the filters of the search these results came from
    from: utc("from") || null, to: utc("to") || null, top_k: Number($("topk").value || 20),
    cameras: [...document.querySelectorAll("input[name=cam]:checked")].map((c) => c.value),
    upper: $("upper").value || null, lower: $("lower").value || null,
  };
}

function initCases() {
  new MutationObserver(decorateResults).observe($("results"), { childList: true });
  $("case-form").addEventListener("submit", newCase);
  $("case-select").addEventListener("change", () => { $("case-export-link").hidden = true; if ($("case-select").value) showCase(Number($("case-select").value)); else clearCase(); });
  $("case-export").addEventListener("click", exportCase);
  $("case-close").addEventListener("click", closeCase);
  $("case-companions").addEventListener("click", showCompanions);
  $("people-go").addEventListener("click", showPeople);
  $("apikey").addEventListener("change", () => loadCases());
  if (key()) loadCases();
}
initCases();
