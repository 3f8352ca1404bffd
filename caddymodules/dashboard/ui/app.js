"use strict";
// The dashboard: a few views over the JSON API. No framework, no build step.
const $ = (sel) => document.querySelector(sel);
let csrf = "";
let me = null;
let team = null;
let logTimer = null;

async function call(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrf) opts.headers["X-CSRF-Token"] = csrf;
  const resp = await fetch(path, opts);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = new Error(data.error || resp.statusText);
    err.status = resp.status;
    err.data = data;
    throw err;
  }
  return data;
}

function showError(err) {
  const box = $("#error");
  if (!err) { box.hidden = true; return; }
  box.textContent = err.message || String(err);
  box.hidden = false;
}

function show(id) {
  for (const s of ["login", "invite", "apps", "app", "team-page", "workers-page"]) $("#" + s).hidden = s !== id;
  $("#nav").hidden = id === "login";
  if (logTimer && id !== "app") { clearInterval(logTimer); logTimer = null; }
  opsShow(id);
}

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) e.append(c);
  return e;
}

async function boot() {
  try {
    me = await call("GET", "/api/me");
  } catch (err) {
    if (err.status === 401) {
      const inv = invitePath();
      if (inv) { me = null; openInvite(inv); return; }
      if (!authOnUnauthorized(err)) show("login");
      return;
    }
    showError(err); return;
  }
  csrf = me.csrf_token;
  if (me.user.must_change_password) { authForcePassword(); return; }
  $("#who").textContent = me.user.email;
  const sel = $("#team");
  sel.replaceChildren(...me.teams.map((t) => el("option", { value: t.id, textContent: `${t.name} (${t.plan})` })));
  team = me.teams[0] && me.teams[0].id;
  route();
}

function invitePath() {
  const m = location.pathname.match(/^\/invite\/([A-Za-z0-9_-]+)$/);
  return m && m[1];
}

// openInvite shows what an invitation link is for: join (signed in as the
// invited address), sign in first, or create the account.
async function openInvite(token) {
  show("invite");
  $("#nav").hidden = !me;
  for (const id of ["#invite-accept", "#invite-signin", "#invite-signup"]) $(id).hidden = true;
  let inv;
  try {
    inv = await call("GET", `/api/invitations/${token}`);
  } catch (err) { $("#invite-what").textContent = ""; showError(err); return; }
  $("#invite-what").textContent = `You are invited to join the team ${inv.team_name} as ${inv.role} (${inv.email}).`;
  const hint = $("#invite-hint");
  if (me && me.user.email.toLowerCase() === inv.email) {
    hint.textContent = "";
    $("#invite-accept").hidden = false;
  } else if (me) {
    hint.textContent = `You are signed in as ${me.user.email}: sign out, then open this link again and sign in as ${inv.email}.`;
  } else if (inv.has_account) {
    hint.textContent = `Sign in as ${inv.email} to join.`;
    $("#invite-signin").hidden = false;
  } else {
    hint.textContent = `Create the account of ${inv.email} to join.`;
    $("#invite-signup").hidden = false;
  }
  $("#invite-accept").onclick = async () => {
    try { await call("POST", `/api/invitations/${token}/accept`); location.assign("/team"); } catch (err) { showError(err); }
  };
  $("#invite-signin").onclick = () => show("login");
  $("#invite-signup").onsubmit = async (e) => {
    e.preventDefault();
    try {
      const r = await call("POST", `/api/invitations/${token}/signup`, formData(e.target));
      csrf = r.csrf_token;
      location.assign("/team");
    } catch (err) { showError(err); }
  };
}

function route() {
  const m = location.pathname.match(/^\/apps\/(\d+)$/);
  const inv = invitePath();
  if (inv) { openInvite(inv); return; }
  if (m) openApp(Number(m[1]));
  else if (location.pathname === "/team") openTeam();
  else if (location.pathname === "/workers") openWorkers();
  else listApps();
}

function go(path) { history.pushState({}, "", path); showError(null); route(); }

// showWorkerStatus tells, on the apps page and next to Deploy, when no
// worker is online: deployments would wait in the queue.
async function showWorkerStatus() {
  try {
    const { online, message } = await call("GET", "/api/workers/online");
    for (const p of document.querySelectorAll(".no-worker")) {
      p.hidden = online > 0;
      p.textContent = online > 0 ? "" : "No worker online. " + (message || "");
    }
  } catch (err) { showError(err); }
}

function appLink(url) {
  return el("a", { href: url, textContent: url, target: "_blank", rel: "noopener" });
}

