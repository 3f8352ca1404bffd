// @ts-check
// Operations views: an app's runtime logs, metrics, alerts and webhooks
// tabs; the Team and Workers pages.
import { $, ago, call, el, formData, linkSlug, me, onSubmit, setTeam, show, showError, team, timeEl, toast } from "./app.js";
import { copyButton, current, currentTab } from "./apppage.js";
import { barList, dropCharts, fmtBytes, fmtPct, timeChart } from "./charts.js";
import { loadGitConnections } from "./git.js";
import { loadTeamVolumes } from "./state.js";

function myRole() {
  const t = me && me.teams.find((x) => x.id === Number(team));
  return t ? t.role : "";
}
export const canAdmin = () => ["owner", "admin"].includes(myRole());

/** @param {HTMLElement} box @param {string} [text] */
function loading(box, text) {
  box.replaceChildren(el("p", { className: "muted loading", textContent: text || "Loading" }));
}

/**
 * action is a button that is disabled while fn runs; done is toasted.
 * @param {string} label @param {() => Promise<string|void>} fn @param {string} [className] @param {string} [ariaLabel]
 */
export function action(label, fn, className, ariaLabel) {
  const b = el("button", { className: className || "link", textContent: label, type: "button" });
  if (ariaLabel) b.setAttribute("aria-label", ariaLabel);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { const msg = await fn(); if (msg) toast(msg); } catch (err) { showError(err); }
    b.disabled = false;
  });
  return b;
}

/** @param {string} label @param {...(Node|string)} content */
export function td(label, ...content) { return el("td", { attrs: { "data-label": label } }, ...content); }

// ---- metrics ----------------------------------------------------------------

/** @param {any} data @param {number} [memLimit] */
function usageCharts(box, data, memLimit) {
  const pts = data.points;
  if (!pts.length) {
    box.replaceChildren(el("p", { className: "muted", textContent: "No usage recorded in this range yet: points appear within a few minutes of the app running on a worker." }));
    return;
  }
  const to = Date.now();
  const from = Math.min(new Date(data.since).getTime(), new Date(pts[0].at).getTime());
  const times = pts.map((p) => new Date(p.at).getTime());
  const step = data.step_s >= 3600 ? `${data.step_s / 3600} h` : data.step_s >= 60 ? `${data.step_s / 60} min` : `${data.step_s} s`;
  const memPeak = Math.max(...pts.map((p) => p.mem_bytes_max));
  dropCharts();
  box.replaceChildren(
    timeChart({ title: "CPU", sub: "% of one core", from, to, times, kind: "pct", series: [
      { name: "average", values: pts.map((p) => p.cpu_pct_avg) }, { name: "peak", values: pts.map((p) => p.cpu_pct_max) }] }),
    timeChart({ title: "Memory", sub: memLimit ? `limit ${fmtBytes(memLimit)}` : "", from, to, times, kind: "bytes",
      // The limit is drawn when usage comes within reach of it; far
      // below, it would flatten the curve into the axis.
      limit: memLimit && memPeak >= memLimit / 4 ? { value: memLimit, label: "limit" } : null,
      series: [{ name: "average", values: pts.map((p) => p.mem_bytes_avg) }, { name: "peak", values: pts.map((p) => p.mem_bytes_max) }] }),
    timeChart({ title: "Network", sub: `per ${step}`, from, to, times, kind: "bytes", series: [
      { name: "received", values: pts.map((p) => p.net_rx_bytes) }, { name: "sent", values: pts.map((p) => p.net_tx_bytes) }] }),
    timeChart({ title: "Disk", from, to, times, kind: "bytes", series: [{ name: "used", values: pts.map((p) => p.disk_bytes) },
      { name: "volumes", values: pts.map((p) => p.volume_bytes || 0) }] }));
}

const rangeNames = { "1h": "1 hour", "24h": "24 hours", "7d": "7 days", "30d": "30 days" };

