// @ts-check
// An app's page: header, tabs (each its own URL: /apps/<id>/<tab>),
// overview, deployments with the build log, domains, environment and the
// danger zone. Logs, metrics and alerts tabs are drawn by ops.js; settings
// by git.js.
import { $, ago, appLink, call, el, frameworkLabel, go, leaveHooks, onSubmit, show, showError, showWorkerStatus, timeEl, toast } from "./app.js";
import { gitOpenApp } from "./git.js";
import { liveClose, liveConnect, loadAlerts, openMetrics, renderWebhooks } from "./ops.js";
import { routesOpenApp } from "./routes.js";
import { cronOpenApp, loadVolumes } from "./state.js";

/** @type {any} */
export let current = null;
/** @param {any} v */
export function setCurrent(v) { current = v; }
/** @type {any[]} */
let deployments = [];
const appTabs = ["overview", "deployments", "logs", "metrics", "alerts", "domains", "environment", "volumes", "cron", "settings", "danger"];
const tabTitles = { overview: "Overview", deployments: "Deployments", logs: "Logs", metrics: "Metrics", alerts: "Alerts", domains: "Domains", environment: "Environment", volumes: "Volumes", cron: "Scheduled jobs", settings: "Settings", danger: "Danger zone" };
export let currentTab = "";

/** @param {string} status */
export function badge(status, cls) { return el("span", { className: `badge ${cls || status}`, textContent: status }); }

/**
 * openApp shows app id at tab; the app is read again on every visit.
 * @param {number} id @param {string} tab
 */
