// @ts-check
// The dashboard shell: API calls, the router (every page and tab has its
// own URL), the sidebar, toasts and form validation. Pages live in
// apppage.js (an app), ops.js (team, workers, logs, metrics, alerts),
// auth.js (sign-in steps, Security) and git.js (providers, new app).
// No framework and no build step: ES modules loaded by the browser.
import { authForcePassword, authOnUnauthorized, security } from "./auth.js";
import { openApp } from "./apppage.js";
import { frameworkNames, gitAfterCreate, gitAppPayload, gitNewAppInit } from "./git.js";
import { openTeam, openWorkers } from "./ops.js";

/** $ finds one element of the page (any: callers know its kind). @type {(sel: string) => any} */
export const $ = (sel) => document.querySelector(sel);
export let csrf = "";
/** @type {any} */
export let me = null;
/** @type {number|null} */
export let team = null;
/** @param {string} v */
export function setCsrf(v) { csrf = v; }
/** @param {any} v */
export function setMe(v) { me = v; }
/** @param {number|null} v */
export function setTeam(v) { team = v; }

/**
 * call sends a JSON request to the API; a non-2xx answer throws an Error
 * with the API's sentence, its status and its body (`data.field` names
 * the input at fault).
 * @param {string} method @param {string} path @param {any} [body]
 */
export async function call(method, path, body) {
  /** @type {RequestInit & {headers: Record<string,string>}} */
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrf) opts.headers["X-CSRF-Token"] = csrf;
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (err) {
    // A dropped keep-alive connection fails a request at once: a read is
    // asked again once; a change is not (it may have been applied).
    if (method !== "GET") throw new Error("The control plane did not answer: check your connection and try again.");
    await new Promise((r) => setTimeout(r, 300));
    try { resp = await fetch(path, opts); } catch (_) { throw new Error("The control plane did not answer: check your connection and try again."); }
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = /** @type {Error & {status?: number, data?: any}} */ (new Error(data.error || resp.statusText));
    err.status = resp.status;
    err.data = data;
    throw err;
  }
  return data;
}

/**
 * el makes an element: properties are assigned, attributes under `attrs`.
 * @param {string} tag @param {any} [props] @param {...(Node|string|null|undefined)} children
 * @returns {any} the element (any: its kind follows tag)
 */
export function el(tag, props, ...children) {
  const e = document.createElement(tag);
  const { attrs, ...rest } = props || {};
  Object.assign(e, rest);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined && c !== "") e.append(c);
  return e;
}

// ---- toasts ---------------------------------------------------------------

/**
 * toast shows a short message in the corner: success fades after 5 s,
 * errors stay until closed.
 * @param {string} text @param {"ok"|"error"} [kind]
 */
export function toast(text, kind = "ok") {
  const close = el("button", { type: "button", textContent: "×", attrs: { "aria-label": "Dismiss" } });
  const t = el("div", { className: `toast ${kind}`, attrs: { role: kind === "error" ? "alert" : "status" } }, el("span", { textContent: text }), close);
  close.addEventListener("click", () => t.remove());
  $("#toasts").append(t);
  while ($("#toasts").childElementCount > 4) $("#toasts").firstElementChild.remove();
  if (kind !== "error") setTimeout(() => t.remove(), 5000);
  return t;
}

/** showError reports an error in a toast (null clears nothing: toasts are dismissed by hand). @param {any} err */
export function showError(err) {
  if (!err) return;
  if (err.status === 401 && me) { toast("Your session ended: sign in again.", "error"); me = null; show("login"); return; }
  toast(err.message || String(err), "error");
}

// ---- forms ----------------------------------------------------------------

/** @param {HTMLFormElement} form */
export function formData(form) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const [k, v] of new FormData(form)) out[k] = v;
  return out;
}

/** @param {HTMLFormElement} form */
export function clearFieldErrors(form) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const i of form.querySelectorAll("[aria-invalid]")) { i.removeAttribute("aria-invalid"); unlinkError(i); }
}

