"use strict";
// Git providers: connections on the team page, the repository picker of
// the new-app form, and an app's webhook, deploy token and settings.

const providerNames = { github: "GitHub", gitlab: "GitLab", bitbucket: "Bitbucket", codeberg: "Codeberg / Gitea / Forgejo" };
const frameworkNames = { nextjs: "Next.js", vite: "Vite", node: "Node.js", go: "Go", python: "Python", static: "a static site", dockerfile: "a Dockerfile" };

// fieldError shows an API error next to the form field it names (the
// answer's `field`), else in the page's error box.
function fieldError(form, err) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  const name = err && err.data && err.data.field;
  const input = name && form.querySelector(`[name="${name}"]`);
  if (!input) { showError(err); return; }
  showError(null);
  const msg = el("div", { className: "field-error", role: "alert", textContent: err.message });
  (input.closest("label") || input).after(msg);
  input.focus();
}

function clearFieldErrors(form) { for (const old of form.querySelectorAll(".field-error")) old.remove(); }

// ---- team page: connections --------------------------------------------

async function loadGitConnections() {
  const box = $("#git-connections");
  const { connections } = await call("GET", `/api/teams/${team}/git/connections`);
  box.replaceChildren(...connections.map((c) => {
    const li = el("li", {}, el("strong", { textContent: providerNames[c.provider] || c.provider }), ` · ${c.account} · `,
      el("span", { className: "muted", textContent: (c.method === "oauth" ? "OAuth" : "access token") + (c.api_url ? ` · ${c.api_url}` : "") }));
    if (canAdmin()) {
      const rm = el("button", { className: "link", textContent: "disconnect" });
      rm.addEventListener("click", async () => {
        if (!confirm(`Disconnect ${c.account} at ${providerNames[c.provider]}? Webhooks it installed are removed.`)) return;
        try {
          const r = await call("DELETE", `/api/teams/${team}/git/connections/${c.id}`);
          showError(r.warnings.length ? new Error(r.warnings.join(" ")) : null);
          await loadGitConnections();
        } catch (err) { showError(err); }
      });
      li.append(" ", rm);
    }
    return li;
  }));
  if (!connections.length) box.replaceChildren(el("li", { className: "muted", textContent: "No provider connected yet." }));
  $("#git-connect").hidden = !canAdmin();
  const oauth = $("#git-oauth");
  oauth.replaceChildren();
  try {
    const { providers } = await call("GET", "/api/auth/providers");
    for (const p of providers.filter((p) => providerNames[p.id])) {
      oauth.append(el("a", { className: "button", href: `/api/teams/${team}/git/oauth/${p.id}`, textContent: `Connect ${p.name} (OAuth)` }), " ");
    }
  } catch (_) { /* token connections still work */ }
}

// ---- new app: repository picker -----------------------------------------

const picker = { conn: 0, page: 1, repo: null };

async function gitNewAppInit() {
  const sel = $("#app-conn");
  try {
    const { connections } = await call("GET", `/api/teams/${team}/git/connections`);
    sel.replaceChildren(el("option", { value: "", textContent: "— a repository URL instead —" }),
      ...connections.map((c) => el("option", { value: c.id, textContent: `${providerNames[c.provider] || c.provider} · ${c.account}` })));
    if (connections.length) sel.value = connections[0].id;
  } catch (err) { showError(err); }
  gitPickerChanged();
}

function gitPickerChanged() {
  picker.conn = Number($("#app-conn").value) || 0;
  picker.page = 1;
  picker.repo = null;
  $("#repo-picker").hidden = !picker.conn;
  $("#app-url-fields").hidden = !!picker.conn;
  $("#repo-chosen").textContent = "";
  if (picker.conn) gitLoadRepos();
}

async function gitLoadRepos() {
  const list = $("#repo-list");
  list.replaceChildren(el("li", { className: "muted loading", textContent: "Loading repositories" }));
  const q = encodeURIComponent($("#repo-search").value || "");
  try {
    const r = await call("GET", `/api/teams/${team}/git/connections/${picker.conn}/repos?q=${q}&page=${picker.page}&per_page=10`);
    list.replaceChildren(...r.repos.map((repo) => {
      const b = el("button", { type: "button", className: "link", textContent: repo.full_name });
      b.addEventListener("click", () => gitChooseRepo(repo));
      return el("li", {}, b, repo.private ? el("span", { className: "muted", textContent: " · private" }) : "");
    }));
    if (!r.repos.length) list.replaceChildren(el("li", { className: "muted", textContent: "No repository matches." }));
    const pages = Math.max(1, Math.ceil(r.total / r.per_page));
    $("#repo-page").textContent = `page ${r.page} of ${pages} · ${r.total} repositories`;
    $("#repo-prev").disabled = r.page <= 1;
    $("#repo-next").disabled = r.page >= pages;
  } catch (err) {
    list.replaceChildren(el("li", { className: "field-error", textContent: err.message }));
  }
}