async function listApps() {
  show("apps");
  showWorkerStatus();
  if (!team) {
    $("#app-list").replaceChildren(el("li", { className: "muted", textContent: "You are not in a team yet: create one on the Team page, or ask a team's owner to add you." }));
    $("#new-app").hidden = true;
    return;
  }
  $("#new-app").hidden = false;
  try {
    const { apps } = await call("GET", `/api/teams/${team}/apps`);
    const list = $("#app-list");
    list.replaceChildren(...apps.map((a) => {
      const link = el("a", { href: `/apps/${a.id}`, textContent: a.name });
      link.addEventListener("click", (e) => { e.preventDefault(); go(`/apps/${a.id}`); });
      const deployed = a.last_deploy_at ? "last deploy " + new Date(a.last_deploy_at).toLocaleString() : "never deployed";
      return el("li", {}, link, " ", el("span", { className: `badge ${a.status}`, textContent: a.status }),
        a.url ? el("div", {}, appLink(a.url)) : "",
        el("div", { className: "muted", textContent: a.slug + (a.git_repo ? " · " + a.git_repo : "") + " · " + deployed }));
    }));
    if (apps.length === 0) list.replaceChildren(el("li", { className: "muted", textContent: "No apps yet: create one below." }));
    $("#new-app").open = apps.length === 0;
    gitNewAppInit();
  } catch (err) { showError(err); }
}

let current = null;

async function openApp(id) {
  show("app");
  try {
    current = await call("GET", `/api/apps/${id}`);
  } catch (err) { showError(err); return; }
  $("#app-name").textContent = current.name;
  $("#app-meta").textContent = `${current.slug} · ${current.git_repo || "no repository"} (${current.git_branch}) · ${current.cpu_millis}m CPU · ${current.memory_mb} MB`;
  $("#app-links").replaceChildren(...(current.urls || []).flatMap((u, i) => i ? [" · ", appLink(u)] : [appLink(u)]));
  showWorkerStatus();
  $("#app-status").textContent = current.status;
  $("#app-status").className = `badge ${current.status}`;
  await Promise.all([loadDeployments(), loadEnv(), loadDomains()]);
  gitOpenApp();
  opsOpenApp();
  routesOpenApp();
}

async function loadDeployments(follow = true) {
  const { deployments } = await call("GET", `/api/apps/${current.id}/deployments`);
  const body = $("#deployments tbody");
  body.replaceChildren(...deployments.map((d) => {
    const btn = el("button", { className: "link", textContent: "log" });
    btn.addEventListener("click", () => followLog(d.id));
    const row = el("tr", {}, el("td", { textContent: d.id }), el("td", {}, el("span", { className: `badge ${d.status}`, textContent: d.status })),
      el("td", { textContent: (d.commit || "").slice(0, 10) }), el("td", { textContent: d.trigger }),
      el("td", { textContent: new Date(d.created_at).toLocaleString() }), el("td", {}, btn));
    if (d.status === "succeeded") {
      const rb = el("button", { className: "link", textContent: "roll back" });
      rb.addEventListener("click", () => deploy(d.id));
      row.lastChild.append(" ", rb);
    }
    if (["queued", "building", "deploying"].includes(d.status)) {
      const cb = el("button", { className: "link", textContent: "cancel" });
      cb.addEventListener("click", async () => {
        cb.disabled = true;
        try {
          await call("POST", `/api/apps/${current.id}/deployments/${d.id}/cancel`);
          await loadDeployments(false);
        } catch (err) { showError(err); cb.disabled = false; }
      });
      row.lastChild.append(" ", cb);
    }
    return row;
  }));
  if (follow && deployments.length && !logTimer) followLog(deployments[0].id);
}

const stages = { clone: 10, build: 35, start: 65, health: 80, switch: 92, done: 100 };

function followLog(dep) {
  if (logTimer) clearInterval(logTimer);
  $("#log-box").hidden = false;
  $("#log-dep").textContent = "#" + dep;
  const pre = $("#log");
  pre.textContent = "";
  let after = 0;
  const tick = async () => {
    try {
      const { status, lines } = await call("GET", `/api/apps/${current.id}/deployments/${dep}/logs?after=${after}`);
      for (const l of lines) {
        after = l.id;
        pre.append(l.line + "\n");
        const m = l.line.match(/^\[(\w+)\]/);
        if (m && stages[m[1]]) $("#progress-bar").style.width = stages[m[1]] + "%";
      }
      if (lines.length) pre.scrollTop = pre.scrollHeight;
      $("#log-status").textContent = status;
      $("#log-status").className = `badge ${status}`;
      if (status === "succeeded") $("#progress-bar").style.width = "100%";
      if (["succeeded", "failed", "cancelled", "superseded"].includes(status)) {
        clearInterval(logTimer); logTimer = null;
        await loadDeployments(false);
        const a = await call("GET", `/api/apps/${current.id}`);
        $("#app-status").textContent = a.status;
        $("#app-status").className = `badge ${a.status}`;
      }
    } catch (err) { showError(err); }
  };
  tick();
  logTimer = setInterval(tick, 1000);
}

