"use strict";
// Sign-in beyond passwords: OAuth providers, two-factor codes, password change.
// Uses app.js's helpers ($, el, call, show, showError, boot, formData, csrf).

const authSections = [];

function authSection(id, ...children) {
  const s = el("section", { id, hidden: true }, ...children);
  $("main").append(s);
  authSections.push(s);
  return s;
}

// The sections of this file take part in app.js's show().
const appShow = show;
show = function (id) {
  for (const s of authSections) s.hidden = s.id !== id;
  appShow(id);
  if (id === "auth-totp") $("#nav").hidden = true;
};

function field(label, name, type, extra) {
  return el("label", {}, label + " ", el("input", Object.assign({ name, type: type || "text", required: true }, extra || {})));
}

function form(className, children, onSubmit) {
  const f = el("form", { className }, ...children);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await onSubmit(formData(f), f); showError(null); } catch (err) { showError(err); }
  });
  return f;
}

// A six-digit string is a TOTP code; anything else a recovery code.
function codeBody(value) {
  const v = (value || "").trim();
  return /^\d{3}\s?\d{3}$/.test(v) ? { code: v } : { recovery_code: v };
}

// Login page: one button per configured provider.
async function loadProviders() {
  let providers = [];
  try { ({ providers } = await call("GET", "/api/auth/providers")); } catch (_) { return; }
  if (!providers.length) return;
  const box = el("div", { id: "oauth-providers" }, el("p", { className: "muted", textContent: "or sign in with" }));
  for (const p of providers) {
    box.append(el("a", { href: p.start_url, className: "button", textContent: p.name }), " ");
  }
  $("#login").append(box);
}

// Second step of a sign-in.
function totpStep() {
  return authSection("auth-totp",
    el("h1", { textContent: "Two-factor authentication" }),
    el("p", { textContent: "Enter the 6-digit code from your authenticator app, or one of your recovery codes." }),
    form("", [field("Code", "code", "text", { autocomplete: "one-time-code", inputMode: "text", maxLength: 40 }),
      el("button", { type: "submit", textContent: "Continue" })], async (d, f) => {
      const r = await call("POST", "/api/login/totp", codeBody(d.code));
      csrf = r.csrf_token;
      f.reset();
      await boot();
    }),
    cancelButton());
}

function cancelButton() {
  const b = el("button", { className: "link", type: "button", textContent: "Cancel and sign out" });
  b.addEventListener("click", async () => {
    try { await call("POST", "/api/logout"); } catch (_) { /* signed out anyway */ }
    csrf = ""; show("login");
  });
  return b;
}

function passwordForm(after) {
  return form("", [field("Current password", "current_password", "password", { autocomplete: "current-password", required: false }),
    field("New password (at least 12 characters)", "new_password", "password", { autocomplete: "new-password", minLength: 12 }),
    field("New password again", "again", "password", { autocomplete: "new-password", minLength: 12 }),
    el("button", { type: "submit", textContent: "Change password" })], async (d, f) => {
    if (d.new_password !== d.again) throw new Error("the two new passwords differ");
    const r = await call("POST", "/api/password", { current_password: d.current_password, new_password: d.new_password });
    f.reset();
    await after(r);
  });
}

// Forced change of the first admin's one-time password.
function passwordScreen() {
  return authSection("auth-password",
    el("h1", { textContent: "Choose a new password" }),
    el("p", { textContent: "You signed in with a one-time password. Choose your own to continue; your other sessions will be signed out." }),
    passwordForm(() => boot()),
    cancelButton());
}

// Called by app.js when /api/me answers 401: true when a code is needed.
function authOnUnauthorized(err) {
  if (!err.data || !err.data.mfa_required) return false;
  csrf = err.data.csrf_token || csrf;
  show("auth-totp");
  $("#auth-totp input").focus();
  return true;
}

// Called by app.js when the signed-in user must replace the password.
function authForcePassword() {
  show("auth-password");
}

function codesList(codes) {
  return el("div", {}, el("p", { textContent: "Recovery codes: each works once, instead of a code from the app. Keep them somewhere safe; they are shown only now." }),
    el("pre", { textContent: codes.join("\n") }));
}