export async function openApp(id, tab) {
  if (!appTabs.includes(tab)) tab = "overview";
  const same = current && current.id === id && !$("#app").hidden;
  show("app");
  if (!same) {
    for (const t of appTabs) $(`#tab-${t}`).hidden = true;
    $("#app-name").textContent = "";
    try { current = await call("GET", `/api/apps/${id}`); } catch (err) { showError(err); current = null; return; }
    renderAppHeader();
    showWorkerStatus();
  }
  for (const a of document.querySelectorAll("#app-tabs a")) {
    const t = a.getAttribute("data-tab");
    a.setAttribute("href", `/apps/${id}/${t}`);
    if (t === tab) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  for (const t of appTabs) $(`#tab-${t}`).hidden = t !== tab;
  document.title = `${current.name} · ${tabTitles[tab]} · WiseHosting`;
  const prev = currentTab;
  currentTab = tab;
  tabLeave(prev, tab);
  try {
    switch (tab) {
      case "overview": await loadOverview(); break;
      case "deployments": await loadDeployments(true); break;
      case "logs": liveConnect(); break;
      case "metrics": openMetrics(); break;
      case "alerts": await Promise.all([loadAlerts(), renderWebhooks($("#app-hooks"), current.id)]); break;
      case "domains": await loadDomains(); routesOpenApp(); break;
      case "environment": await loadEnv(); break;
      case "volumes": await loadVolumes(); break;
      case "cron": await cronOpenApp(); break;
      case "settings": gitOpenApp(); break;
      case "danger": $("#delete-slug").textContent = current.slug; break;
    }
  } catch (err) { showError(err); }
}

/** tabLeave stops what the previous tab was following. @param {string} prev @param {string} next */
function tabLeave(prev, next) {
  if (prev === "logs" && next !== "logs") liveClose();
  if (prev === "deployments" && next !== "deployments") stopFollow();
}


export function renderAppHeader() {
  const a = current;
  $("#app-name").textContent = a.name;
  $("#crumb-app").textContent = a.name;
  setAppStatus(a.status);
  const source = a.image ? a.image : `${a.repo || a.git_repo || "no repository"}${a.git_branch ? " · " + a.git_branch : ""}`;
  $("#app-meta").textContent = `${frameworkLabel(a)} · ${source}`;
  $("#app-links").replaceChildren(...(a.urls || []).map(appLink));
  $("#restart").hidden = !(a.status === "running" || a.status === "crashed");
}

/** setAppStatus updates the app's badge (the header) from one source. @param {string} s */
export function setAppStatus(s) {
  if (current) current.status = s;
  const b = $("#app-status");
  b.textContent = s;
  b.className = `badge ${s}`;
}

/** refreshApp reads the app again and redraws what shows its state. */
export async function refreshApp() {
  current = await call("GET", `/api/apps/${current.id}`);
  renderAppHeader();
}

// ---- overview ---------------------------------------------------------------

/** @param {string} label @param {Node|string} value @param {Node|string} [sub] */
function stat(label, value, sub) {
  return el("div", { className: "stat" }, el("div", { className: "label", textContent: label }), el("div", { className: "value" }, value), sub ? el("div", { className: "sub" }, sub) : "");
}

async function loadOverview() {
  const a = current;
  const { deployments: ds } = await call("GET", `/api/apps/${a.id}/deployments`);
  deployments = ds;
  const live = ds.find((d) => d.live);
  const url = a.urls && a.urls[0];
  $("#overview-stats").replaceChildren(
    stat("Status", badge(a.status), a.status === "running" ? "serving traffic" : statusHint(a.status)),
    stat("URL", url ? appLink(url) : "none yet", a.urls && a.urls.length > 1 ? `+ ${a.urls.length - 1} custom domain(s)` : ""),
    a.replicas > 1 ? stat("Instances", `${(a.instances || []).filter((i) => i.status === "running").length} of ${a.replicas} running`,
      [...new Set((a.instances || []).map((i) => i.worker).filter(Boolean))].join(", ") || "not placed")
      : stat("Worker", a.worker || "not placed", a.zone ? `zone ${a.zone}` : ""),
    stat("Resources", `${a.cpu_millis}m CPU · ${a.memory_mb} MB`, `${frameworkLabel(a)}${a.port ? " · port " + a.port : ""}`));
  $("#overview-live").replaceChildren(live ? badge("live") : "");
  $("#overview-current").replaceChildren(live ? deploymentSummary(live)
    : el("p", { className: "muted", textContent: ds.length ? "No deployment serves the app right now." : "Not deployed yet: press Deploy now to build and start it." }));
  const actions = [];
  if (url && a.status === "running") actions.push(el("a", { className: "button", href: url, target: "_blank", rel: "noopener", textContent: "Visit" }));
  actions.push(el("a", { className: "button", href: `/apps/${a.id}/logs`, textContent: "Runtime logs" }),
    el("a", { className: "button", href: `/apps/${a.id}/deployments`, textContent: "All deployments" }));
  const target = rollbackTarget(ds);
  if (target) actions.push(rollbackButton(target, "button"));
  $("#overview-actions").replaceChildren(...actions);
}

/** @param {string} s */
function statusHint(s) {
  return { building: "a deployment is building", deploying: "a deployment is starting", failed: "the last deployment failed", crashed: "the container keeps stopping", stopped: "not running", created: "never deployed" }[s] || "";
}

/** @param {any} d */
function deploymentSummary(d) {
  return el("dl", { className: "kv" },
    el("dt", { textContent: "Deployment" }), el("dd", { textContent: `#${d.id}` }),
    el("dt", { textContent: "Commit" }), el("dd", {}, d.commit ? el("code", { textContent: d.commit.slice(0, 10) }) : "—", d.message ? ` ${d.message.split("\n")[0]}` : ""),
    el("dt", { textContent: "By" }), el("dd", { textContent: `${d.by || "automatic"} · ${d.trigger}` }),
    el("dt", { textContent: "Finished" }), el("dd", {}, d.finished_at ? timeEl(d.finished_at) : "—"));
}

// ---- deployments and the build log ------------------------------------------

/**
 * rollbackTarget is the newest successful deployment older than the live
 * one (the only kind a rollback may go to).
 * @param {any[]} ds
 */
function rollbackTarget(ds) {
  const live = ds.find((d) => d.live);
  if (!live) return null;
  return ds.find((d) => d.status === "succeeded" && d.id < live.id && d.image) || null;
}

/** @param {any} d @param {string} [cls] */
function rollbackButton(d, cls) {
  const label = `Roll back to #${d.id}${d.commit ? " (" + d.commit.slice(0, 7) + ")" : ""}`;
  const b = el("button", { type: "button", className: cls || "link", textContent: cls ? label : "Roll back" });
  if (!cls) b.setAttribute("aria-label", label);
  b.addEventListener("click", () => {
    if (!confirm(`${label}? It is started again as a new deployment and takes the traffic once healthy.`)) return;
    deploy(d.id);
  });
  return b;
}

/** @param {boolean} follow the newest deployment's log */
async function loadDeployments(follow) {
  const { deployments: ds } = await call("GET", `/api/apps/${current.id}/deployments`);
  deployments = ds;
  const live = ds.find((d) => d.live);
  const body = $("#deployments tbody");
  body.replaceChildren(...ds.map((d) => {
    const logBtn = el("button", { type: "button", className: "link", textContent: "Build log" });
    logBtn.setAttribute("aria-label", `Build log of deployment ${d.id}`);
    logBtn.addEventListener("click", () => { followLog(d.id); $("#log-box").scrollIntoView({ block: "start" }); });
    const actions = el("td", { className: "actions", attrs: { "data-label": "" } }, logBtn);
    // Rollback only to an earlier successful deployment with an image.
    if (live && d.status === "succeeded" && d.id < live.id && d.image) actions.append(rollbackButton(d));
    if (["queued", "building", "deploying"].includes(d.status)) {
      const cb = el("button", { type: "button", className: "link danger", textContent: "Cancel" });
      cb.setAttribute("aria-label", `Cancel deployment ${d.id}`);
      cb.addEventListener("click", async () => {
        cb.disabled = true;
        try {
          await call("POST", `/api/apps/${current.id}/deployments/${d.id}/cancel`);
          toast(`Deployment #${d.id} cancelled.`);
          await loadDeployments(false);
        } catch (err) { showError(err); cb.disabled = false; }
      });
      actions.append(cb);
    }
    const status = el("td", { attrs: { "data-label": "Status" } }, el("span", { className: `badge ${d.status}`, textContent: d.status, attrs: { "data-dep": d.id } }), d.live ? " " : "", d.live ? badge("live") : "");
    const commit = el("td", { attrs: { "data-label": "Commit" } }, d.commit ? el("code", { textContent: d.commit.slice(0, 7) }) : el("span", { className: "muted", textContent: d.image && !d.commit ? "image" : "—" }),
      d.message ? el("div", { className: "sub", textContent: d.message.split("\n")[0].slice(0, 80) }) : "");
    const trig = d.rollback_of ? `rollback of #${d.rollback_of}` : d.trigger;
    return el("tr", {}, el("td", { attrs: { "data-label": "Deployment" } }, el("strong", { textContent: `#${d.id}` })), status, commit,
      el("td", { attrs: { "data-label": "Trigger" } }, trig, d.by ? el("div", { className: "sub", textContent: d.by }) : ""),
      el("td", { attrs: { "data-label": "Started" } }, timeEl(d.created_at)), actions);
  }));
  if (!ds.length) body.replaceChildren(el("tr", {}, el("td", { colSpan: 6, className: "muted", textContent: "No deployments yet: press Deploy now." })));
  if (follow && ds.length) followLog(ds[0].id);
}

const stageList = [["clone", "Clone"], ["build", "Build"], ["start", "Start"], ["health", "Health"], ["switch", "Switch"], ["done", "Live"]];
const stagePct = { clone: 10, pull: 10, build: 35, start: 65, health: 80, switch: 92, done: 100 };
const finished = ["succeeded", "failed", "cancelled", "superseded"];

// One follower at a time: a new followLog makes older polls drop their
// answers (gen), so no line is ever written twice.
let logGen = 0;
let logTimer = 0;
function stopFollow() { logGen++; clearTimeout(logTimer); logTimer = 0; }

/** @param {number} dep */
function followLog(dep) {
  stopFollow();
  const gen = logGen;
  $("#log-box").hidden = false;
  $("#log-dep").textContent = "#" + dep;
  const pre = $("#log");
  pre.replaceChildren();
  $("#log-follow").hidden = true;
  setProgress(0, "");
  $("#stages").replaceChildren(...stageList.map(([k, label]) => el("span", { textContent: label, attrs: { "data-stage": k } })));
  let after = 0;
  let lastStatus = "";
  let reached = 0;
  const tick = async () => {
    if (gen !== logGen) return;
    try {
      const { status, lines } = await call("GET", `/api/apps/${current.id}/deployments/${dep}/logs?after=${after}`);
      if (gen !== logGen) return;
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      const frag = document.createDocumentFragment();
      for (const l of lines) {
        after = l.id;
        const m = l.line.match(/^\[(\w+)\]/);
        frag.append(el("div", { className: `logline${l.stream === "system" || m ? " stage" : ""}`, textContent: l.line }));
        if (m && stagePct[m[1]] && stagePct[m[1]] > reached) reached = stagePct[m[1]];
      }
      pre.append(frag);
      if (lines.length) {
        if (atBottom) pre.scrollTop = pre.scrollHeight;
        else $("#log-follow").hidden = false;
      }
      if (status === "succeeded") reached = 100;
      setProgress(reached, status);
      if (status !== lastStatus) {
        lastStatus = status;
        // The log's badge, the table's row and the app's badge change
        // together, from this one answer and one read of the app.
        for (const b of [$("#log-status"), ...document.querySelectorAll(`#deployments [data-dep="${dep}"]`)]) {
          b.textContent = status;
          b.className = `badge ${status}`;
        }
        await refreshApp();
        if (finished.includes(status)) await loadDeployments(false);
      }
      if (finished.includes(status)) { logTimer = 0; return; }
    } catch (err) { if (gen === logGen) showError(err); }
    if (gen === logGen) logTimer = window.setTimeout(tick, 1000);
  };
  tick();
}

/** @param {number} pct @param {string} status */
function setProgress(pct, status) {
  const bar = $("#progress-bar");
  bar.style.width = pct + "%";
  bar.className = finished.includes(status) ? (status === "succeeded" ? "succeeded" : "failed") : "";
  $("#progress").setAttribute("aria-valuenow", String(pct));
  for (const s of document.querySelectorAll("#stages span")) s.classList.toggle("done", stagePct[s.getAttribute("data-stage")] <= pct && pct > 0);
}

/** deploy starts a deployment (or a rollback to rollbackOf) and follows it. @param {number} [rollbackOf] */
export async function deploy(rollbackOf) {
  const btn = $("#deploy");
  btn.disabled = true;
  try {
    const body = rollbackOf ? { rollback_of: rollbackOf } : {};
    const { deployment_id } = await call("POST", `/api/apps/${current.id}/deployments`, body);
    toast(rollbackOf ? `Rolling back to #${rollbackOf} (deployment #${deployment_id}).` : `Deployment #${deployment_id} started.`);
    if (currentTab !== "deployments") history.pushState({}, "", `/apps/${current.id}/deployments`);
    await openApp(current.id, "deployments");
  } catch (err) { showError(err); }
  btn.disabled = false;
}

/** restart restarts the app's instances one at a time (the server keeps the others serving). */
async function restart() {
  const btn = /** @type {HTMLButtonElement} */ ($("#restart"));
  if (!confirm(`Restart ${current.name}? Its instances restart one at a time; a single instance is briefly unavailable.`)) return;
  btn.disabled = true;
  try {
    const { instances } = await call("POST", `/api/apps/${current.id}/restart`, {});
    toast(`Restarting ${instances} instance${instances === 1 ? "" : "s"}, one at a time.`);
  } catch (err) { showError(err); }
  btn.disabled = false;
}

// ---- environment ------------------------------------------------------------

async function loadEnv() {
  const { env } = await call("GET", `/api/apps/${current.id}/env`);
  $("#env-list").replaceChildren(...env.map((v) => {
    const del = el("button", { type: "button", className: "link danger", textContent: "Delete" });
    del.setAttribute("aria-label", `Delete ${v.key}`);
    del.addEventListener("click", async () => {
      if (!confirm(`Delete the variable ${v.key}? The next deployment starts without it.`)) return;
      try { await call("DELETE", `/api/apps/${current.id}/env/${encodeURIComponent(v.key)}`); toast(`${v.key} deleted.`); await loadEnv(); } catch (err) { showError(err); }
    });
    return el("li", {}, el("code", { textContent: v.key }), el("span", { className: "muted grow", textContent: `•••••• · updated ${ago(v.updated_at)}` }), del);
  }));
  if (!env.length) $("#env-list").replaceChildren(el("li", { className: "muted", textContent: "No variables yet." }));
}

/**
 * parseDotenv reads NAME=value lines (export prefix, quotes and comments
 * allowed); bad lines are reported by number.
 * @param {string} text
 */
function parseDotenv(text) {
  /** @type {[string, string][]} */
  const vars = [];
  const bad = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const m = line.match(/^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/);
    if (!m) { bad.push(i + 1); return; }
    let v = m[2];
    if (/^"(.*)"$/.test(v)) v = v.slice(1, -1).replace(/\\n/g, "\n").replace(/\\"/g, '"');
    else if (/^'(.*)'$/.test(v)) v = v.slice(1, -1);
    else v = v.replace(/\s+#.*$/, "");
    vars.push([m[1], v]);
  });
  return { vars, bad };
}

// ---- domains ----------------------------------------------------------------

/** @param {string} text @param {string} what */
export function copyButton(text, what) {
  const b = el("button", { type: "button", className: "small", textContent: "Copy" });
  b.setAttribute("aria-label", `Copy ${what}`);
  b.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(text); toast(`${what} copied.`); } catch (_) { toast("Copying is not allowed here: select the text instead.", "error"); }
  });
  return b;
}