/** @param {HTMLElement} box @param {(r: string) => void} onPick @param {string} initial */
function rangePicker(box, onPick, initial) {
  box.replaceChildren(...Object.keys(rangeNames).map((r) => {
    const b = el("button", { type: "button", className: r === initial ? "chip on" : "chip", textContent: r, title: `Last ${rangeNames[r]}`, attrs: { "aria-pressed": String(r === initial) } });
    b.addEventListener("click", () => {
      for (const c of box.children) { c.className = "chip"; c.setAttribute("aria-pressed", "false"); }
      b.className = "chip on";
      b.setAttribute("aria-pressed", "true");
      onPick(r);
    });
    return b;
  }));
}

let usageRange = "24h";

export function openMetrics() {
  rangePicker($("#usage-ranges"), (r) => { usageRange = r; loadAppUsage(); }, usageRange);
  loadAppUsage();
}

async function loadAppUsage() {
  const box = $("#usage-charts");
  loading(box, "Loading usage");
  try {
    const data = await call("GET", `/api/apps/${current.id}/usage?range=${usageRange}`);
    usageCharts(box, data, data.limits && data.limits.memory_mb ? data.limits.memory_mb * 1048576 : 0);
  } catch (err) { box.replaceChildren(); showError(err); }
}

// ---- runtime logs -------------------------------------------------------------

const MAX_LOG_LINES = 2000;
/** @type {WebSocket|null} */
let liveWS = null;
let liveWanted = false;
let liveRetry = 0;
let olderBefore = 0;

/** @param {string} text @param {string} [cls] @param {string} [hint] */
function setLogState(text, cls, hint) {
  const b = $("#logs-state");
  b.textContent = text;
  b.className = `badge ${cls || ""}`;
  $("#logs-hint").textContent = hint || "";
}

/** @param {any} l */
function logLine(l) {
  const ts = new Date(l.ts).toLocaleTimeString();
  const d = el("div", { className: `logline ${l.stream}` }, el("span", { className: "ts", textContent: ts + " " }), l.line);
  d.dataset.ts = l.ts;
  return d;
}

