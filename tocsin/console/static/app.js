// Tocsin console: live alarm list over server-sent events, actions as POSTs. No framework.
"use strict";
const $ = (s, el = document) => el.querySelector(s);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const utc = (ns) => new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19);
const HIDDEN = ["shelved", "suppressed", "out_of_service"];
const RANK = { info: 0, warning: 1, critical: 2 };
let me = { may: [] }, alarms = [], selected = null;

async function api(path, body) {
  const opt = body === undefined ? {} : { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-Tocsin": "1" } };
  const r = await fetch(path, opt);
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

// ---------------------------------------------------------------- alarms
function visible(a) {
  const asset = $("#f-asset").value.trim(), sev = $("#f-sev").value, st = $("#f-state").value;
  if (asset && !a.asset.includes(asset)) return false;
  if (sev && RANK[a.severity] < RANK[sev]) return false;
  if (st) return a.state === st;
  return $("#f-hidden").checked || !HIDDEN.includes(a.state);
}

function buttons(a) {
  const b = [];
  const can = (x) => me.may.includes(x);
  if (can("ack") && ["unacknowledged", "returned_unacknowledged"].includes(a.state)) b.push(["ack", "Ack"]);
  if (can("reset") && a.state === "latched") b.push(["reset", "Reset"]);
  if (can("shelve") && !HIDDEN.includes(a.state)) b.push(["shelve", "Shelve"]);
  if (can("unshelve") && a.state === "shelved") b.push(["unshelve", "Unshelve"]);
  if (can("comment")) b.push(["comment", "Comment"]);
  if (can("remove_from_service") && a.state !== "out_of_service") b.push(["remove_from_service", "Out of service"]);
  if (can("return_to_service") && a.state === "out_of_service") b.push(["return_to_service", "Return to service"]);
  return b.map(([k, t]) => `<button class="act-${k}" data-act="${k}">${t}</button>`).join("");
}

function renderAlarms() {
  const rows = alarms.filter(visible).sort((x, y) => RANK[y.severity] - RANK[x.severity] || y.opened_ts - x.opened_ts);
  $("#count").textContent = `${rows.length} shown of ${alarms.length} listed`;
  $("#alarms tbody").innerHTML = rows.map((a) => `<tr data-id="${esc(a.alert_id)}" class="${a.severity} ${a.state}${a.alert_id === selected ? " sel" : ""}">
    <td>${utc(a.opened_ts)}</td><td>${a.severity}</td><td class="state">${a.state.replaceAll("_", " ")}</td>
    <td>${esc(a.point)}</td><td>${esc(a.message)}${a.shelve_reason ? `<br><em>shelved: ${esc(a.shelve_reason)} until ${utc(a.shelved_until)}</em>` : ""}${a.suppressed_by ? `<br><em>suppressed: ${esc(a.suppressed_by)}</em>` : ""}</td>
    <td>${esc(a.acked_by || a.shelved_by || a.oos_by || "")}</td><td>${buttons(a)}</td></tr>`).join("");
}

$("#alarms").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tr[data-id]");
  if (!tr) return;
  const id = tr.dataset.id, act = ev.target.dataset.act;
  if (act) action(id, act); else { selected = id; renderAlarms(); trend(id); }
});
for (const id of ["#f-asset", "#f-sev", "#f-state", "#f-hidden"]) $(id).addEventListener("input", renderAlarms);

function action(id, act) {
  const needsText = ["shelve", "comment", "remove_from_service"].includes(act);
  if (!needsText && act !== "ack") return api(`/api/alarms/${encodeURIComponent(id)}/${act}`, {}).catch((e) => alert(e.message));
  const dlg = $("#dlg");
  $("#dlg-title").textContent = `${act.replaceAll("_", " ")}: ${id}`;
  $("#dlg-minutes-l").hidden = act !== "shelve";
  $("#dlg-reason").value = ""; $("#dlg-error").textContent = "";
  dlg.onclose = null;
  $("#dlg-ok").onclick = async (ev) => {
    ev.preventDefault();
    try {
      await api(`/api/alarms/${encodeURIComponent(id)}/${act}`, { reason: $("#dlg-reason").value, minutes: $("#dlg-minutes").value });
      dlg.close();
    } catch (e) { $("#dlg-error").textContent = e.message; }
  };
  dlg.showModal();
}