/** @param {any} d */
function certState(d) {
  const c = d.certificate;
  if (!d.verified_at) return el("span", { className: "muted", textContent: "Certificate: issued after verification." });
  if (!c) return el("span", { className: "muted", textContent: "Certificate: requested on the first HTTPS visit." });
  const days = Math.round((new Date(c.not_after).getTime() - Date.now()) / 86400000);
  const cls = days < 0 ? "expired" : c.status === "valid" ? "valid" : "error";
  return el("span", {}, badge(days < 0 ? "certificate expired" : `certificate ${c.status}`, cls), " ",
    el("span", { className: "muted", textContent: `expires ${new Date(c.not_after).toLocaleDateString()} (${days} days)${c.issuer ? " · " + c.issuer : ""}${c.last_error ? " · " + c.last_error : ""}` }));
}

async function loadDomains() {
  const { domains } = await call("GET", `/api/apps/${current.id}/domains`);
  $("#domain-list").replaceChildren(...domains.map((d) => {
    const rm = el("button", { type: "button", className: "link danger", textContent: "Remove" });
    rm.setAttribute("aria-label", `Remove ${d.hostname}`);
    rm.addEventListener("click", async () => {
      if (!confirm(`Remove ${d.hostname} from this app?`)) return;
      try { await call("DELETE", `/api/apps/${current.id}/domains/${d.id}`); toast(`${d.hostname} removed.`); } catch (err) { showError(err); }
      await loadDomains();
    });
    const head = el("div", { className: "domain-head" }, el("strong", { textContent: d.hostname }),
      badge(d.verified_at ? "verified" : "waiting for DNS", d.verified_at ? "verified" : "pending"), el("span", { className: "spacer" }));
    const li = el("li", {}, head);
    if (!d.verified_at) {
      const verify = el("button", { type: "button", className: "small", textContent: "Check DNS now" });
      verify.addEventListener("click", async () => {
        verify.disabled = true;
        try { await call("POST", `/api/apps/${current.id}/domains/${d.id}/verify`); toast(`${d.hostname} verified.`); } catch (err) { showError(err); }
        await loadDomains();
      });
      head.append(verify);
    }
    head.append(rm);
    const recs = d.records || [];
    li.append(el("div", { className: "grow" },
      el("p", { className: "muted small", textContent: d.verified_at ? "Keep these records: the TXT proves ownership, the CNAME sends the traffic." : "Publish these records at your DNS provider, then check:" }),
      el("div", { className: "dns", attrs: { role: "table", "aria-label": `DNS records for ${d.hostname}` } },
        el("div", { className: "dns-row head", attrs: { role: "row" } }, ...["Type", "Name", "Value"].map((h) => el("span", { textContent: h, attrs: { role: "columnheader" } }))),
        ...recs.map((r) => el("div", { className: "dns-row", attrs: { role: "row" } },
          el("span", { className: "cell", attrs: { role: "cell" } }, el("strong", { textContent: r.type })),
          el("span", { className: "cell", attrs: { role: "cell" } }, el("code", { textContent: r.name }), copyButton(r.name, `${r.type} name`)),
          el("span", { className: "cell", attrs: { role: "cell" } }, el("code", { textContent: r.value }), copyButton(r.value, `${r.type} value`))))),
      recs.some((r) => r.type === "CNAME") ? el("p", { className: "hint", textContent: "At a zone's apex, where a CNAME is not allowed, use your provider's ALIAS/ANAME record with the same target." }) : "",
      d.last_error && !d.verified_at ? el("p", { className: "field-error", textContent: d.last_error }) : "",
      el("p", { className: "small" }, certState(d))));
    return li;
  }));
  if (!domains.length) $("#domain-list").replaceChildren(el("li", { className: "muted", textContent: "No custom domain yet. The app is always reachable at its own address." }));
}