async function deploy(rollbackOf) {
  const btn = $("#deploy");
  btn.disabled = true;
  try {
    const body = rollbackOf ? { rollback_of: rollbackOf } : {};
    const { deployment_id } = await call("POST", `/api/apps/${current.id}/deployments`, body);
    if (logTimer) { clearInterval(logTimer); logTimer = null; }
    await loadDeployments();
    followLog(deployment_id);
  } catch (err) { showError(err); }
  btn.disabled = false;
}

async function loadEnv() {
  const { env } = await call("GET", `/api/apps/${current.id}/env`);
  $("#env-list").replaceChildren(...env.map((v) => {
    const del = el("button", { className: "link", textContent: "delete" });
    del.addEventListener("click", async () => {
      try { await call("DELETE", `/api/apps/${current.id}/env/${encodeURIComponent(v.key)}`); await loadEnv(); } catch (err) { showError(err); }
    });
    return el("li", {}, el("code", { textContent: v.key }), " = •••••• ", del);
  }));
}

async function loadDomains() {
  const { domains } = await call("GET", `/api/apps/${current.id}/domains`);
  $("#domain-list").replaceChildren(...domains.map((d) => {
    const li = el("li", {}, el("strong", { textContent: d.hostname }), " ",
      el("span", { className: `badge ${d.verified_at ? "succeeded" : "queued"}`, textContent: d.verified_at ? "verified" : "waiting for DNS" }));
    if (!d.verified_at) {
      const verify = el("button", { className: "link", textContent: "check now" });
      verify.addEventListener("click", async () => {
        try { await call("POST", `/api/apps/${current.id}/domains/${d.id}/verify`); showError(null); } catch (err) { showError(err); }
        await loadDomains();
      });
      li.append(" ", verify, el("div", { className: "muted", textContent: d.instructions }));
    }
    const rm = el("button", { className: "link", textContent: "remove" });
    rm.addEventListener("click", async () => {
      if (!confirm(`Remove ${d.hostname} from this app?`)) return;
      try { await call("DELETE", `/api/apps/${current.id}/domains/${d.id}`); showError(null); } catch (err) { showError(err); }
      await loadDomains();
    });
    li.append(" ", rm);
    return li;
  }));
}

function formData(form) {
  const out = {};
  for (const [k, v] of new FormData(form)) out[k] = v;
  return out;
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await call("POST", "/api/login", formData(e.target));
      csrf = r.csrf_token;
      showError(null);
      await boot();
    } catch (err) { showError(err); }
  });
  $("#logout").addEventListener("click", async () => {
    try { await call("POST", "/api/logout"); } catch (_) { /* signed out anyway */ }
    csrf = ""; show("login");
  });
  $("#team").addEventListener("change", (e) => { team = Number(e.target.value); go("/"); });
  $("#back").addEventListener("click", (e) => { e.preventDefault(); go("/"); });
  $("#app-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = gitAppPayload(formData(e.target));
    d.cpu_millis = Number(d.cpu_millis); d.memory_mb = Number(d.memory_mb);
    clearFieldErrors(e.target);
    try {
      const app = await call("POST", `/api/teams/${team}/apps`, d);
      e.target.reset();
      gitAfterCreate(app);
      go(`/apps/${app.id}`);
    } catch (err) { fieldError(e.target, err); }
  });
  $("#deploy").addEventListener("click", () => deploy());
  $("#delete-app").addEventListener("click", async () => {
    if (!confirm(`Delete ${current.name}? Its containers, deployments, variables and domains go too.`)) return;
    try {
      const r = await call("DELETE", `/api/apps/${current.id}`);
      showError(null);
      if (r.status === "deleted") { go("/"); return; }
      $("#app-status").textContent = r.status;
      $("#app-status").className = `badge ${r.status}`;
    } catch (err) { showError(err); }
  });
  $("#env-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = formData(e.target);
    try {
      await call("PUT", `/api/apps/${current.id}/env/${encodeURIComponent(d.key)}`, { value: d.value });
      e.target.reset(); showError(null); await loadEnv();
    } catch (err) { showError(err); }
  });
  $("#domain-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await call("POST", `/api/apps/${current.id}/domains`, formData(e.target));
      e.target.reset(); showError(null); await loadDomains();
    } catch (err) { showError(err); }
  });
  window.addEventListener("popstate", route);
  boot();
});
