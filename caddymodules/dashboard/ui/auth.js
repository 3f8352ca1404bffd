// @ts-check
// Sign-in beyond passwords (OAuth providers, two-factor codes, the forced
// password change) and the Security page: password, two-factor setup with
// a QR code drawn by the server, sessions and API tokens.
import { $, ago, boot, call, csrf, el, me, onSubmit, setCsrf, setMe, show, showError, team, timeEl } from "./app.js";
import { copyButton } from "./apppage.js";
import { action, td } from "./ops.js";

/** @param {string} id @param {...Node} children */
function authSection(id, ...children) {
  const s = el("section", { id, hidden: true }, ...children);
  $("main").append(s);
  return s;
}

let fieldSeq = 0;
/**
 * field is a labelled input.
 * @param {string} label @param {string} name @param {string} [type] @param {any} [extra]
 */
function field(label, name, type, extra) {
  const id = `af-${name}-${++fieldSeq}`;
  const input = el("input", Object.assign({ id, name, type: type || "text", required: true }, extra || {}));
  return el("div", { className: "field" }, el("label", { htmlFor: id, textContent: label }), input);
}

/**
 * form builds a form wired with onSubmit.
 * @param {string} className @param {Node[]} children @param {(d: any, f: HTMLFormElement) => Promise<string|void>} fn
 */
function form(className, children, fn) {
  const f = /** @type {HTMLFormElement} */ (el("form", { className }, ...children));
  onSubmit(f, fn);
  return f;
}

/** A six-digit string is a TOTP code; anything else a recovery code. @param {string} value */
function codeBody(value) {
  const v = (value || "").trim();
  return /^\d{3}\s?\d{3}$/.test(v) ? { code: v } : { recovery_code: v };
}

// Login page: one button per configured provider.
async function loadProviders() {
  let providers = [];
  try { ({ providers } = await call("GET", "/api/auth/providers")); } catch (_) { return; }
  if (!providers.length) return;
  const box = el("div", { id: "oauth-providers" }, el("span", { className: "muted", textContent: "or sign in with" }));
  for (const p of providers) box.append(el("a", { href: p.start_url, className: "button", textContent: p.name, target: "_self" }));
  $("#login").append(box);
}

// Second step of a sign-in.
function totpStep() {
  const s = authSection("auth-totp",
    el("h1", { textContent: "Two-factor authentication" }),
    el("p", { textContent: "Enter the 6-digit code from your authenticator app, or one of your recovery codes." }),
    form("", [field("Code", "code", "text", { autocomplete: "one-time-code", maxLength: 40 }),
      el("div", { className: "form-actions" }, el("button", { type: "submit", className: "primary", textContent: "Continue" }), cancelButton())], async (d, f) => {
      const r = await call("POST", "/api/login/totp", codeBody(d.code));
      setCsrf(r.csrf_token);
      f.reset();
      await boot();
    }));
  s.className = "auth-card";
}

function cancelButton() {
  const b = el("button", { className: "link", type: "button", textContent: "Cancel and sign out" });
  b.addEventListener("click", async () => {
    try { await call("POST", "/api/logout"); } catch (_) { /* signed out anyway */ }
    setCsrf(""); setMe(null); show("login");
  });
  return b;
}

/** @param {(r: any) => Promise<any>} after */
function passwordForm(after) {
  return form("form-narrow", [field("Current password", "current_password", "password", { autocomplete: "current-password", required: false }),
    field("New password (at least 12 characters)", "new_password", "password", { autocomplete: "new-password", minLength: 12 }),
    field("New password again", "again", "password", { autocomplete: "new-password", minLength: 12 }),
    el("div", { className: "form-actions" }, el("button", { type: "submit", className: "primary", textContent: "Change password" }))], async (d, f) => {
    if (d.new_password !== d.again) throw Object.assign(new Error("The two new passwords differ."), { data: { field: "again" } });
    const r = await call("POST", "/api/password", { current_password: d.current_password, new_password: d.new_password });
    f.reset();
    await after(r);
    return "Password changed. Your other sessions were signed out.";
  });
}

// Forced change of the first admin's one-time password.
function passwordScreen() {
  const s = authSection("auth-password",
    el("h1", { textContent: "Choose a new password" }),
    el("p", { textContent: "You signed in with a one-time password. Choose your own to continue; your other sessions will be signed out." }),
    passwordForm(() => boot()),
    cancelButton());
  s.className = "auth-card";
}

// Called by app.js when /api/me answers 401: true when a code is needed.
/** @param {any} err */
export function authOnUnauthorized(err) {
  if (!err.data || !err.data.mfa_required) return false;
  setCsrf(err.data.csrf_token || csrf);
  show("auth-totp");
  /** @type {HTMLInputElement} */ ($("#auth-totp input")).focus();
  return true;
}

// Called by app.js when the signed-in user must replace the password.
export function authForcePassword() { show("auth-password"); }