function auditLine(r) {
  return `<li data-action="${esc(r.action)}"><b>${utc(r.ts)}</b> ${esc(r.user)}${r.role ? ` (${esc(r.role)})` : ""}: <b>${esc(r.action)}</b> ${esc(r.alert_id || r.point)}
    ${r.from_state ? `${esc(r.from_state)} &rarr; ` : ""}${esc(r.to_state)} &mdash; ${esc(r.reason)}</li>`;
}

// ---------------------------------------------------------------- trend (SVG, from InfluxDB)
async function trend(id) {
  const box = $("#trend"), svg = $("#trend-svg");
  box.hidden = false; $("#trend-title").textContent = `Trend around ${id}: loading`;
  let d;
  try { d = await api(`/api/trend/${encodeURIComponent(id)}`); }
  catch (e) { $("#trend-title").textContent = `Trend around ${id}: ${e.message}`; svg.innerHTML = ""; return; }
  const tags = [...new Set(d.rows.map((r) => r.tag))];
  $("#trend-title").textContent = `${d.asset}: ${d.rows.length} readings of ${tags.length} tags (each scaled to its range)`;
  if (!d.rows.length) { svg.innerHTML = ""; return; }
  const t0 = Math.min(...d.rows.map((r) => r.t)), t1 = Math.max(...d.rows.map((r) => r.t)) || t0 + 1;
  const X = (t) => 40 + (850 * (t - t0)) / Math.max(1, t1 - t0);
  const colors = ["#2e86c1", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d"];
  let out = `<line x1="${X(d.opened_ts / 1e6)}" x2="${X(d.opened_ts / 1e6)}" y1="0" y2="240" stroke="red" stroke-dasharray="4"/>`;
  tags.forEach((tag, i) => {
    const pts = d.rows.filter((r) => r.tag === tag && r.v !== null);
    const lo = Math.min(...pts.map((p) => p.v)), hi = Math.max(...pts.map((p) => p.v));
    const Y = (v) => 230 - (210 * (v - lo)) / Math.max(1e-9, hi - lo);
    out += `<polyline fill="none" stroke="${colors[i % 7]}" stroke-width="1.2" points="${pts.map((p) => `${X(p.t).toFixed(1)},${Y(p.v).toFixed(1)}`).join(" ")}"/>`;
    out += `<text x="${45 + i * 120}" y="255" fill="${colors[i % 7]}" font-size="11">${esc(tag)}</text>`;
  });
  svg.innerHTML = out;
}

// ---------------------------------------------------------------- assets, review, report
async function renderAssets() {
  const d = await api("/api/assets");
  $("#assets").innerHTML = Object.entries(d).map(([asset, v]) => {
    const s = v.scores, f = v.fusion;
    const models = s ? Object.entries(s.models).map(([k, m]) => m ? `${k}: ${m.score.toFixed(3)} / ${m.threshold.toFixed(3)} (x${m.ratio.toFixed(2)})` : `${k}: -`).join(" &middot; ") : "no scores yet";
    const post = f ? Object.entries(f.posterior).sort((a, b) => b[1] - a[1]).map(([k, p]) => `<div>${esc(k)} <span class="bar" style="width:${(p * 200).toFixed(0)}px"></span> ${p.toFixed(2)}</div>`).join("") : "<div>no fused alert yet</div>";
    return `<div class="card" data-asset="${esc(asset)}"><h3>${esc(asset)}</h3><div>${models}</div>
      <div>top tags: ${esc((s?.top_tags?.length ? s.top_tags : f?.top_tags || []).join(", ") || "-")}</div><h4>fault-type posterior</h4>${post}</div>`;
  }).join("") || "<p>No scores or fused alerts seen yet.</p>";
}

function renderReview(rows) {
  const can = me.may.includes("label");
  $("#review tbody").innerHTML = rows.map((r) => `<tr data-txn="${esc(r.txn_id)}"><td>${utc(r.ts)}</td><td>${esc(r.txn_id)}</td>
    <td>${esc(r.card_id)}</td><td>${esc(r.terminal_id)}</td><td>${r.score.toFixed(3)}</td><td>${esc(r.decision)}</td>
    <td>${can ? `<button data-v="fraud">Fraud</button><button data-v="legit">Legitimate</button>` : ""}</td></tr>`).join("");
}
$("#review").addEventListener("click", (ev) => {
  const v = ev.target.dataset.v, tr = ev.target.closest("tr[data-txn]");
  if (v && tr) api(`/api/review/${encodeURIComponent(tr.dataset.txn)}/${v}`, {}).catch((e) => alert(e.message));
});

async function renderReport() {
  const q = new URLSearchParams({ from: $("#r-from").value, to: $("#r-to").value, operators: $("#r-ops").value, source: $("#r-source").value });
  let r;
  try { r = await api(`/api/report?${q}`); } catch (e) { $("#report").innerHTML = `<p class="error">${esc(e.message)}</p>`; return; }
  const v = r.verdicts, ok = (k) => (v[k] ? '<span class="meets">meets</span>' : '<span class="fails">fails</span>');
  const p = r.priority_share, pct = (x) => `${(100 * x).toFixed(1)} %`;
  const max = Math.max(1, ...r.per_period);
  const bars = r.per_period.map((n, i) => `<rect x="${(i * 880) / r.periods + 10}" width="${Math.max(1, 880 / r.periods - 1)}" y="${150 - (140 * n) / max}" height="${(140 * n) / max}" fill="${n / r.operators > 10 ? "#c0392b" : "#2e86c1"}"/>`).join("");
  $("#report").innerHTML = `<table id="report-table"><tr><th>figure</th><th>value</th><th>target</th><th></th></tr>
    <tr><td>alarms / operator / 10 min, average</td><td>${r.avg_per_10min.toFixed(2)}</td><td>~1 acceptable, 2 max manageable</td><td>${ok("avg_per_10min")}</td></tr>
    <tr><td>alarms / operator / 10 min, peak</td><td>${r.peak_per_10min.toFixed(0)}</td><td>&le; 10</td><td>${ok("peak_per_10min")}</td></tr>
    <tr><td>10-minute periods in flood (&gt; 10)</td><td>${pct(r.flood_share)} (${r.flood_periods} of ${r.periods})</td><td>&lt; ~1 %</td><td>${ok("flood_share")}</td></tr>
    <tr><td>top-10 bad actors' share</td><td>${pct(r.top_share)}</td><td>~1-5 %</td><td>${ok("top10_share")}</td></tr>
    <tr><td>chattering alarms (&ge; 3 in 60 s)</td><td>${r.chattering.length}</td><td>none</td><td>${ok("chattering")}</td></tr>
    <tr><td>stale alarms (active &gt; 24 h)</td><td>${r.stale.length}</td><td>&lt; 5</td><td>${ok("stale")}</td></tr>
    <tr><td>priority low / medium / high</td><td>${pct(p.low)} / ${pct(p.medium)} / ${pct(p.high)}</td><td>~80 / 15 / 5 %</td><td>${ok("priority")}</td></tr></table>
    <h3>Alarms per 10 minutes (${r.annunciated} annunciated)</h3><svg viewBox="0 0 900 160" width="900" height="160">${bars}</svg>
    <h3>Top bad actors</h3><ol>${r.top.map((t) => `<li>${esc(t.point)}: ${t.count} (${pct(t.share)})</li>`).join("")}</ol>
    <h3>Chattering</h3><ul>${r.chattering.map((c) => `<li>${esc(c.point)}: ${c.max_in_window} within a minute, ${c.episodes} episode(s)</li>`).join("") || "<li>none</li>"}</ul>
    <h3>Stale</h3><ul>${r.stale.map((s) => `<li>${esc(s.alert_id)} (${esc(s.point)}): ${(s.active_s / 3600).toFixed(1)} h</li>`).join("") || "<li>none</li>"}</ul>`;
}
$("#r-go").addEventListener("click", renderReport);

// ---------------------------------------------------------------- tabs, live stream
function tab(name) {
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("on", a.dataset.tab === name);
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== `tab-${name}`;
  if (name === "assets") renderAssets();
  if (name === "review") api("/api/review").then(renderReview);
  if (name === "performance") renderReport();
}
window.addEventListener("hashchange", () => tab(location.hash.slice(1) || "alarms"));

async function main() {
  me = await api("/api/me");
  $("#me").textContent = `${me.user} (${me.role})`;
  $("#audit").innerHTML = (await api("/api/audit")).map(auditLine).join("");
  const es = new EventSource("/api/events");
  es.onopen = () => $("#live").classList.add("ok");
  es.onerror = () => $("#live").classList.remove("ok");
  es.addEventListener("alarms", (e) => { alarms = JSON.parse(e.data); renderAlarms(); });
  es.addEventListener("audit", (e) => $("#audit").insertAdjacentHTML("afterbegin", auditLine(JSON.parse(e.data))));
  es.addEventListener("review", (e) => renderReview(JSON.parse(e.data)));
  tab(location.hash.slice(1) || "alarms");
  setInterval(() => { if (!$("#tab-assets").hidden) renderAssets(); }, 5000);
}
main();
