// @ts-check
// Git providers: connections on the team page, the repository picker of
// the new-app form, and an app's webhook, deploy token and settings.
import { $, call, clearFieldErrors, el, fieldError, onSubmit, showError, slugify, slugPreview, team, toast } from "./app.js";
import { current, renderAppHeader, setCurrent } from "./apppage.js";
import { canAdmin } from "./ops.js";

export const providerNames = { github: "GitHub", gitlab: "GitLab", bitbucket: "Bitbucket", codeberg: "Codeberg / Gitea / Forgejo" };
export const frameworkNames = { nextjs: "Next.js", vite: "Vite", node: "Node.js", go: "Go", python: "Python", static: "a static site", dockerfile: "a Dockerfile" };

// ---- team page: connections --------------------------------------------

export async function loadGitConnections() {
  const box = $("#git-connections");
  const { connections } = await call("GET", `/api/teams/${team}/git/connections`);
  box.replaceChildren(...connections.map((c) => {
    const li = el("li", {}, el("span", { className: "grow" }, el("strong", { textContent: providerNames[c.provider] || c.provider }), ` · ${c.account}`,
      el("div", { className: "muted small", textContent: (c.method === "oauth" ? "OAuth" : "access token") + (c.api_url ? ` · ${c.api_url}` : "") })));
    if (canAdmin()) {
      const rm = el("button", { type: "button", className: "link danger", textContent: "Disconnect" });
      rm.addEventListener("click", async () => {
        if (!confirm(`Disconnect ${c.account} at ${providerNames[c.provider]}? Webhooks it installed are removed.`)) return;
        try {
          const r = await call("DELETE", `/api/teams/${team}/git/connections/${c.id}`);
          if (r.warnings.length) showError(new Error(r.warnings.join(" "))); else toast(`${c.account} disconnected.`);
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
      oauth.append(el("a", { className: "button", href: `/api/teams/${team}/git/oauth/${p.id}`, textContent: `Connect ${p.name} (OAuth)`, target: "_self" }), " ");
    }
  } catch (_) { /* token connections still work */ }
}

// ---- new app: repository picker -----------------------------------------

const picker = { conn: 0, page: 1, repo: null };

export async function gitNewAppInit() {
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
      b.setAttribute("aria-label", `Use ${repo.full_name}`);
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
  if (!form.elements.slug.value) form.elements.slug.value = slugify(repo.full_name.split("/").pop());
  slugPreview(form.elements.slug.value);
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
export function gitAppPayload(d) {
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

export function gitAfterCreate(app) { shownOnce = app.hook && app.hook.secret ? app.hook : null; }

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

export async function gitOpenApp() {
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
  s.elements.cpu_millis.value = a.cpu_millis;
  s.elements.memory_mb.value = a.memory_mb;
  s.elements.replicas.value = a.replicas || 1;
  s.elements.git_repo.value = a.git_repo;
  $("#set-repo-field").hidden = !!a.image || !!a.git_connection_id;
  s.elements.git_branch.closest(".field").hidden = !!a.image;
  $("#token-state").textContent = a.has_git_token ? "A deploy token is set." : (a.git_connection_id ? "Clones with the connection's token." : "No token: public repositories only.");
  $("#git-box").hidden = !!a.preview_of;
  $("#settings-saved").hidden = true;
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
  $("#app-conn").addEventListener("change", gitPickerChanged);
  for (const r of document.querySelectorAll('input[name="source_kind"]')) {
    r.addEventListener("change", () => {
      const image = $("#app-form").elements.source_kind.value === "image";
      $("#image-fields").hidden = !image;
      $("#git-fields").hidden = image;
      clearFieldErrors($("#app-form"));
    });
  }
  $("#repo-search").addEventListener("input", () => { picker.page = 1; clearTimeout(picker.t); picker.t = setTimeout(gitLoadRepos, 250); });
  $("#repo-prev").addEventListener("click", () => { picker.page--; gitLoadRepos(); });
  $("#repo-next").addEventListener("click", () => { picker.page++; gitLoadRepos(); });
  $("#repo-branch").addEventListener("change", gitDetect);
  $("#hook-rotate").addEventListener("click", async () => {
    if (!confirm("Make a new webhook secret? Deliveries signed with the old one are refused from now on.")) return;
    try { renderHook(await call("POST", `/api/apps/${current.id}/hook`)); toast("New webhook secret made."); } catch (err) { showError(err); }
  });
  onSubmit($("#git-connect-form"), async (d, f) => {
    if (!d.api_url) delete d.api_url;
    await call("POST", `/api/teams/${team}/git/connections`, d);
    f.reset(); await loadGitConnections();
    return `${providerNames[d.provider] || d.provider} connected.`;
  });
  onSubmit($("#image-form"), async (d, f) => {
    const body = { image: d.image };
    // The login changes only when a password is typed, or both are cleared.
    if (d.registry_password || !d.registry_username) {
      body.registry_username = d.registry_username;
      body.registry_password = d.registry_password;
    }
    setCurrent(await call("PATCH", `/api/apps/${current.id}`, body));
    renderAppHeader(); gitOpenApp();
    return "Image saved: deploy to use it.";
  });
  onSubmit($("#token-form"), async (d, f) => {
    await call("PUT", `/api/apps/${current.id}/git-token`, d);
    f.reset(); setCurrent(await call("GET", `/api/apps/${current.id}`)); gitOpenApp();
    return "Deploy token saved.";
  });
  onSubmit($("#settings-form"), async (_d, f) => {
    const e = /** @type {any} */ (f.elements);
    /** @type {Record<string, any>} */
    const body = { git_branch: e.git_branch.value, framework: e.framework.value, port: Number(e.port.value),
      health_path: e.health_path.value, root_dir: e.root_dir.value, dockerfile: e.dockerfile.value,
      build_command: e.build_command.value, start_command: e.start_command.value, auto_deploy: e.auto_deploy.checked, previews: e.previews.checked,
      fork_previews: e.fork_previews.checked, cpu_millis: Number(e.cpu_millis.value), memory_mb: Number(e.memory_mb.value) };
    if (current.image) delete body.git_branch; // an image has no branch
    if (Number(e.replicas.value) !== (current.replicas || 1)) body.replicas = Number(e.replicas.value);
    if (!current.image && !current.git_connection_id && e.git_repo.value !== current.git_repo) body.git_repo = e.git_repo.value;
    const v = await call("PATCH", `/api/apps/${current.id}`, body);
    if (v.hook) shownOnce = v.hook;
    setCurrent(await call("GET", `/api/apps/${current.id}`));
    renderAppHeader(); gitOpenApp();
    $("#settings-saved").hidden = false;
    return "Settings saved. They apply from the next deployment.";
  });
});