/** @param {Element} input */
export function unlinkError(input) {
  const ids = (input.getAttribute("aria-describedby") || "").split(" ").filter((x) => x && !x.endsWith("-err"));
  if (ids.length) input.setAttribute("aria-describedby", ids.join(" ")); else input.removeAttribute("aria-describedby");
}

let errSeq = 0;
/**
 * markField shows msg under the input and links it for screen readers.
 * @param {HTMLElement} input @param {string} msg
 */
export function markField(input, msg) {
  const id = `f${++errSeq}-err`;
  const note = el("p", { className: "field-error", id, textContent: msg });
  const holder = input.closest(".field") || input.closest("label") || input;
  holder.append(note);
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", [input.getAttribute("aria-describedby"), id].filter(Boolean).join(" "));
}

/** Human words for the browser's own checks. @param {HTMLInputElement} i */
export function validityText(i) {
  const v = i.validity;
  const label = (i.labels && i.labels[0] ? i.labels[0].textContent : i.name || "This field").replace(/\s*\(.*\)\s*$/, "").trim();
  if (v.valueMissing) return `${label} is required.`;
  if (v.typeMismatch && i.type === "email") return "Enter an e-mail address such as someone@example.com.";
  if (v.patternMismatch && i.name === "slug") return "Use lowercase letters, digits and dashes, starting and ending with a letter or digit.";
  if (v.patternMismatch && i.name === "key") return "Start with a letter or _, then letters, digits or _.";
  if (v.tooShort) return `${label} needs at least ${i.minLength} characters.`;
  if (v.rangeUnderflow) return `${label} must be at least ${i.min}.`;
  if (v.rangeOverflow) return `${label} must be at most ${i.max}.`;
  return i.validationMessage;
}

/**
 * validate runs the browser's checks on the visible fields of form, shows
 * each problem under its field and focuses the first. True when valid.
 * @param {HTMLFormElement} form
 */
export function validate(form) {
  clearFieldErrors(form);
  let first = null;
  for (const i of /** @type {NodeListOf<HTMLInputElement>} */ (form.querySelectorAll("input, select, textarea"))) {
    if (i.closest("[hidden]") || i.disabled || i.type === "hidden") continue;
    if (!i.checkValidity()) { markField(i, validityText(i)); first = first || i; }
  }
  if (first) first.focus();
  return !first;
}

/**
 * fieldError shows an API error next to the field it names (the answer's
 * `field`), else under the form; focus moves there.
 * @param {HTMLFormElement} form @param {any} err
 */
export function fieldError(form, err) {
  clearFieldErrors(form);
  const name = err && err.data && err.data.field;
  /** @type {HTMLElement|null} */
  const input = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
  if (input && !input.closest("[hidden]")) {
    markField(input, err.message);
    input.focus();
    return;
  }
  const note = el("p", { className: "field-error", textContent: err.message || String(err), attrs: { role: "alert" } });
  const actions = form.querySelector(".form-actions, .toolbar-actions");
  (actions || form).after(note);
  if (!actions) form.append(note);
  note.tabIndex = -1;
}

/**
 * onSubmit wires a form: client checks, then fn; errors land next to the
 * fields, success text in a toast. The submit button is disabled meanwhile.
 * @param {HTMLFormElement} form @param {(d: Record<string, any>, f: HTMLFormElement) => Promise<string|void>} fn
 */
export function onSubmit(form, fn) {
  form.noValidate = true;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!validate(form)) return;
    const btn = /** @type {HTMLButtonElement|null} */ (form.querySelector("button[type=submit], button:not([type])"));
    if (btn) btn.disabled = true;
    try {
      const msg = await fn(formData(form), form);
      if (msg) toast(msg);
    } catch (err) { fieldError(form, err); }
    if (btn) btn.disabled = false;
  });
}

/** slugify derives a slug from a name ("My Site!" → "my-site"). @param {string} s */
export function slugify(s) {
  return s.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63).replace(/-+$/, "");
}

/**
 * linkSlug fills the slug from the name until the person edits the slug.
 * @param {HTMLInputElement} name @param {HTMLInputElement} slug @param {(s: string) => void} [preview]
 */
