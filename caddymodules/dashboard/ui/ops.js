"use strict";
// Operations views: runtime logs, usage charts, webhooks, alerts, workers, team members.
// Uses call, el, $, go, show, showError, me, team and current from app.js.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function myRole() {
  const t = me && me.teams.find((x) => x.id === Number(team));
  return t ? t.role : "";
}
const canAdmin = () => ["owner", "admin"].includes(myRole());

function fmtBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}
const fmtPct = (n) => `${n >= 10 ? Math.round(n) : n.toFixed(1)}%`;

function ago(ts) {
  if (!ts) return "never";
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ts).toLocaleString();
}

function loading(box, text) {
  box.replaceChildren(el("p", { className: "muted loading", textContent: text || "Loading…" }));
}

// A button that shows progress while its action runs and reports errors.
function action(label, fn, className) {
  const b = el("button", { className: className || "link", textContent: label, type: "button" });
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { await fn(); showError(null); } catch (err) { showError(err); }
    b.disabled = false;
  });
  return b;
}

// ---- charts -------------------------------------------------------------

// lineChart draws series over time as an inline SVG (attributes only: the
// page's CSP allows no inline styles). Each column has a <title> tooltip.
function lineChart({ title, times, series, fmt, limit }) {
  const W = 640, H = 180, L = 64, R = 12, T = 12, B = 26;
  const all = series.flatMap((s) => s.values).concat(limit ? [limit.value] : []);
  const max = Math.max(1e-9, ...all) * 1.1;
  const t0 = times[0], t1 = times[times.length - 1];
  const x = (t) => L + (t1 === t0 ? (W - L - R) / 2 : ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    g.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, fmt(v)));
  }
  const label = (t) => new Date(t).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  g.append(svg("text", { x: L, y: H - 6, class: "axis" }, label(t0)),
    svg("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "axis" }, label(t1)));
  if (limit) {
    g.append(svg("line", { x1: L, x2: W - R, y1: y(limit.value), y2: y(limit.value), class: "limit" }),
      svg("text", { x: W - R, y: y(limit.value) - 4, "text-anchor": "end", class: "axis" }, limit.label));
  }
  series.forEach((s, i) => {
    const pts = s.values.map((v, j) => `${x(times[j]).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    g.append(svg("polyline", { points: pts, class: `series s${i}` }));
    if (times.length === 1) g.append(svg("circle", { cx: x(times[0]), cy: y(s.values[0]), r: 3, class: `dot s${i}` }));
  });
  const colW = (W - L - R) / Math.max(times.length, 1);
  times.forEach((t, j) => {
    const tip = `${label(t)}\n` + series.map((s) => `${s.name}: ${fmt(s.values[j])}`).join("\n");
    g.append(svg("rect", { x: x(t) - colW / 2, y: T, width: colW, height: H - T - B, class: "hover" }, svg("title", {}, tip)));
  });
  const legend = el("div", { className: "legend" }, ...series.map((s, i) =>
    el("span", {}, el("i", { className: `key s${i}` }), s.name)));
  return el("figure", { className: "chart-box" }, el("figcaption", { textContent: title }), g, legend);
}

function usageCharts(box, data) {
  const pts = data.points;
  if (!pts.length) {
    box.replaceChildren(el("p", { className: "muted", textContent: "No usage recorded in this range yet: points appear within five minutes of the app running on a worker." }));
    return;
  }
  const times = pts.map((p) => new Date(p.at).getTime());
  const memLimit = data.limits && data.limits.memory_mb ? data.limits.memory_mb * 1048576 : 0;
  const memPeak = Math.max(...pts.map((p) => p.mem_bytes_max));
  const charts = [
    lineChart({ title: "CPU", times, fmt: fmtPct, series: [
      { name: "average", values: pts.map((p) => p.cpu_pct_avg) }, { name: "peak", values: pts.map((p) => p.cpu_pct_max) }] }),
    lineChart({ title: memLimit ? `Memory (limit ${fmtBytes(memLimit)})` : "Memory", times, fmt: fmtBytes,
      // The limit line is drawn once usage comes near it; far below, it
      // would flatten the curve into the axis.
      limit: memLimit && memPeak >= memLimit / 2 ? { value: memLimit, label: "limit" } : null,
      series: [{ name: "average", values: pts.map((p) => p.mem_bytes_avg) }, { name: "peak", values: pts.map((p) => p.mem_bytes_max) }] }),
    lineChart({ title: `Network per ${data.step_s / 60} min`, times, fmt: fmtBytes, series: [
      { name: "received", values: pts.map((p) => p.net_rx_bytes) }, { name: "sent", values: pts.map((p) => p.net_tx_bytes) }] }),
    lineChart({ title: "Disk", times, fmt: fmtBytes, series: [{ name: "used", values: pts.map((p) => p.disk_bytes) }] }),
  ];
  box.replaceChildren(...charts);
}

function rangePicker(box, onPick, initial) {
  box.replaceChildren(...["1h", "24h", "7d", "30d"].map((r) => {
    const b = el("button", { type: "button", className: r === initial ? "chip on" : "chip", textContent: r });
    b.addEventListener("click", () => {
      for (const c of box.children) c.className = "chip";
      b.className = "chip on";
      onPick(r);
    });
    return b;
  }));
}

let usageRange = "24h";

async function loadAppUsage() {
  const box = $("#usage-charts");
  loading(box, "Loading usage…");
  try {
    usageCharts(box, await call("GET", `/api/apps/${current.id}/usage?range=${usageRange}`));
  } catch (err) { box.replaceChildren(); showError(err); }
}

// ---- runtime logs ------------------------------------------------------

const MAX_LOG_LINES = 2000;
let liveWS = null;
let liveWanted = false;
let liveRetry = 0;
let olderBefore = 0;

function setLogState(text, cls, hint) {
  const b = $("#logs-state");
  b.textContent = text;
  b.className = `badge ${cls || ""}`;
  $("#logs-hint").textContent = hint || "";
}

function logLine(l) {
  const ts = new Date(l.ts).toLocaleTimeString();
  return el("div", { className: `logline ${l.stream}` }, el("span", { className: "ts", textContent: ts + " " }), l.line);
}

function appendLive(lines) {
  const pre = $("#runtime-log");
  const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  pre.append(...lines.map(logLine));
  while (pre.childElementCount > MAX_LOG_LINES) pre.firstElementChild.remove();
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

function liveClose() {
  liveWanted = false;
  if (liveWS) { const ws = liveWS; liveWS = null; ws.close(1000); }
}

function liveConnect() {
  liveClose();
  liveWanted = true;
  $("#logs-older").hidden = true;
  $("#logs-live-btn").hidden = true;
  const app = current.id;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/apps/${app}/logs/live`);
  liveWS = ws;
  setLogState("connecting…", "queued");
  ws.onopen = () => { liveRetry = 0; setLogState("live", "running", "New lines appear as the app writes them."); };
  ws.onmessage = (e) => {
    const fr = JSON.parse(e.data);
    if (fr.backlog) {
      $("#runtime-log").replaceChildren();
      if (!fr.lines.length) setLogState("live", "running", "Connected: no recent lines; waiting for the app to write some.");
    }
    appendLive(fr.lines);
  };
  ws.onclose = (e) => {
    if (liveWS !== ws) return;
    liveWS = null;
    if (e.code === 4401) { setLogState("stopped", "failed", "Your session ended: sign in again to follow the log."); return; }
    if (e.code === 4404) { setLogState("stopped", "failed", "This app was deleted."); return; }
    if (!liveWanted || !current || current.id !== app) return;
    const delay = Math.min(30000, 1000 * 2 ** liveRetry++);
    const why = e.code === 4408 ? "The log came faster than this page could show it." : "Connection lost.";
    setLogState("reconnecting", "queued", `${why} Reconnecting in ${Math.round(delay / 1000)}s…`);
    setTimeout(() => { if (liveWanted && !liveWS && current && current.id === app) liveConnect(); }, delay);
  };
}

async function searchLogs(older) {
  const d = formData($("#logs-search"));
  const params = new URLSearchParams({ limit: "200" });
  if (d.q) params.set("q", d.q);
  if (d.stream) params.set("stream", d.stream);
  if (d.since) params.set("since", d.since);
  if (older) params.set("before", String(olderBefore));
  liveClose();
  $("#logs-live-btn").hidden = false;
  setLogState("searching…", "queued");
  try {
    const res = await call("GET", `/api/apps/${current.id}/logs?${params}`);
    const nodes = res.lines.slice().reverse().map(logLine);
    const pre = $("#runtime-log");
    if (older) pre.prepend(...nodes); else { pre.replaceChildren(...nodes); pre.scrollTop = pre.scrollHeight; }
    olderBefore = res.next_before || 0;
    $("#logs-older").hidden = !olderBefore;
    const shown = pre.childElementCount;
    setLogState("history", "", shown ? `${shown} stored line${shown === 1 ? "" : "s"}${d.q ? ` containing “${d.q}”` : ""}, oldest first.` : "No stored line matches.");
  } catch (err) { setLogState("history", "failed"); showError(err); }
}

// ---- alerts -------------------------------------------------------------

const alertKinds = {
  cpu: { unit: "% CPU", hint: "average CPU above this percentage of one core" },
  memory: { unit: "MB", hint: "peak memory above this many MB" },
  disk: { unit: "MB", hint: "disk use above this many MB" },
  network: { unit: "bytes/s", hint: "network traffic above this rate" },
  offline: { hint: "the app's worker stops answering" },
  crashloop: { hint: "the app keeps crashing" },
  deployment_failed: { hint: "the latest deployment failed" },
};

function alertItem(a, withApp) {
  const state = a.resolved_at ? el("span", { className: "badge succeeded", textContent: "resolved" }) : el("span", { className: "badge failed", textContent: "open" });
  return el("li", {}, state, " ", el("strong", { textContent: a.message || a.kind }), withApp ? ` · ${a.app_slug}` : "",
    el("div", { className: "muted", textContent: `fired ${ago(a.fired_at)}` + (a.resolved_at ? `, resolved ${ago(a.resolved_at)}` : "") }));
}

async function loadAlerts() {
  const [{ alerts }, { rules }] = await Promise.all([
    call("GET", `/api/apps/${current.id}/alerts`), call("GET", `/api/apps/${current.id}/alert-rules`)]);
  const list = $("#alert-list");
  list.replaceChildren(...alerts.slice(0, 20).map((a) => alertItem(a, false)));
  if (!alerts.length) list.replaceChildren(el("li", { className: "muted", textContent: "No alerts so far." }));
  const rl = $("#rule-list");
  rl.replaceChildren(...rules.map((r) => {
    const k = alertKinds[r.kind] || {};
    const what = k.unit ? `${r.kind} above ${r.threshold} ${k.unit}` : k.hint || r.kind;
    const li = el("li", {}, r.firing ? el("span", { className: "badge failed", textContent: "firing" }) : el("span", { className: `badge ${r.enabled ? "running" : ""}`, textContent: r.enabled ? "on" : "off" }),
      " ", el("strong", { textContent: what }), ` for ${r.sustain_s}s `);
    if (canAdmin()) {
      li.append(action(r.enabled ? "turn off" : "turn on", async () => {
        await call("PATCH", `/api/apps/${current.id}/alert-rules/${r.id}`, { enabled: !r.enabled }); await loadAlerts();
      }), " ", action("delete", async () => {
        await call("DELETE", `/api/apps/${current.id}/alert-rules/${r.id}`); await loadAlerts();
      }));
    }
    return li;
  }));
  if (!rules.length) rl.replaceChildren(el("li", { className: "muted", textContent: "No rules: add one below to be alerted." }));
  $("#rule-form").hidden = !canAdmin();
}

function ruleKindChanged() {
  const f = $("#rule-form");
  const k = alertKinds[f.kind.value];
  f.threshold.disabled = !k.unit;
  f.threshold.placeholder = k.unit ? `threshold (${k.unit})` : "no threshold";
  $("#rule-hint").textContent = `Alerts when ${k.hint}.`;
}

// ---- webhooks ------------------------------------------------------------

async function renderWebhooks(box, appId) {
  if (!canAdmin()) {
    box.replaceChildren(el("p", { className: "muted", textContent: "Owners and admins of the team manage webhooks." }));
    return;
  }
  loading(box, "Loading webhooks…");
  const q = appId ? `?app=${appId}` : "";
  const { webhooks, events } = await call("GET", `/api/teams/${team}/webhooks${q}`);
  const shown = appId ? webhooks : webhooks.filter((w) => !w.app_id);
  const secretBox = el("div", { className: "secret", hidden: true });
  const list = el("ul", { className: "hooks" }, ...shown.map((w) => {
    const deliveries = el("div", { hidden: true });
    const li = el("li", {}, el("span", { className: `badge ${w.enabled ? "running" : ""}`, textContent: w.enabled ? "on" : "off" }), " ",
      el("code", { textContent: w.url }), " ", el("span", { className: "muted", textContent: `${w.kind} · ${w.events.join(", ")}${w.app_id ? "" : " · all apps"}` }),
      el("div", { className: "row" },
        action("send test", async () => {
          const r = await call("POST", `/api/teams/${team}/webhooks/${w.id}/test`);
          if (!r.ok) throw new Error(`Test delivery failed: ${r.error}`);
          secretBox.hidden = false;
          secretBox.replaceChildren(`Test delivered (HTTP ${r.status || "ok"}).`);
        }),
        action(w.enabled ? "turn off" : "turn on", async () => {
          await call("PATCH", `/api/teams/${team}/webhooks/${w.id}`, { enabled: !w.enabled }); await renderWebhooks(box, appId);
        }),
        w.kind === "http" ? action("rotate secret", async () => {
          const r = await call("POST", `/api/teams/${team}/webhooks/${w.id}/rotate-secret`);
          showSecret(secretBox, r.secret, "New signing secret (the previous one keeps signing until the next rotation):");
        }) : "",
        action("deliveries", async () => {
          deliveries.hidden = !deliveries.hidden;
          if (deliveries.hidden) return;
          loading(deliveries);
          const { deliveries: ds } = await call("GET", `/api/teams/${team}/webhooks/${w.id}/deliveries`);
          deliveries.replaceChildren(ds.length ? el("table", {}, el("tbody", {}, ...ds.map((d) => el("tr", {},
            el("td", { textContent: d.event }), el("td", {}, el("span", { className: `badge ${d.state}`, textContent: d.state })),
            el("td", { textContent: d.last_status ? `HTTP ${d.last_status}` : "" }), el("td", { textContent: `${d.attempts} attempt(s)` }),
            el("td", { className: "muted", textContent: d.last_error || ago(d.delivered_at || d.created_at) }))))) : el("p", { className: "muted", textContent: "No deliveries yet." }));
        }),
        action("delete", async () => { await call("DELETE", `/api/teams/${team}/webhooks/${w.id}`); await renderWebhooks(box, appId); })),
      deliveries);
    return li;
  }));
  if (!shown.length) list.replaceChildren(el("li", { className: "muted", textContent: appId ? "No webhooks for this app yet." : "No team-wide webhooks yet." }));
  const form = el("form", { className: "inline wrap" },
    el("select", { name: "kind", ariaLabel: "Kind" }, el("option", { value: "http", textContent: "HTTPS endpoint (signed)" }), el("option", { value: "shoutrrr", textContent: "Chat channel (Shoutrrr URL)" })),
    el("input", { name: "url", placeholder: "https://example.com/hooks/wisehosting", required: true, ariaLabel: "URL" }),
    el("select", { name: "events", multiple: true, size: 3, ariaLabel: "Events" }, ...events.map((e) => el("option", { value: e, textContent: e === "*" ? "every event" : e, selected: e === "*" }))),
    el("button", { type: "submit", textContent: "Add webhook" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { kind: form.kind.value, url: form.url.value, events: [...form.events.selectedOptions].map((o) => o.value) };
    if (appId) body.app_id = appId;
    const btn = form.querySelector("button");
    btn.disabled = true;
    try {
      const w = await call("POST", `/api/teams/${team}/webhooks`, body);
      showError(null);
      await renderWebhooks(box, appId);
      if (w.secret) showSecret(box.querySelector(".secret"), w.secret, "Signing secret: copy it now, it is not shown again.");
    } catch (err) { showError(err); }
    btn.disabled = false;
  });
  box.replaceChildren(list, secretBox, form);
}

function showSecret(box, secret, text) {
  box.hidden = false;
  box.replaceChildren(text, " ", el("code", { textContent: secret }));
}

// ---- app view -----------------------------------------------------------

function opsOpenApp() {
  liveClose();
  for (const id of ["#ops-logs", "#ops-usage", "#ops-alerts", "#ops-hooks"]) if ($(id).open) $(id).dispatchEvent(new Event("toggle"));
}

// opsShow runs whenever app.js switches the view.
function opsShow(id) {
  if (id !== "app") liveClose();
  const admin = me && me.user && me.user.is_admin;
  $("#nav-workers").hidden = !admin;
}

// ---- team page ---------------------------------------------------------

async function openTeam() {
  show("team-page");
  liveClose();
  const t = me.teams.find((x) => x.id === Number(team));
  $("#team-title").textContent = t ? `${t.name}` : "No team";
  $("#team-meta").textContent = t ? `${t.slug} · plan ${t.plan} · your role: ${t.role}` : "Create a team below.";
  if (!t) return;
  $("#member-form").hidden = !canAdmin();
  $("#invite-box").hidden = !canAdmin();
  $("#invite-link").hidden = true;
  $("#team-audit-box").hidden = !canAdmin();
  const tasks = [loadMembers(), loadTeamUsage(), loadTeamAlerts(), renderWebhooks($("#team-hooks"), 0), loadGitConnections()];
  if (canAdmin()) tasks.push(loadAudit(), loadInvites());
  for (const r of await Promise.allSettled(tasks)) if (r.status === "rejected") showError(r.reason);
}

async function loadMembers() {
  const { members } = await call("GET", `/api/teams/${team}/members`);
  const role = myRole();
  $("#member-list tbody").replaceChildren(...members.map((m) => {
    const cell = el("td");
    const manageable = m.you || role === "owner" || (role === "admin" && m.role !== "owner");
    if (canAdmin() && manageable) {
      const sel = el("select", { ariaLabel: `Role of ${m.email}` }, ...["member", "admin", "owner"]
        .filter((r) => role === "owner" || r !== "owner" || m.role === "owner")
        .map((r) => el("option", { value: r, textContent: r, selected: r === m.role })));
      sel.addEventListener("change", async () => {
        try { await call("PATCH", `/api/teams/${team}/members/${m.user_id}`, { role: sel.value }); showError(null); } catch (err) { showError(err); }
        await loadMembers();
      });
      cell.append(sel);
    } else cell.append(m.role);
    const row = el("tr", {}, el("td", { textContent: m.email + (m.you ? " (you)" : "") }), el("td", { textContent: m.name }), cell,
      el("td", { textContent: new Date(m.since).toLocaleDateString() }), el("td"));
    if ((canAdmin() && manageable) || m.you) {
      row.lastChild.append(action(m.you ? "leave team" : "remove", async () => {
        await call("DELETE", `/api/teams/${team}/members/${m.user_id}`);
        if (m.you) { location.assign("/"); return; }
        await loadMembers();
      }));
    }
    return row;
  }));
}

// loadInvites lists the team's pending invitations (admins).
async function loadInvites() {
  const { invitations } = await call("GET", `/api/teams/${team}/invitations`);
  $("#invite-list").replaceChildren(...invitations.map((i) => el("li", {},
    `${i.email} as ${i.role}, until ${new Date(i.expires_at).toLocaleDateString()} `,
    action("revoke", async () => { await call("DELETE", `/api/teams/${team}/invitations/${i.id}`); await loadInvites(); }))));
}

let teamRange = "24h";

async function loadTeamUsage() {
  const box = $("#team-usage");
  loading(box, "Loading usage…");
  const data = await call("GET", `/api/teams/${team}/usage?range=${teamRange}`);
  const charts = el("div", { className: "charts" });
  usageCharts(charts, data);
  const table = el("table", {}, el("thead", {}, el("tr", {}, ...["App", "Status", "CPU avg", "CPU peak", "Memory peak", "Received", "Sent", "Disk"].map((h) => el("th", { textContent: h })))),
    el("tbody", {}, ...data.apps.map((a) => el("tr", {}, el("td", { textContent: a.name }), el("td", {}, el("span", { className: `badge ${a.status}`, textContent: a.status })),
      el("td", { textContent: fmtPct(a.cpu_pct_avg) }), el("td", { textContent: fmtPct(a.cpu_pct_max) }), el("td", { textContent: fmtBytes(a.mem_bytes_max) }),
      el("td", { textContent: fmtBytes(a.net_rx_bytes) }), el("td", { textContent: fmtBytes(a.net_tx_bytes) }), el("td", { textContent: fmtBytes(a.disk_bytes) })))));
  box.replaceChildren(charts, table);
}

async function loadTeamAlerts() {
  const { alerts } = await call("GET", `/api/teams/${team}/alerts?state=open`);
  const list = $("#team-alerts");
  list.replaceChildren(...alerts.map((a) => alertItem(a, true)));
  if (!alerts.length) list.replaceChildren(el("li", { className: "muted", textContent: "No open alerts." }));
}

async function loadAudit() {
  const { events } = await call("GET", `/api/teams/${team}/audit`);
  $("#team-audit tbody").replaceChildren(...events.map((e) => el("tr", {},
    el("td", { textContent: new Date(e.at).toLocaleString() }), el("td", { textContent: e.user || "system" }),
    el("td", {}, el("code", { textContent: e.action })), el("td", { textContent: e.target }), el("td", { className: "muted", textContent: e.ip }))));
}

// ---- workers page ------------------------------------------------------

function drainButton(w) {
  if (w.status === "revoked") return "";
  const draining = w.status === "draining";
  const b = el("button", { className: "link", textContent: draining ? "resume" : "drain" });
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { await call("POST", `/api/workers/${w.id}/${draining ? "resume" : "drain"}`); showError(null); await openWorkers(); } catch (err) { showError(err); b.disabled = false; }
  });
  return b;
}

async function openWorkers() {
  show("workers-page");
  liveClose();
  const body = $("#worker-list tbody");
  body.replaceChildren(el("tr", {}, el("td", { colSpan: 9, className: "muted", textContent: "Loading workers…" })));
  try {
    const { workers } = await call("GET", "/api/workers");
    body.replaceChildren(...workers.map((w) => el("tr", {},
      el("td", {}, el("strong", { textContent: w.name }), el("div", { className: "muted", textContent: [w.zone, w.agent_version].filter(Boolean).join(" · ") })),
      el("td", {}, el("span", { className: `badge ${w.status === "online" ? "running" : w.status === "draining" ? "queued" : "failed"}`, textContent: w.status })),
      el("td", { textContent: ago(w.last_seen) }),
      el("td", { textContent: String(w.apps) }),
      el("td", { textContent: `${w.reserved.cpu_millis} / ${w.capacity.cpu_millis || "?"} m · ${fmtPct(w.cpu_pct)} used` }),
      el("td", { textContent: `${w.reserved.memory_mb} / ${w.capacity.memory_mb || "?"} MB · ${fmtBytes(w.mem_bytes)} used` }),
      el("td", { textContent: `${w.active_jobs} / ${w.max_jobs}` }),
      el("td", { className: "worker-images", textContent: fmtBytes(w.images_bytes) }),
      el("td", {}, drainButton(w)))));
    if (!workers.length) body.replaceChildren(el("tr", {}, el("td", { colSpan: 9, className: "muted", textContent: "No workers yet: add one with `wisehosting worker add`." })));
  } catch (err) { body.replaceChildren(); showError(err); }
}

// ---- wiring ------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  for (const [id, path] of [["#nav-team", "/team"], ["#nav-workers", "/workers"]]) {
    $(id).addEventListener("click", (e) => { e.preventDefault(); go(path); });
  }
  $("#ops-logs").addEventListener("toggle", (e) => {
    if (!current) return;
    if (e.target.open) liveConnect(); else liveClose();
  });
  $("#ops-usage").addEventListener("toggle", (e) => {
    if (!e.target.open || !current) return;
    rangePicker($("#usage-ranges"), (r) => { usageRange = r; loadAppUsage(); }, usageRange);
    loadAppUsage();
  });
  $("#ops-alerts").addEventListener("toggle", async (e) => {
    if (!e.target.open || !current) return;
    try { await loadAlerts(); } catch (err) { showError(err); }
  });
  $("#ops-hooks").addEventListener("toggle", async (e) => {
    if (!e.target.open || !current) return;
    try { await renderWebhooks($("#app-hooks"), current.id); } catch (err) { showError(err); }
  });
  $("#logs-search").addEventListener("submit", (e) => { e.preventDefault(); searchLogs(false); });
  $("#logs-older").addEventListener("click", () => searchLogs(true));
  $("#logs-live-btn").addEventListener("click", () => liveConnect());
  $("#rule-form").kind.addEventListener("change", ruleKindChanged);
  ruleKindChanged();
  $("#rule-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    const body = { kind: f.kind.value, sustain_s: Number(f.sustain_s.value || 120) };
    if (!f.threshold.disabled) body.threshold = Number(f.threshold.value);
    try { await call("POST", `/api/apps/${current.id}/alert-rules`, body); f.threshold.value = ""; showError(null); await loadAlerts(); } catch (err) { showError(err); }
  });
  $("#team-ranges") && rangePicker($("#team-ranges"), (r) => { teamRange = r; loadTeamUsage().catch(showError); }, teamRange);
  $("#invite-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const { url } = await call("POST", `/api/teams/${team}/invitations`, formData(e.target));
      const box = $("#invite-link");
      box.replaceChildren("Send this link (shown once): ", el("code", { textContent: url }));
      box.hidden = false;
      e.target.reset(); showError(null); await loadInvites();
    } catch (err) { showError(err); }
  });
  $("#member-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await call("POST", `/api/teams/${team}/members`, formData(e.target)); e.target.reset(); showError(null); await loadMembers(); } catch (err) { showError(err); }
  });
  $("#team-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const t = await call("POST", "/api/teams", formData(e.target));
      e.target.reset();
      me.teams.push(t);
      $("#team").append(el("option", { value: t.id, textContent: `${t.name} (${t.plan})` }));
      $("#team").value = String(t.id);
      team = t.id;
      showError(null);
      await openTeam();
    } catch (err) { showError(err); }
  });
});