async function security() {
  show("auth-security");
  const box = $("#security-body");
  box.replaceChildren(el("p", { className: "muted", textContent: "Loading…" }));
  let sec, sessions;
  try {
    [sec, { sessions }] = await Promise.all([call("GET", "/api/account/security"), call("GET", "/api/sessions")]);
  } catch (err) { showError(err); return; }
  const parts = [el("h2", { textContent: "Password" })];
  parts.push(sec.has_password ? passwordForm(() => security())
    : el("p", { className: "muted", textContent: "You sign in through a provider and have no password." }));

  parts.push(el("h2", { textContent: "Two-factor authentication" }));
  const totp = el("div");
  parts.push(totp);
  if (!sec.totp_enabled) {
    totp.append(el("p", { textContent: "Off. Turning it on asks for a code from an authenticator app at every sign-in." }),
      form("inline", [el("input", { name: "password", type: "password", placeholder: "current password", autocomplete: "current-password", ariaLabel: "Current password" }),
        el("button", { type: "submit", textContent: "Set up" })], async (d) => {
        const s = await call("POST", "/api/account/totp", { password: d.password });
        totp.replaceChildren(
          el("p", { textContent: "Add this account to your authenticator app with the URL or the secret below, then enter the code it shows." }),
          el("p", {}, "URL: ", el("code", { textContent: s.otpauth_url })),
          el("p", {}, "Secret: ", el("code", { textContent: s.secret })),
          form("inline", [el("input", { name: "code", placeholder: "123456", autocomplete: "one-time-code", ariaLabel: "Code" }),
            el("button", { type: "submit", textContent: "Turn on" })], async (c) => {
            const r = await call("POST", "/api/account/totp/confirm", { code: c.code });
            totp.replaceChildren(el("p", { textContent: "Two-factor authentication is on." }), codesList(r.recovery_codes));
          }));
      }));
  } else {
    const proof = () => [el("input", { name: "password", type: "password", placeholder: "current password", ariaLabel: "Current password" }),
      el("input", { name: "code", placeholder: "or a code", autocomplete: "one-time-code", ariaLabel: "Code" })];
    const shown = el("div");
    totp.append(el("p", { textContent: `On. ${sec.recovery_codes_left} recovery code(s) left.` }),
      form("inline", [...proof(), el("button", { type: "submit", textContent: "New recovery codes" })], async (d) => {
        const body = d.password ? { password: d.password } : { code: d.code };
        const r = await call("POST", "/api/account/recovery-codes", body);
        shown.replaceChildren(codesList(r.recovery_codes));
      }),
      form("inline", [...proof(), el("button", { type: "submit", textContent: "Turn off" })], async (d) => {
        const body = d.password ? { password: d.password } : { code: d.code };
        await call("POST", "/api/account/totp/disable", body);
        security();
      }),
      shown);
  }

  if (sec.identities.length) {
    parts.push(el("h2", { textContent: "Linked sign-ins" }),
      el("ul", {}, ...sec.identities.map((i) => el("li", { textContent: `${i.provider}${i.email ? " · " + i.email : ""}` }))));
  }

  parts.push(el("h2", { textContent: "Sessions" }));
  const rows = sessions.map((s) => {
    const revoke = el("button", { className: "link", textContent: s.current ? "sign out" : "revoke" });
    revoke.addEventListener("click", async () => {
      try {
        await call("DELETE", `/api/sessions/${s.id}`);
        if (s.current) { csrf = ""; show("login"); return; }
        security();
      } catch (err) { showError(err); }
    });
    return el("tr", {}, el("td", { textContent: s.user_agent || "?" }), el("td", { textContent: s.ip }),
      el("td", { textContent: new Date(s.last_seen_at).toLocaleString() }), el("td", {}, s.current ? "this one " : "", revoke));
  });
  parts.push(el("table", {}, el("thead", {}, el("tr", {}, ...["Browser", "Address", "Last seen", ""].map((h) => el("th", { textContent: h })))),
    el("tbody", {}, ...rows)));
  box.replaceChildren(...parts);
}

document.addEventListener("DOMContentLoaded", () => {
  totpStep();
  passwordScreen();
  authSection("auth-security", el("h1", { textContent: "Security" }), el("div", { id: "security-body" }));
  const btn = el("button", { className: "link", id: "security", textContent: "Security" });
  btn.addEventListener("click", () => { showError(null); security(); });
  $("#logout").before(btn);
  loadProviders();
});