export function linkSlug(name, slug, preview) {
  name.addEventListener("input", () => {
    if (slug.dataset.edited !== "1") slug.value = slugify(name.value);
    if (preview) preview(slug.value);
  });
  slug.addEventListener("input", () => { slug.dataset.edited = slug.value ? "1" : ""; if (preview) preview(slug.value); });
}

// ---- time and sizes -------------------------------------------------------

/** ago says how long ago ts was ("3 min ago"). @param {string|number|Date|null|undefined} ts */
export function ago(ts) {
  if (!ts) return "never";
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 86400 * 30) return `${Math.round(s / 86400)} d ago`;
  return new Date(ts).toLocaleDateString();
}

/** A <time> with the relative text and the exact moment on hover. @param {string} ts */
export function timeEl(ts) {
  return el("time", { dateTime: ts, title: new Date(ts).toLocaleString(), textContent: ago(ts) });
}

// ---- router and layout ----------------------------------------------------

/** show displays one page (a section of <main>). @param {string} id */
export function show(id) {
  for (const s of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("main > section"))) s.hidden = s.id !== id;
  const signedOut = ["login", "auth-totp", "auth-password"].includes(id) || (id === "invite" && !me);
  document.body.classList.toggle("signed-out", signedOut);
  $("#nav").hidden = signedOut;
  const page = { apps: "apps", "new-app": "apps", app: "apps", "team-page": "team", "workers-page": "workers", "auth-security": "security" }[id] || "";
  for (const a of document.querySelectorAll(".nav-links a")) {
    if (a.getAttribute("data-page") === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  $("#side").classList.remove("open");
  $("#menu").setAttribute("aria-expanded", "false");
  const titles = { apps: "Apps", "new-app": "New app", "team-page": "Team", "workers-page": "Workers", "auth-security": "Security", login: "Sign in" };
  if (titles[id]) document.title = `${titles[id]} · WiseHosting`;
  pageLeave(id);
}

/** Hooks run when the page changes (pages stop their timers and sockets). */
export const leaveHooks = [];
/** @param {string} id */
export function pageLeave(id) { for (const h of leaveHooks) h(id); }

export async function boot() {
  try {
    me = await call("GET", "/api/me");
  } catch (err) {
    if (err.status === 401) {
      me = null;
      const inv = invitePath();
      if (inv) { openInvite(inv); return; }
      if (!authOnUnauthorized(err)) show("login");
      return;
    }
    showError(err); return;
  }
  csrf = me.csrf_token;
  if (me.user.must_change_password) { authForcePassword(); return; }
  $("#who").textContent = me.user.email;
  const sel = /** @type {HTMLSelectElement} */ ($("#team"));
  sel.replaceChildren(...me.teams.map((t) => el("option", { value: t.id, textContent: t.name })));
  let saved = 0;
  try { saved = Number(localStorage.getItem("team")) || 0; } catch (_) { /* storage off */ }
  team = (me.teams.find((t) => t.id === saved) || me.teams[0] || {}).id || null;
  if (team) sel.value = String(team);
  $("#nav-workers").hidden = !me.user.is_admin;
  route();
}

export function invitePath() {
  const m = location.pathname.match(/^\/invite\/([A-Za-z0-9_-]+)$/);
  return m && m[1];
}

// openInvite shows what an invitation link is for: join (signed in as the
// invited address), sign in first, or create the account.
/** @param {string} token */
export async function openInvite(token) {
  show("invite");
  for (const id of ["#invite-accept", "#invite-signin", "#invite-signup"]) $(id).hidden = true;
  let inv;
  try {
    inv = await call("GET", `/api/invitations/${token}`);
  } catch (err) { $("#invite-what").textContent = err.message; return; }
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
  inviteToken = token;
}

let inviteToken = "";

/** route shows the page of the current URL. */
export function route() {
  const p = location.pathname;
  const inv = invitePath();
  if (inv) { openInvite(inv); return; }
  if (!me) { show("login"); return; }
  const m = p.match(/^\/apps\/(\d+)(?:\/([a-z]+))?\/?$/);
  if (m) openApp(Number(m[1]), m[2] || "overview");
  else if (p === "/new") openNewApp();
  else if (p === "/team") openTeam();
  else if (p === "/workers") openWorkers();
  else if (p === "/security") security();
  else listApps();
  const main = $("#main");
  if (document.activeElement && document.activeElement.closest("#nav")) main.focus({ preventScroll: true });
}

/** go navigates inside the dashboard (history entry, then the page). @param {string} path */
export function go(path) {
  if (path !== location.pathname + location.search) history.pushState({}, "", path);
  route();
  window.scrollTo(0, 0);
}

// showWorkerStatus tells, on the apps page and next to Deploy, when no
// worker is online: deployments would wait in the queue.
export async function showWorkerStatus() {
  try {
    const { online, message } = await call("GET", "/api/workers/online");
    for (const p of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll(".no-worker"))) {
      p.hidden = online > 0;
      p.textContent = online > 0 ? "" : (message || "No worker is online: deployments wait in the queue until one connects.");
    }
    return online;
  } catch (err) { showError(err); return 0; }
}