/** @param {string[]} codes */
function codesList(codes) {
  return el("div", {}, el("p", { textContent: "Recovery codes: each works once, instead of a code from the app. Keep them somewhere safe; they are shown only now." }),
    el("pre", { className: "codes", textContent: codes.join("\n") }), copyButton(codes.join("\n"), "Recovery codes"));
}

/** @param {string} title @param {...(Node|string)} children */
function card(title, ...children) {
  return el("div", { className: "card" }, el("h2", { textContent: title }), ...children);
}

export async function security() {
  show("auth-security");
  const box = $("#security-body");
  box.replaceChildren(el("p", { className: "muted loading", textContent: "Loading" }));
  let sec, sessions, tokens;
  try {
    [sec, { sessions }, { tokens }] = await Promise.all([call("GET", "/api/account/security"), call("GET", "/api/sessions"), call("GET", "/api/tokens")]);
  } catch (err) { showError(err); return; }
  const parts = [];
  parts.push(card("Password", sec.has_password ? passwordForm(() => security())
    : el("p", { className: "muted", textContent: "You sign in through a provider and have no password." })));

  const totp = el("div");
  parts.push(card("Two-factor authentication", totp));
  if (!sec.totp_enabled) {
    totp.append(el("p", {}, el("span", { className: "badge", textContent: "off" }), " Turning it on asks for a code from an authenticator app at every sign-in."),
      form("toolbar", [el("div", { className: "field grow" }, el("label", { htmlFor: "totp-pass", textContent: "Current password" }),
        el("input", { id: "totp-pass", name: "password", type: "password", autocomplete: "current-password" })),
      el("div", { className: "toolbar-actions" }, el("button", { type: "submit", textContent: "Set up" }))], async (d) => {
        const s = await call("POST", "/api/account/totp", { password: d.password });
        const codeForm = form("toolbar", [el("div", { className: "field" }, el("label", { htmlFor: "totp-code", textContent: "Code from the app" }),
          el("input", { id: "totp-code", name: "code", autocomplete: "one-time-code", inputMode: "numeric", required: true, maxLength: 7 })),
        el("div", { className: "toolbar-actions" }, el("button", { type: "submit", className: "primary", textContent: "Turn on" }))], async (c) => {
          const r = await call("POST", "/api/account/totp/confirm", { code: c.code });
          totp.replaceChildren(el("p", {}, el("span", { className: "badge on", textContent: "on" }), " Two-factor authentication is on."), codesList(r.recovery_codes));
          return "Two-factor authentication is on.";
        });
        totp.replaceChildren(
          el("p", { textContent: "Scan the QR code with your authenticator app (or type the secret), then enter the code it shows." }),
          el("div", { className: "qr-wrap" },
            el("img", { className: "qr", src: s.qr_png, alt: "QR code of the two-factor secret" }),
            el("div", { className: "grow" },
              el("p", { className: "muted small", textContent: "Secret" }),
              el("p", { className: "secret-line" }, el("code", { id: "totp-secret", textContent: s.secret }), copyButton(s.secret, "Secret")),
              el("details", {}, el("summary", { textContent: "Setup URL" }), el("code", { textContent: s.otpauth_url })),
              codeForm)));
        /** @type {HTMLInputElement} */ (codeForm.querySelector("input")).focus();
      }));
  } else {
    const proof = (n) => [el("div", { className: "field" }, el("label", { htmlFor: `pw-${n}`, textContent: "Current password" }), el("input", { id: `pw-${n}`, name: "password", type: "password", autocomplete: "current-password" })),
      el("div", { className: "field" }, el("label", { htmlFor: `cd-${n}`, textContent: "or a code" }), el("input", { id: `cd-${n}`, name: "code", autocomplete: "one-time-code" }))];
    const shown = el("div");
    totp.append(el("p", {}, el("span", { className: "badge on", textContent: "on" }), ` ${sec.recovery_codes_left} recovery code(s) left.`),
      el("h3", { textContent: "New recovery codes" }),
      form("toolbar", [...proof("rc"), el("div", { className: "toolbar-actions" }, el("button", { type: "submit", textContent: "Make new codes" }))], async (d) => {
        const body = d.password ? { password: d.password } : { code: d.code };
        const r = await call("POST", "/api/account/recovery-codes", body);
        shown.replaceChildren(codesList(r.recovery_codes));
      }),
      shown,
      el("h3", { textContent: "Turn off" }),
      form("toolbar", [...proof("off"), el("div", { className: "toolbar-actions" }, el("button", { type: "submit", className: "danger", textContent: "Turn off" }))], async (d) => {
        const body = d.password ? { password: d.password } : { code: d.code };
        await call("POST", "/api/account/totp/disable", body);
        security();
        return "Two-factor authentication is off.";
      }));
  }

  if (sec.identities.length) {
    parts.push(card("Linked sign-ins", el("ul", { className: "list" }, ...sec.identities.map((i) => el("li", { textContent: `${i.provider}${i.email ? " · " + i.email : ""}` })))));
  }

  const rows = sessions.map((s) => {
    const revoke = action(s.current ? "Sign out" : "Revoke", async () => {
      await call("DELETE", `/api/sessions/${s.id}`);
      if (s.current) { setCsrf(""); setMe(null); show("login"); return; }
      security();
      return "Session revoked.";
    }, "link danger", `${s.current ? "Sign out" : "Revoke"} the session of ${s.device} from ${s.ip}`);
    return el("tr", {}, td("Browser", el("strong", { textContent: s.device || "Unknown browser" }), s.current ? " " : "", s.current ? el("span", { className: "badge on", textContent: "this one" }) : "",
      el("div", { className: "sub", textContent: `signed in ${new Date(s.created_at).toLocaleDateString()}`, title: s.user_agent })),
    td("IP address", s.ip || "—"), td("Last used", timeEl(s.last_seen_at)), el("td", { className: "actions", attrs: { "data-label": "" } }, revoke));
  });
  parts.push(el("div", { className: "card flush" }, el("div", { className: "card-head pad" }, el("h2", { textContent: "Sessions" })),
    el("div", { className: "table-wrap" }, el("table", { className: "rtable", id: "session-list" },
      el("thead", {}, el("tr", {}, ...["Browser", "IP address", "Last used"].map((h) => el("th", { scope: "col", textContent: h })), el("th", { scope: "col" }, el("span", { className: "sr-only", textContent: "Actions" })))),
      el("tbody", {}, ...rows)))));

  parts.push(tokensCard(tokens));
  box.replaceChildren(...parts);
}