async function gitChooseRepo(repo) {
  picker.repo = repo;
  const form = $("#app-form");
  clearFieldErrors(form);
  $("#repo-chosen").textContent = repo.full_name;
  if (!form.elements.name.value) form.elements.name.value = repo.full_name.split("/").pop();
  if (!form.elements.slug.value) form.elements.slug.value = repo.full_name.split("/").pop().toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 40);
  const br = $("#repo-branch");
  br.replaceChildren(el("option", { value: repo.default_branch, textContent: repo.default_branch }));
  const base = `/api/teams/${team}/git/connections/${picker.conn}`;
  try {
    const { branches } = await call("GET", `${base}/branches?repo=${encodeURIComponent(repo.full_name)}`);
    br.replaceChildren(...branches.map((b) => el("option", { value: b.name, textContent: b.name })));
    br.value = repo.default_branch;
  } catch (err) { fieldError(form, Object.assign(err, { data: { field: "repo_branch" } })); return; }
  await gitDetect();
}

async function gitDetect() {
  const out = $("#repo-detected");
  out.textContent = "";
  if (!picker.repo) return;
  try {
    const { framework } = await call("GET", `/api/teams/${team}/git/connections/${picker.conn}/detect?repo=${encodeURIComponent(picker.repo.full_name)}&branch=${encodeURIComponent($("#repo-branch").value)}`);
    out.textContent = `${frameworkNames[framework] || framework} detected`;
    $("#app-form").elements.framework.value = framework;
  } catch (err) { out.textContent = err.message; }
}

// gitAppPayload turns the new-app form into the create request.
function gitAppPayload(d) {
  delete d.repo_branch;
  const kind = d.source_kind;
  delete d.source_kind;
  if (kind === "image") {
    for (const k of ["git_repo", "git_branch", "git_provider", "framework"]) delete d[k];
    if (!d.registry_username && !d.registry_password) { delete d.registry_username; delete d.registry_password; }
    return d;
  }
  delete d.image; delete d.registry_username; delete d.registry_password;
  if (picker.conn) {
    delete d.git_repo;
    d.git_connection_id = picker.conn;
    d.repo = picker.repo ? picker.repo.full_name : "";
    d.git_branch = $("#repo-branch").value;
  } else if (!d.git_provider) {
    delete d.git_provider;
  }
  return d;
}

// A webhook secret shown once, kept until the app page shows it.
let shownOnce = null;

function gitAfterCreate(app) { shownOnce = app.hook && app.hook.secret ? app.hook : null; }

// ---- app page: webhook, deploy token, settings ----------------------------

function renderHook(h) {
  const box = $("#hook-box");
  box.replaceChildren(el("p", {}, el("span", { className: `badge ${h.installed ? "succeeded" : "queued"}`, textContent: h.installed ? "webhook installed" : "add the webhook by hand" }),
    " ", el("code", { textContent: h.url })));
  if (h.reason) box.append(el("p", { className: "muted", textContent: h.reason }));
  if (h.secret) {
    box.append(el("div", { className: "secret" }, "Secret (shown only now): ", el("code", { id: "hook-secret", textContent: h.secret })));
  }
  if (h.steps && !h.installed) box.append(el("ol", {}, ...h.steps.map((s) => el("li", { textContent: s }))));
}