/** @param {string} url */
export function appLink(url) {
  return el("a", { href: url, textContent: url.replace(/^https?:\/\//, ""), target: "_blank", rel: "noopener" });
}

// ---- apps overview ----------------------------------------------------------

/** @param {any} a */
function appCard(a) {
  const ld = a.last_deploy;
  const deploy = ld
    ? el("div", { className: "deploy" }, el("span", { className: `badge ${ld.status}`, textContent: ld.status }), " ",
      el("strong", { textContent: ld.commit ? ld.commit.slice(0, 7) : (ld.trigger === "rollback" ? "rollback" : "deploy") }),
      ld.message ? ` ${ld.message.split("\n")[0].slice(0, 60)}` : "",
      el("div", {}, `${ld.by ? ld.by + " · " : ""}${ld.trigger} · `, timeEl(ld.at)))
    : el("div", { className: "deploy", textContent: "Never deployed." });
  const source = a.image ? a.image : (a.repo || (a.git_repo || "").replace(/^https?:\/\//, "") || "no source");
  return el("li", { className: "app-card" },
    el("div", { className: "top" },
      el("h2", {}, el("a", { href: `/apps/${a.id}`, textContent: a.name })),
      el("span", { className: `badge ${a.status}`, textContent: a.status })),
    a.url && a.status === "running" ? el("a", { className: "url", href: a.url, target: "_blank", rel: "noopener", textContent: a.url.replace(/^https?:\/\//, "") })
      : el("span", { className: "url muted", textContent: a.url ? a.url.replace(/^https?:\/\//, "") : a.slug }),
    el("div", { className: "meta" },
      el("span", { textContent: frameworkLabel(a) }),
      el("span", { textContent: source }),
      el("span", { textContent: a.worker ? `${a.worker}${a.zone ? " · " + a.zone : ""}` : "not placed yet" })),
    deploy);
}

/** @param {any} a */
export function frameworkLabel(a) {
  if (a.image) return "prebuilt image";
  if (a.framework === "auto") return "framework auto-detected";
  return frameworkNames[a.framework] || a.framework;
}

export async function listApps() {
  show("apps");
  document.title = "Apps · WiseHosting";
  const list = $("#app-list");
  if (!team) {
    $("#new-app-link").hidden = true;
    list.replaceChildren(el("li", { className: "empty" }, el("h2", { textContent: "You are not in a team yet" }),
      el("p", { textContent: "Create a team on the Team page, or ask a team's owner to invite you." }),
      el("a", { className: "button primary", href: "/team", textContent: "Create a team" })));
    return;
  }
  $("#new-app-link").hidden = false;
  const t = me.teams.find((x) => x.id === team);
  $("#apps-sub").textContent = t ? `${t.name} · ${t.plan} plan` : "";
  try {
    const [{ apps }, online] = await Promise.all([call("GET", `/api/teams/${team}/apps`), showWorkerStatus()]);
    if (apps.length === 0) {
      list.replaceChildren(el("li", { className: "empty" },
        el("h2", { textContent: "Deploy your first app" }),
        el("p", { textContent: online > 0
          ? "Connect a Git provider to pick a repository, or paste a repository URL or an image: the app is built and served on its own address."
          : "No worker is online yet: an operator adds one with “wisehosting worker add”. You can already create the app; it deploys once a worker connects." }),
        el("div", { className: "form-actions" }, el("a", { className: "button primary", href: "/new", textContent: "New app" }),
          el("a", { className: "button", href: "/team", textContent: "Connect a Git provider" }))));
      return;
    }
    list.replaceChildren(...apps.map(appCard));
  } catch (err) { showError(err); }
}

export function openNewApp() {
  show("new-app");
  if (!team) { go("/"); return; }
  const f = /** @type {HTMLFormElement} */ ($("#app-form"));
  clearFieldErrors(f);
  gitNewAppInit();
  slugPreview(/** @type {HTMLInputElement} */ (f.elements.namedItem("slug")).value);
  /** @type {HTMLInputElement} */ (f.elements.namedItem("name")).focus();
}

/** @param {string} slug */
export function slugPreview(slug) {
  const base = me && me.subdomain_base;
  $("#slug-preview").textContent = base ? `${slug || "<slug>"}.${base}` : (slug || "<slug>");
}

// ---- wiring -----------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  onSubmit(/** @type {HTMLFormElement} */ ($("#login-form")), async (d) => {
    const r = await call("POST", "/api/login", d);
    csrf = r.csrf_token;
    await boot();
  });
  $("#logout").addEventListener("click", async () => {
    try { await call("POST", "/api/logout"); } catch (_) { /* signed out anyway */ }
    csrf = ""; me = null; show("login");
  });
  $("#team").addEventListener("change", (e) => {
    team = Number(/** @type {HTMLSelectElement} */ (e.target).value);
    try { localStorage.setItem("team", String(team)); } catch (_) { /* storage off */ }
    go(location.pathname === "/team" ? "/team" : "/");
  });
  $("#menu").addEventListener("click", () => {
    const open = $("#side").classList.toggle("open");
    $("#menu").setAttribute("aria-expanded", String(open));
  });
  const themeBtn = $("#theme-toggle");
  const themeLabel = () => {
    const c = document.documentElement.dataset.themeChoice || "system";
    themeBtn.textContent = `Theme: ${c}`;
  };
  themeBtn.addEventListener("click", () => {
    const order = ["system", "light", "dark"];
    const next = order[(order.indexOf(document.documentElement.dataset.themeChoice || "system") + 1) % 3];
    try { localStorage.setItem("theme", next); } catch (_) { /* storage off */ }
    /** @type {any} */ (window).themeApply();
  });
  document.addEventListener("themechange", themeLabel);
  themeLabel();

  // Links inside the dashboard change the page without reloading it.
  document.addEventListener("click", (e) => {
    const a = /** @type {HTMLElement} */ (e.target).closest("a");
    if (!a || a.target || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || /^\/(api|oauth)\//.test(url.pathname) || a.hasAttribute("download")) return;
    e.preventDefault();
    go(url.pathname + url.search);
  });

  const f = /** @type {HTMLFormElement} */ ($("#app-form"));
  linkSlug(/** @type {HTMLInputElement} */ (f.elements.namedItem("name")), /** @type {HTMLInputElement} */ (f.elements.namedItem("slug")), slugPreview);
  onSubmit(f, async (raw) => {
    const d = gitAppPayload(raw);
    d.cpu_millis = Number(d.cpu_millis); d.memory_mb = Number(d.memory_mb);
    const app = await call("POST", `/api/teams/${team}/apps`, d);
    f.reset();
    /** @type {HTMLInputElement} */ (f.elements.namedItem("slug")).dataset.edited = "";
    gitAfterCreate(app);
    go(`/apps/${app.id}`);
    return `${app.name} created.`;
  });
  onSubmit(/** @type {HTMLFormElement} */ ($("#invite-signup")), async (d) => {
    const r = await call("POST", `/api/invitations/${inviteToken}/signup`, d);
    csrf = r.csrf_token;
    location.assign("/team");
  });
  window.addEventListener("popstate", route);
  boot();
});
