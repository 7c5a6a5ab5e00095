// The alerts panel: watchlist alerts as they are written, over Server-Sent Events (GET /watchlists/events, which
// any API node serves from the catalog's alert log), each with the alert's crop beside the watchlist image, its
// score, camera, time and clip, and "Confirmed" / "False alert" buttons (POST /alerts/{id}/ack).
// Uses app.js's helpers ($, esc, api, fmtTime, key, withPurpose). EventSource sends the page's vsearch_key cookie.
"use strict";
let alertSource = null;

function alertsStatus(text, isError = false) { const s = $("alerts-status"); s.textContent = text; s.className = isError ? "error" : "hint"; }

function alertCard(a) {
  let li = document.querySelector(`#alerts li[data-alert="${a.id}"]`);
  const fresh = !li;
  if (fresh) { li = document.createElement("li"); li.dataset.alert = a.id; }
  li.className = `alert ${a.status}`;
  li.dataset.status = a.status;
  const clip = a.clip_id ? `<a class="clip" href="/clips/${encodeURIComponent(a.clip_id)}.mp4" target="_blank">Clip</a>` : '<span class="hint">no clip</span>';
  const verdict = a.status === "new" ? `<button type="button" class="confirm-btn">Confirmed</button> <button type="button" class="false-btn">False alert</button>`
    : `<span class="verdict-done">${a.status === "confirmed" ? "confirmed" : "false alert"} by ${esc(a.acked_by || "?")}</span>`;
  li.innerHTML = `<figure><img class="crop" alt="seen" src="/sightings/${a.sighting_id}/thumbnail.jpg"><figcaption>seen</figcaption></figure>
    <figure><img class="wanted" alt="wanted" src="/watchlists/${a.entry_id}/image.jpg"><figcaption>wanted</figcaption></figure>
    <div class="meta"><b>${esc(a.entry_name)}</b> · <span class="score">${(a.score * 100).toFixed(1)}%</span><br>
    ${esc(a.camera_id)} · ${fmtTime(a.time)}${a.tracks > 1 ? ` · ${a.tracks} tracks` : ""}<br>${clip}
    <div class="verdict">${verdict}</div></div>`;
  const ack = (v) => async () => {
    try { const r = await api(`/alerts/${a.id}/ack`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ verdict: v }) });
      alertCard({ ...a, status: r.status, acked_by: r.acked_by }); alertsStatus(`alert ${a.id}: ${r.status === "false" ? "false alert" : r.status}`);
    } catch (e) { alertsStatus(e.message, true); }
  };
  if (a.status === "new") {
    li.querySelector(".confirm-btn").addEventListener("click", ack("confirmed"));
    li.querySelector(".false-btn").addEventListener("click", ack("false"));
  }
  if (a.clip_id) li.querySelector(".clip").addEventListener("click", (e) => { e.preventDefault(); playAlert(a); });
  if (fresh) $("alerts").prepend(li);
  $("alerts-empty").hidden = true;
}

function playAlert(a) {
  $("player-title").textContent = `${a.entry_name} · ${a.camera_id} · ${fmtTime(a.time)} · score ${a.score.toFixed(3)}`;
  const v = $("video"), url = withPurpose(`/clips/${encodeURIComponent(a.clip_id)}.mp4`);  // the clip view is audited with its reason
  v.src = url; $("download").href = url; $("frame-link").href = `/sightings/${a.sighting_id}/frame.jpg`;
  $("player").showModal();
  v.play().catch(() => {});
}

function followAlerts() {
  if (alertSource) alertSource.close();
  if (!key()) { alertsStatus("enter your API key to see alerts"); return; }
  alertSource = new EventSource("/watchlists/events");  // reconnects by itself, resuming after the last event id
  alertSource.addEventListener("ready", () => alertsStatus("live: new alerts appear here as they are raised"));
  alertSource.addEventListener("alert", (ev) => alertCard(JSON.parse(ev.data)));
  alertSource.onerror = () => alertsStatus("alert stream interrupted, reconnecting…", true);
}

$("apikey").addEventListener("change", followAlerts);
followAlerts();