// ---- wiring -----------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  leaveHooks.push((id) => { if (id !== "app") { tabLeave(currentTab, ""); currentTab = ""; } });
  $("#deploy").addEventListener("click", () => deploy());
  $("#restart").addEventListener("click", () => restart());
  $("#log-wrap").addEventListener("change", (e) => $("#log").classList.toggle("wrap", /** @type {HTMLInputElement} */ (e.target).checked));
  $("#log-jump").addEventListener("click", () => { const pre = $("#log"); pre.scrollTop = pre.scrollHeight; $("#log-follow").hidden = true; });
  $("#log").addEventListener("scroll", () => { const pre = $("#log"); if (pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24) $("#log-follow").hidden = true; });
  onSubmit(/** @type {HTMLFormElement} */ ($("#env-form")), async (d, f) => {
    await call("PUT", `/api/apps/${current.id}/env/${encodeURIComponent(d.key)}`, { value: d.value });
    f.reset(); await loadEnv();
    return `${d.key} saved. It applies from the next deployment.`;
  });
  onSubmit(/** @type {HTMLFormElement} */ ($("#env-bulk")), async (d, f) => {
    const { vars, bad } = parseDotenv(d.text);
    if (bad.length) throw Object.assign(new Error(`Line${bad.length > 1 ? "s" : ""} ${bad.join(", ")} ${bad.length > 1 ? "are" : "is"} not NAME=value.`), { data: { field: "text" } });
    if (!vars.length) throw Object.assign(new Error("Paste at least one NAME=value line."), { data: { field: "text" } });
    for (const [k, v] of vars) await call("PUT", `/api/apps/${current.id}/env/${encodeURIComponent(k)}`, { value: v });
    f.reset(); await loadEnv();
    return `${vars.length} variable${vars.length > 1 ? "s" : ""} saved.`;
  });
  onSubmit(/** @type {HTMLFormElement} */ ($("#domain-form")), async (d, f) => {
    await call("POST", `/api/apps/${current.id}/domains`, d);
    f.reset(); await loadDomains();
    return `${d.hostname} added: publish its DNS records.`;
  });
  onSubmit(/** @type {HTMLFormElement} */ ($("#delete-form")), async (d) => {
    if (d.confirm !== current.slug) throw Object.assign(new Error(`Type ${current.slug} exactly to confirm.`), { data: { field: "confirm" } });
    const r = await call("DELETE", `/api/apps/${current.id}`);
    if (r.status === "deleted") { go("/"); return `${current.name} deleted.`; }
    setAppStatus(r.status);
    return `${current.name} is being deleted: its worker removes the containers first.`;
  });
});