/** @param {any[]} tokens */
function tokensCard(tokens) {
  const teamName = (id) => ((me.teams.find((t) => t.id === id) || {}).name) || `team ${id}`;
  const list = el("ul", { className: "list", id: "token-list" }, ...tokens.map((t) => el("li", {},
    el("span", { className: "grow" }, el("strong", { textContent: t.name }), " ", el("code", { textContent: `${t.prefix}…` }),
      el("div", { className: "muted small", textContent: `${teamName(t.team_id)} · ${t.scopes.join(" + ")} · ${t.expires_at ? "expires " + new Date(t.expires_at).toLocaleDateString() : "never expires"} · ${t.last_used_at ? "used " + ago(t.last_used_at) : "never used"}` })),
    action("Revoke", async () => {
      if (!confirm(`Revoke the token ${t.name}? Programs using it stop working at once.`)) return;
      await call("DELETE", `/api/tokens/${t.id}`);
      security();
      return `Token ${t.name} revoked.`;
    }, "link danger", `Revoke the token ${t.name}`))));
  if (!tokens.length) list.replaceChildren(el("li", { className: "muted", textContent: "No API tokens. Programs and the CLI use one instead of your password." }));
  const shown = el("div", { className: "secret", hidden: true, id: "token-shown" });
  const f = form("", [el("div", { className: "grid3" },
    field("Name", "name", "text", { maxLength: 100, placeholder: "CI deploys", autocomplete: "off" }),
    el("div", { className: "field" }, el("label", { htmlFor: "tok-team", textContent: "Team" }),
      el("select", { id: "tok-team", name: "team_id" }, ...me.teams.map((t) => el("option", { value: t.id, textContent: t.name, selected: t.id === team })))),
    el("div", { className: "field" }, el("label", { htmlFor: "tok-exp", textContent: "Expires after" }),
      el("select", { id: "tok-exp", name: "expires_in_days" }, ...[[30, "30 days"], [90, "90 days"], [365, "1 year"]].map(([v, l]) => el("option", { value: v, textContent: l, selected: v === 90 }))))),
  el("fieldset", { className: "choice" }, el("legend", { textContent: "Access" }),
    el("label", { className: "check" }, el("input", { type: "radio", name: "scope", value: "read", checked: true }), "Read only"),
    el("label", { className: "check" }, el("input", { type: "radio", name: "scope", value: "write" }), "Read and write")),
  el("div", { className: "form-actions" }, el("button", { type: "submit", textContent: "Create token" }))], async (d, form) => {
    const r = await call("POST", "/api/tokens", { name: d.name, team_id: Number(d.team_id), scopes: d.scope === "write" ? ["read", "write"] : ["read"], expires_in_days: Number(d.expires_in_days) });
    form.reset();
    await security();
    const box = $("#token-shown");
    box.hidden = false;
    box.replaceChildren("New token (copy it now, it is not shown again): ", el("code", { textContent: r.token }), " ", copyButton(r.token, "Token"));
    return `Token ${d.name} created.`;
  });
  return card("API tokens", list, shown, el("h3", { textContent: "New token" }), f);
}

document.addEventListener("DOMContentLoaded", () => {
  totpStep();
  passwordScreen();
  authSection("auth-security", el("div", { className: "page-head" }, el("div", {}, el("h1", { textContent: "Security" }),
    el("p", { className: "muted", textContent: "Your password, two-factor authentication, sessions and API tokens." }))), el("div", { id: "security-body" }));
  loadProviders();
});