async function gitOpenApp() {
  const a = current;
  const s = $("#settings-form");
  clearFieldErrors(s);
  s.elements.git_branch.value = a.git_branch;
  s.elements.framework.value = a.framework;
  s.elements.port.value = a.port;
  s.elements.health_path.value = a.health_path;
  s.elements.root_dir.value = a.root_dir;
  s.elements.dockerfile.value = a.dockerfile;
  s.elements.build_command.value = a.build_command;
  s.elements.start_command.value = a.start_command;
  s.elements.auto_deploy.checked = a.auto_deploy;
  s.elements.previews.checked = a.previews;
  s.elements.fork_previews.checked = a.fork_previews;
  $("#token-state").textContent = a.has_git_token ? "A deploy token is set." : (a.git_connection_id ? "Clones with the connection's token." : "No token: public repositories only.");
  $("#git-box").hidden = !!a.preview_of;
  if (a.preview_of) return;
  const im = $("#image-form");
  im.hidden = !a.image;
  $("#git-only").hidden = !!a.image;
  if (a.image) {
    clearFieldErrors(im);
    im.elements.image.value = a.image;
    im.elements.registry_username.value = a.registry_username;
    im.elements.registry_password.value = "";
    im.elements.registry_password.placeholder = a.has_registry_password ? "(set: type to replace)" : "";
    return;
  }
  if (shownOnce) { renderHook(shownOnce); shownOnce = null; return; }
  try { renderHook(await call("GET", `/api/apps/${a.id}/hook`)); } catch (err) { showError(err); }
}

document.addEventListener("DOMContentLoaded", () => {
  // The settings offer the frameworks of the new-app form.
  $("#settings-form").elements.framework.replaceChildren(...[...$("#app-form").elements.framework.options].map((o) => o.cloneNode(true)));
  $("#git-connect-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = formData(e.target);
    if (!d.api_url) delete d.api_url;
    clearFieldErrors(e.target);
    try {
      await call("POST", `/api/teams/${team}/git/connections`, d);
      e.target.reset(); showError(null); await loadGitConnections();
    } catch (err) { fieldError(e.target, err); }
  });
  $("#app-conn").addEventListener("change", gitPickerChanged);
  for (const r of document.querySelectorAll('input[name="source_kind"]')) {
    r.addEventListener("change", () => {
      const image = $("#app-form").elements.source_kind.value === "image";
      $("#image-fields").hidden = !image;
      $("#git-fields").hidden = image;
      clearFieldErrors($("#app-form"));
    });
  }
  $("#image-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    clearFieldErrors(f);
    const body = { image: f.elements.image.value };
    // The login changes only when a password is typed, or both are cleared.
    if (f.elements.registry_password.value || !f.elements.registry_username.value) {
      body.registry_username = f.elements.registry_username.value;
      body.registry_password = f.elements.registry_password.value;
    }
    try {
      current = await call("PATCH", `/api/apps/${current.id}`, body);
      showError(null); gitOpenApp();
    } catch (err) { fieldError(f, err); }
  });
  $("#repo-search").addEventListener("input", () => { picker.page = 1; clearTimeout(picker.t); picker.t = setTimeout(gitLoadRepos, 250); });
  $("#repo-prev").addEventListener("click", () => { picker.page--; gitLoadRepos(); });
  $("#repo-next").addEventListener("click", () => { picker.page++; gitLoadRepos(); });
  $("#repo-branch").addEventListener("change", gitDetect);
  $("#hook-rotate").addEventListener("click", async () => {
    if (!confirm("Make a new webhook secret? Deliveries signed with the old one are refused from now on.")) return;
    try { renderHook(await call("POST", `/api/apps/${current.id}/hook`)); showError(null); } catch (err) { showError(err); }
  });
  $("#token-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFieldErrors(e.target);
    try {
      await call("PUT", `/api/apps/${current.id}/git-token`, formData(e.target));
      e.target.reset(); current = await call("GET", `/api/apps/${current.id}`); gitOpenApp();
    } catch (err) { fieldError(e.target, err); }
  });
  $("#settings-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    clearFieldErrors(f);
    const body = { git_branch: f.elements.git_branch.value, framework: f.elements.framework.value, port: Number(f.elements.port.value),
      health_path: f.elements.health_path.value, root_dir: f.elements.root_dir.value, dockerfile: f.elements.dockerfile.value,
      build_command: f.elements.build_command.value, start_command: f.elements.start_command.value, auto_deploy: f.elements.auto_deploy.checked, previews: f.elements.previews.checked,
      fork_previews: f.elements.fork_previews.checked };
    if (current.image) delete body.git_branch; // an image has no branch
    try {
      const v = await call("PATCH", `/api/apps/${current.id}`, body);
      showError(null);
      if (v.hook) shownOnce = v.hook;
      await openApp(current.id);
      $("#settings-saved").hidden = false;
    } catch (err) { fieldError(f, err); }
  });
});