/** @param {any[]} lines */
function appendLive(lines) {
  const pre = $("#runtime-log");
  const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  pre.append(...lines.map(logLine));
  while (pre.childElementCount > MAX_LOG_LINES) pre.firstElementChild.remove();
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

export function liveClose() {
  liveWanted = false;
  if (liveWS) { const ws = liveWS; liveWS = null; ws.close(1000); }
}

export function liveConnect() {
  liveClose();
  liveWanted = true;
  $("#logs-older").hidden = true;
  $("#logs-live-btn").hidden = true;
  const app = current.id;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/apps/${app}/logs/live`);
  liveWS = ws;
  setLogState("connecting", "connecting");
  ws.onopen = () => { liveRetry = 0; setLogState("live", "live", "New lines appear as the app writes them."); };
  ws.onmessage = (e) => {
    const fr = JSON.parse(e.data);
    if (fr.backlog) {
      $("#runtime-log").replaceChildren();
      if (!fr.lines.length) setLogState("live", "live", "Connected: no recent lines; waiting for the app to write some.");
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
    setLogState("reconnecting", "connecting", `${why} Reconnecting in ${Math.round(delay / 1000)}s…`);
    setTimeout(() => { if (liveWanted && !liveWS && current && current.id === app && currentTab === "logs") liveConnect(); }, delay);
  };
}

/** @param {boolean} older */
async function searchLogs(older) {
  const d = formData(/** @type {HTMLFormElement} */ ($("#logs-search")));
  const params = new URLSearchParams({ limit: "200" });
  if (d.q) params.set("q", d.q);
  if (d.stream) params.set("stream", d.stream);
  if (d.since) params.set("since", d.since);
  if (older) params.set("before", String(olderBefore));
  liveClose();
  $("#logs-live-btn").hidden = false;
  setLogState("searching", "connecting");
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

/** downloadLogs saves the lines shown as a text file. */
function downloadLogs() {
  const lines = [...$("#runtime-log").children].map((d) => `${/** @type {HTMLElement} */ (d).dataset.ts || ""} ${d.lastChild ? d.lastChild.textContent : ""}`);
  const blob = new Blob([lines.join("\n") + "\n"], { type: "text/plain" });
  const a = el("a", { href: URL.createObjectURL(blob), download: `${current.slug}-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.log` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ---- alerts -------------------------------------------------------------------

const alertKinds = {
  cpu: { name: "CPU", unit: "% CPU", hint: "average CPU is above this percentage of one core" },
  memory: { name: "Memory", unit: "MB", hint: "peak memory is above this many MB" },
  disk: { name: "Disk", unit: "MB", hint: "disk use is above this many MB" },
  network: { name: "Network", unit: "bytes/s", hint: "network traffic is above this rate" },
  offline: { name: "Worker offline", hint: "the app's worker stops answering" },
  crashloop: { name: "Crash loop", hint: "the app keeps crashing" },
  deployment_failed: { name: "Failed deployment", hint: "the latest deployment fails" },
  cron_failed: { name: "Failed scheduled run", hint: "the latest run of a scheduled job fails" },
};

/**
 * parseDuration reads "90s", "2m", "1h30m", "1 h" or plain seconds.
 * @param {string} s @returns {number} seconds, NaN when unreadable
 */
function parseDuration(s) {
  const t = s.trim().toLowerCase().replace(/\s+/g, "");
  if (/^\d+$/.test(t)) return Number(t);
  const m = t.match(/^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)(?:m|min))?(?:(\d+)s)?$/);
  if (!m || t === "") return NaN;
  return (Number(m[1] || 0) * 86400) + (Number(m[2] || 0) * 3600) + (Number(m[3] || 0) * 60) + Number(m[4] || 0);
}

/** fmtDuration writes seconds the way people type them ("2m", "1h 30m"). @param {number} s */
function fmtDuration(s) {
  if (!s) return "0s";
  const parts = [];
  /** @type {[number, string][]} */
  const units = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]];
  for (const [n, u] of units) {
    if (s >= n) { parts.push(`${Math.floor(s / n)}${u}`); s %= n; }
  }
  return parts.join(" ");
}

/** @param {any} a @param {boolean} withApp */
function alertItem(a, withApp) {
  const state = a.resolved_at ? el("span", { className: "badge succeeded", textContent: "resolved" }) : el("span", { className: "badge open", textContent: "open" });
  return el("li", {}, state, el("span", { className: "grow" }, el("strong", { textContent: a.message || (alertKinds[a.kind] || {}).name || a.kind }), withApp ? ` · ${a.app_slug}` : "",
    el("div", { className: "muted small", textContent: `fired ${ago(a.fired_at)}` + (a.resolved_at ? `, resolved ${ago(a.resolved_at)}` : "") })));
}

export async function loadAlerts() {
  const [{ alerts }, { rules }] = await Promise.all([
    call("GET", `/api/apps/${current.id}/alerts`), call("GET", `/api/apps/${current.id}/alert-rules`)]);
  const list = $("#alert-list");
  list.replaceChildren(...alerts.slice(0, 20).map((a) => alertItem(a, false)));
  if (!alerts.length) list.replaceChildren(el("li", { className: "muted", textContent: "No alerts so far." }));
  const rl = $("#rule-list");
  rl.replaceChildren(...rules.map((r) => {
    const k = alertKinds[r.kind] || { name: r.kind };
    const what = k.unit ? `${k.name} above ${r.threshold} ${k.unit}` : k.name;
    const li = el("li", {}, r.firing ? el("span", { className: "badge firing", textContent: "firing" }) : el("span", { className: `badge ${r.enabled ? "on" : ""}`, textContent: r.enabled ? "on" : "off" }),
      el("span", { className: "grow" }, el("strong", { textContent: what }), ` for at least ${fmtDuration(r.sustain_s)}`));
    if (canAdmin()) {
      li.append(action(r.enabled ? "Turn off" : "Turn on", async () => {
        await call("PATCH", `/api/apps/${current.id}/alert-rules/${r.id}`, { enabled: !r.enabled }); await loadAlerts();
      }, "link", `${r.enabled ? "Turn off" : "Turn on"} the rule ${what}`), action("Delete", async () => {
        await call("DELETE", `/api/apps/${current.id}/alert-rules/${r.id}`); await loadAlerts(); return "Rule deleted.";
      }, "link danger", `Delete the rule ${what}`));
    }
    return li;
  }));
  if (!rules.length) rl.replaceChildren(el("li", { className: "muted", textContent: "No rules: add one below to be alerted." }));
  $("#rule-form").hidden = !canAdmin();
}

function ruleKindChanged() {
  const f = /** @type {HTMLFormElement} */ ($("#rule-form"));
  const k = alertKinds[/** @type {HTMLSelectElement} */ (f.elements.namedItem("kind")).value];
  const th = /** @type {HTMLInputElement} */ (f.elements.namedItem("threshold"));
  th.disabled = !k.unit;
  /** @type {HTMLElement} */ (th.closest(".field")).hidden = !k.unit;
  th.required = !!k.unit;
  $("#rule-threshold-label").textContent = k.unit ? `Threshold (${k.unit})` : "Threshold";
  $("#rule-hint").textContent = `Alerts when ${k.hint} for at least the time given (e.g. 90s, 2m, 1h).`;
}

// ---- webhooks -----------------------------------------------------------------

const eventNames = {
  "*": "Every event", "deployment.started": "Deployment started", "deployment.finished": "Deployment finished", "deployment.failed": "Deployment failed",
  "app.status_changed": "App status changed", "domain.added": "Domain added", "domain.verified": "Domain verified", "domain.removed": "Domain removed",
  "cert.provisioned": "Certificate issued", "cert.expiring": "Certificate expiring", "route.changed": "Route changed",
  "alert.fired": "Alert fired", "alert.resolved": "Alert resolved",
};
/** @param {string} e */
const eventName = (e) => eventNames[e] || e;

let hookSeq = 0;
/** @param {HTMLElement} box @param {number} appId */
export async function renderWebhooks(box, appId) {
  if (!canAdmin()) {
    box.replaceChildren(el("p", { className: "muted", textContent: "Owners and admins of the team manage webhooks." }));
    return;
  }
  loading(box, "Loading webhooks");
  const q = appId ? `?app=${appId}` : "";
  const { webhooks, events } = await call("GET", `/api/teams/${team}/webhooks${q}`);
  const shown = appId ? webhooks : webhooks.filter((w) => !w.app_id);
  const secretBox = el("div", { className: "secret", hidden: true });
  const list = el("ul", { className: "list hooks" }, ...shown.map((w) => {
    const deliveries = el("div", { hidden: true, className: "grow" });
    const evs = w.events.includes("*") ? "every event" : w.events.map(eventName).join(", ");
    return el("li", {}, el("span", { className: `badge ${w.enabled ? "on" : ""}`, textContent: w.enabled ? "on" : "off" }),
      el("span", { className: "grow" }, el("code", { textContent: w.url }), el("div", { className: "muted small", textContent: `${w.kind === "http" ? "signed HTTPS" : "chat channel"} · ${evs}${w.app_id ? "" : " · all apps"}` })),
      el("div", { className: "row wrap-row" },
        action("Send test", async () => {
          const r = await call("POST", `/api/teams/${team}/webhooks/${w.id}/test`);
          if (!r.ok) throw new Error(`Test delivery failed: ${r.error}`);
          return `Test delivered (HTTP ${r.status || "ok"}).`;
        }),
        action(w.enabled ? "Turn off" : "Turn on", async () => {
          await call("PATCH", `/api/teams/${team}/webhooks/${w.id}`, { enabled: !w.enabled }); await renderWebhooks(box, appId);
        }),
        w.kind === "http" ? action("Rotate secret", async () => {
          const r = await call("POST", `/api/teams/${team}/webhooks/${w.id}/rotate-secret`);
          showSecret(secretBox, r.secret, "New signing secret (the previous one keeps signing until the next rotation):");
        }) : "",
        action("Deliveries", async () => {
          deliveries.hidden = !deliveries.hidden;
          if (deliveries.hidden) return;
          loading(deliveries);
          const { deliveries: ds } = await call("GET", `/api/teams/${team}/webhooks/${w.id}/deliveries`);
          deliveries.replaceChildren(ds.length ? el("table", {}, el("tbody", {}, ...ds.map((d) => el("tr", {},
            el("td", { textContent: eventName(d.event) }), el("td", {}, el("span", { className: `badge ${d.state}`, textContent: d.state })),
            el("td", { textContent: d.last_status ? `HTTP ${d.last_status}` : "" }), el("td", { textContent: `${d.attempts} attempt(s)` }),
            el("td", { className: "muted", textContent: d.last_error || ago(d.delivered_at || d.created_at) }))))) : el("p", { className: "muted", textContent: "No deliveries yet." }));
        }),
        action("Delete", async () => { await call("DELETE", `/api/teams/${team}/webhooks/${w.id}`); await renderWebhooks(box, appId); return "Webhook deleted."; }, "link danger")),
      deliveries);
  }));
  if (!shown.length) list.replaceChildren(el("li", { className: "muted", textContent: appId ? "No webhooks for this app yet." : "No team-wide webhooks yet." }));
  const n = ++hookSeq;
  // Events: a group of checkboxes; "every event" unticks the others.
  const boxes = events.map((e) => el("label", { className: "check" }, el("input", { type: "checkbox", name: "events", value: e, checked: e === "*" }), eventName(e)));
  const group = el("fieldset", { className: "events-pick" }, el("legend", { textContent: "Events" }), ...boxes);
  group.addEventListener("change", (ev) => {
    const t = /** @type {HTMLInputElement} */ (ev.target);
    const all = group.querySelector('input[value="*"]');
    if (t.value === "*" && t.checked) for (const c of group.querySelectorAll("input")) { if (c !== t) /** @type {HTMLInputElement} */ (c).checked = false; }
    else if (t.checked && all) all.checked = false;
  });
  const form = el("form", { className: "hook-form" },
    el("div", { className: "grid2" },
      el("div", { className: "field" }, el("label", { htmlFor: `hk-kind-${n}`, textContent: "Kind" }),
        el("select", { name: "kind", id: `hk-kind-${n}` }, el("option", { value: "http", textContent: "HTTPS endpoint (signed)" }), el("option", { value: "shoutrrr", textContent: "Chat channel (Shoutrrr URL)" }))),
      el("div", { className: "field" }, el("label", { htmlFor: `hk-url-${n}`, textContent: "URL" }),
        el("input", { name: "url", id: `hk-url-${n}`, placeholder: "https://example.com/hooks/wisehosting", required: true, autocomplete: "off" }))),
    group,
    el("div", { className: "form-actions" }, el("button", { type: "submit", textContent: "Add webhook" })));
  onSubmit(/** @type {HTMLFormElement} */ (form), async () => {
    const picked = [...group.querySelectorAll("input:checked")].map((c) => /** @type {HTMLInputElement} */ (c).value);
    if (!picked.length) throw Object.assign(new Error("Pick at least one event."), { data: {} });
    const body = { kind: /** @type {any} */ (form).kind.value, url: /** @type {any} */ (form).url.value, events: picked };
    if (appId) body.app_id = appId;
    const w = await call("POST", `/api/teams/${team}/webhooks`, body);
    await renderWebhooks(box, appId);
    if (w.secret) showSecret(box.querySelector(".secret"), w.secret, "Signing secret: copy it now, it is not shown again.");
    return "Webhook added.";
  });
  box.replaceChildren(list, secretBox, el("h3", { textContent: "Add a webhook" }), form);
}

/** @param {Element} box @param {string} secret @param {string} text */
function showSecret(box, secret, text) {
  /** @type {HTMLElement} */ (box).hidden = false;
  box.replaceChildren(text, " ", el("code", { textContent: secret }), " ", copyButton(secret, "Secret"));
}

// ---- team page ------------------------------------------------------------------

export async function openTeam() {
  show("team-page");
  const t = me.teams.find((x) => x.id === Number(team));
  $("#team-title").textContent = t ? `${t.name}` : "No team yet";
  $("#team-meta").textContent = t ? `${t.slug} · ${t.plan} plan · your role: ${t.role}` : "Create a team below.";
  for (const c of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("#team-page > .card"))) c.hidden = !t && !c.contains($("#team-form"));
  if (!t) return;
  $("#member-form").hidden = !canAdmin();
  $("#invite-box").hidden = !canAdmin();
  $("#invite-link").hidden = true;
  $("#team-audit-box").hidden = !canAdmin();
  rangePicker($("#team-ranges"), (r) => { teamRange = r; loadTeamUsage().catch(showError); }, teamRange);
  const tasks = [loadMembers(), loadTeamUsage(), loadTeamAlerts(), renderWebhooks($("#team-hooks"), 0), loadGitConnections(), loadTeamVolumes()];
  if (canAdmin()) tasks.push(loadAudit(), loadInvites());
  for (const r of await Promise.allSettled(tasks)) if (r.status === "rejected") showError(r.reason);
}

async function loadMembers() {
  const { members } = await call("GET", `/api/teams/${team}/members`);
  const role = myRole();
  $("#member-list tbody").replaceChildren(...members.map((m) => {
    const cell = td("Role");
    const manageable = m.you || role === "owner" || (role === "admin" && m.role !== "owner");
    if (canAdmin() && manageable) {
      const sel = el("select", { attrs: { "aria-label": `Role of ${m.email}` } }, ...["member", "admin", "owner"]
        .filter((r) => role === "owner" || r !== "owner" || m.role === "owner")
        .map((r) => el("option", { value: r, textContent: r, selected: r === m.role })));
      sel.addEventListener("change", async () => {
        try { await call("PATCH", `/api/teams/${team}/members/${m.user_id}`, { role: sel.value }); toast(`${m.email} is now ${sel.value}.`); } catch (err) { showError(err); }
        await loadMembers();
      });
      cell.append(sel);
    } else cell.append(m.role);
    const actions = el("td", { className: "actions", attrs: { "data-label": "" } });
    if ((canAdmin() && manageable) || m.you) {
      actions.append(action(m.you ? "Leave team" : "Remove", async () => {
        if (!confirm(m.you ? "Leave this team?" : `Remove ${m.email} from the team?`)) return;
        await call("DELETE", `/api/teams/${team}/members/${m.user_id}`);
        if (m.you) { location.assign("/"); return; }
        await loadMembers();
        return `${m.email} removed.`;
      }, "link danger"));
    }
    return el("tr", {}, td("E-mail", m.email + (m.you ? " (you)" : "")), td("Name", m.name || "—"), cell,
      td("Since", new Date(m.since).toLocaleDateString()), actions);
  }));
}

// loadInvites lists the team's pending invitations (admins).
async function loadInvites() {
  const { invitations } = await call("GET", `/api/teams/${team}/invitations`);
  $("#invite-list").replaceChildren(...invitations.map((i) => el("li", {},
    el("span", { className: "grow", textContent: `${i.email} as ${i.role}, until ${new Date(i.expires_at).toLocaleDateString()}` }),
    action("Revoke", async () => { await call("DELETE", `/api/teams/${team}/invitations/${i.id}`); await loadInvites(); return "Invitation revoked."; }, "link danger", `Revoke the invitation of ${i.email}`))));
}

let teamRange = "24h";

async function loadTeamUsage() {
  const box = $("#team-usage");
  loading(box, "Loading usage");
  const data = await call("GET", `/api/teams/${team}/usage?range=${teamRange}`);
  if (!data.apps.length) { box.replaceChildren(el("p", { className: "muted", textContent: "No apps yet." })); return; }
  const charts = el("div", { className: "charts" },
    barList("CPU by app (average)", data.apps.map((a) => ({ name: a.name, value: a.cpu_pct_avg })), fmtPct),
    barList("Memory by app (peak)", data.apps.map((a) => ({ name: a.name, value: a.mem_bytes_max })), fmtBytes),
    barList("Network by app (received + sent)", data.apps.map((a) => ({ name: a.name, value: a.net_rx_bytes + a.net_tx_bytes })), fmtBytes),
    barList("Disk by app", data.apps.map((a) => ({ name: a.name, value: a.disk_bytes })), fmtBytes));
  const over = el("div", { className: "charts" });
  usageCharts(over, data, 0);
  const table = el("div", { className: "table-wrap" }, el("table", { className: "rtable" },
    el("thead", {}, el("tr", {}, ...["App", "Status", "CPU avg", "CPU peak", "Memory peak", "Received", "Sent", "Disk"].map((h) => el("th", { scope: "col", textContent: h })))),
    el("tbody", {}, ...data.apps.map((a) => el("tr", {}, td("App", a.name), td("Status", el("span", { className: `badge ${a.status}`, textContent: a.status })),
      td("CPU avg", fmtPct(a.cpu_pct_avg)), td("CPU peak", fmtPct(a.cpu_pct_max)), td("Memory peak", fmtBytes(a.mem_bytes_max)),
      td("Received", fmtBytes(a.net_rx_bytes)), td("Sent", fmtBytes(a.net_tx_bytes)), td("Disk", fmtBytes(a.disk_bytes)))))));
  box.replaceChildren(charts, el("h3", { textContent: "Whole team over time" }), over, table);
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
    td("When", timeEl(e.at)), td("Who", e.user || "system"),
    td("Action", el("code", { textContent: e.action })), td("Target", e.target || "—"), td("IP", e.ip || "—"))));
}

// ---- workers page -----------------------------------------------------------------

/** @param {any} w */
function drainButton(w) {
  if (w.status === "revoked") return "";
  const draining = w.status === "draining";
  return action(draining ? "Resume" : "Drain", async () => {
    await call("POST", `/api/workers/${w.id}/${draining ? "resume" : "drain"}`);
    await openWorkers();
    return draining ? `${w.name} takes new apps again.` : `${w.name} is draining.`;
  }, "link", `${draining ? "Resume" : "Drain"} ${w.name}`);
}

export async function openWorkers() {
  show("workers-page");
  const body = $("#worker-list tbody");
  if (!me.user.is_admin) {
    body.replaceChildren(el("tr", {}, el("td", { colSpan: 9, className: "muted", textContent: "Only instance administrators see the workers." })));
    return;
  }
  body.replaceChildren(el("tr", {}, el("td", { colSpan: 9, className: "muted", textContent: "Loading workers…" })));
  try {
    const { workers } = await call("GET", "/api/workers");
    body.replaceChildren(...workers.map((w) => el("tr", {},
      td("Worker", el("strong", { textContent: w.name }), el("div", { className: "sub", textContent: [w.zone, w.agent_version].filter(Boolean).join(" · ") })),
      td("Status", el("span", { className: `badge ${w.status}`, textContent: w.status })),
      td("Last seen", ago(w.last_seen)),
      td("Apps", String(w.apps)),
      td("CPU", `${w.reserved.cpu_millis} / ${w.capacity.cpu_millis || "?"} m · ${fmtPct(w.cpu_pct)} used`),
      td("Memory", `${w.reserved.memory_mb} / ${w.capacity.memory_mb || "?"} MB · ${fmtBytes(w.mem_bytes)} used`),
      td("Jobs", `${w.active_jobs} / ${w.max_jobs}`),
      el("td", { className: "worker-images", attrs: { "data-label": "Image disk" }, textContent: fmtBytes(w.images_bytes) }),
      el("td", { className: "actions", attrs: { "data-label": "" } }, drainButton(w)))));
    if (!workers.length) body.replaceChildren(el("tr", {}, el("td", { colSpan: 9, className: "muted", textContent: "No workers yet: add one with `wisehosting worker add`." })));
  } catch (err) { body.replaceChildren(); showError(err); }
}

// ---- wiring -----------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#logs-search").addEventListener("submit", (e) => { e.preventDefault(); searchLogs(false); });
  $("#logs-older").addEventListener("click", () => searchLogs(true));
  $("#logs-live-btn").addEventListener("click", () => liveConnect());
  $("#logs-download").addEventListener("click", downloadLogs);
  $("#logs-wrap").addEventListener("change", (e) => $("#runtime-log").classList.toggle("wrap", /** @type {HTMLInputElement} */ (e.target).checked));
  const rf = /** @type {HTMLFormElement} */ ($("#rule-form"));
  /** @type {HTMLSelectElement} */ (rf.elements.namedItem("kind")).addEventListener("change", ruleKindChanged);
  ruleKindChanged();
  onSubmit(rf, async (d, f) => {
    const sustain = parseDuration(d.sustain || "");
    if (!Number.isFinite(sustain)) throw Object.assign(new Error("Write a duration such as 90s, 2m or 1h."), { data: { field: "sustain" } });
    const body = { kind: d.kind, sustain_s: sustain };
    const th = /** @type {HTMLInputElement} */ (f.elements.namedItem("threshold"));
    if (!th.disabled) body.threshold = Number(th.value);
    try { await call("POST", `/api/apps/${current.id}/alert-rules`, body); } catch (err) {
      if (err.data && err.data.field === "sustain_s") err.data.field = "sustain";
      throw err;
    }
    th.value = "";
    await loadAlerts();
    return "Rule added.";
  });
  onSubmit(/** @type {HTMLFormElement} */ ($("#invite-form")), async (d, f) => {
    const { url } = await call("POST", `/api/teams/${team}/invitations`, d);
    const box = $("#invite-link");
    box.replaceChildren("Send this link (shown once): ", el("code", { textContent: url }), " ", copyButton(url, "Invitation link"));
    box.hidden = false;
    f.reset(); await loadInvites();
    return `Invitation for ${d.email} created.`;
  });
  onSubmit(/** @type {HTMLFormElement} */ ($("#member-form")), async (d, f) => {
    await call("POST", `/api/teams/${team}/members`, d); f.reset(); await loadMembers();
    return `${d.email} added.`;
  });
  const tf = /** @type {HTMLFormElement} */ ($("#team-form"));
  linkSlug(/** @type {HTMLInputElement} */ (tf.elements.namedItem("name")), /** @type {HTMLInputElement} */ (tf.elements.namedItem("slug")));
  onSubmit(tf, async (d, f) => {
    const t = await call("POST", "/api/teams", d);
    f.reset();
    /** @type {HTMLInputElement} */ (f.elements.namedItem("slug")).dataset.edited = "";
    me.teams.push(t);
    $("#team").append(el("option", { value: t.id, textContent: t.name }));
    /** @type {HTMLSelectElement} */ ($("#team")).value = String(t.id);
    setTeam(t.id);
    try { localStorage.setItem("team", String(team)); } catch (_) { /* storage off */ }
    await openTeam();
    return `Team ${t.name} created.`;
  });
});
