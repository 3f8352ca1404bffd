// Drives the dashboard like a person: sign in, create an app, add an env
// var and a domain, deploy and watch the live log, open the Security page,
// manage an API token, turn two-factor authentication on and sign in again
// with a code. Screenshots go to OUT.
// Environment: BASE, EMAIL, PASSWORD, REPO, OUT, CHROMIUM.
import { journey, openSession } from "./session.mjs";
import { createHmac } from "node:crypto";

// totp computes the RFC 6238 code of a base32 secret for a 30-second step,
// as an authenticator app does.
function totp(secret, step) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const ch of secret.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", key).update(counter).digest();
  const off = mac[mac.length - 1] & 0xf;
  const n = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(n % 1e6).padStart(6, "0");
}

const { BASE, EMAIL, PASSWORD, REPO, OUT } = process.env;
const session = await openSession(OUT);
const { page, shot } = session;
// Confirmation dialogs (revoking a token) are answered yes.
page.on("dialog", (d) => d.accept());
const tab = async (name) => {
  await page.click(`#app-tabs a[data-tab=${name}]`);
  await page.waitForSelector(`#tab-${name}:not([hidden])`);
};
await journey(session, OUT, async () => {

  await page.goto(BASE + "/");
  await page.waitForSelector("#login:not([hidden])");
  await shot("01-login");
  await page.fill("#login-form input[name=email]", EMAIL);
  await page.fill("#login-form input[name=password]", PASSWORD);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#apps:not([hidden])");
  await page.waitForSelector("#app-list .empty");
  await shot("02-apps-empty");

  // New app: the slug follows the name; an empty repository is refused
  // next to its field, with the focus there.
  await page.click("#new-app-link");
  await page.waitForSelector("#new-app:not([hidden])");
  if (new URL(page.url()).pathname !== "/new") throw new Error("the new-app page has no URL of its own: " + page.url());
  await page.fill("#app-form input[name=name]", "Browser Site");
  const slug = await page.inputValue("#app-form input[name=slug]");
  if (slug !== "browser-site") throw new Error("slug derived from the name: " + slug);
  await page.fill("#app-form input[name=git_repo]", REPO);
  await page.click("#app-form button[type=submit]");
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#app-name").textContent === "Browser Site");
  const appId = Number(new URL(page.url()).pathname.split("/")[2]);
  await shot("03-app-created");

  await tab("environment");
  if (new URL(page.url()).pathname !== `/apps/${appId}/environment`) throw new Error("tab URL: " + page.url());
  await page.fill("#env-form input[name=key]", "GREETING");
  await page.fill("#env-form input[name=value]", "hello from the browser");
  await page.click("#env-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#env-list").textContent.includes("GREETING"));
  // A pasted .env file: two more variables, a comment skipped.
  await page.fill("#env-bulk textarea", "# pasted\nPORT_HINT=8080\nexport MODE=\"production\"\n");
  await page.click("#env-bulk button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#env-list").textContent.includes("MODE"));
  const envText = await page.textContent("#env-list");
  if (envText.includes("hello from the browser") || envText.includes("production")) throw new Error("an env var value is shown after saving");

  await tab("domains");
  await page.fill("#domain-form input[name=hostname]", "www.browser-site.test");
  await page.click("#domain-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#domain-list").textContent.includes("www.browser-site.test"));
  const dns = await page.textContent("#domain-list .dns");
  if (!dns.includes("_wisehosting.www.browser-site.test")) throw new Error("DNS records shown: " + dns);
  await shot("04-env-and-domain");

  // Back button: the previous tab comes back.
  await page.goBack();
  await page.waitForSelector("#tab-environment:not([hidden])");
  await page.goForward();
  await page.waitForSelector("#tab-domains:not([hidden])");

  await page.click("#deploy");
  await page.waitForSelector("#tab-deployments:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#log").textContent.includes("[clone]"), null, { timeout: 60000 });
  await shot("05-deploy-live-log");
  await page.waitForFunction(() => document.querySelector("#log-status").textContent === "succeeded", null, { timeout: 120000 });
  await page.waitForFunction(() => document.querySelector("#app-status").textContent === "running", null, { timeout: 30000 });
  // One writer per line: no line of the build log shows twice, and the
  // table's badge of the deployment agrees with the log's.
  const lines = await page.$$eval("#log .logline", (ls) => ls.map((l) => l.textContent));
  const twice = lines.filter((l, i) => lines.indexOf(l) !== i);
  if (twice.length) throw new Error("build log lines shown twice: " + twice.join(" | "));
  await page.waitForFunction(() => {
    const row = document.querySelector("#deployments tbody tr");
    return row && row.querySelector(".badge").textContent === "succeeded" && row.textContent.includes("live");
  });

  // Routes (the app's port is known once it ran): a path of the app, its weight changed, a broken rule refused
  // with the API's sentence.
  await tab("domains");
  await page.fill("#route-form input[name=path_prefix]", "/api");
  await page.check("#route-form input[name=strip_prefix]");
  await page.click("#route-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#route-list").textContent.includes("/api"));
  await page.fill("#route-list li input[type=number]", "40");
  await page.click("#route-list li button.link:has-text('set weight')");
  await page.waitForFunction(() => document.querySelector("#route-list li input[type=number]").value === "40");
  await page.fill("#route-form input[name=path_prefix]", "/api/");
  await page.click("#route-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#route-form").parentElement.textContent.includes("without a trailing slash"));
  await shot("04b-routes");
  await tab("overview");
  await page.waitForFunction(() => document.querySelector("#overview-live").textContent.includes("live"));
  await shot("06-deployed");

  // Operations: the live runtime log connects over a WebSocket, the usage
  // charts draw (the worker's stats are sampled every second here), the
  // team page lists the members.
  await tab("logs");
  await page.waitForFunction(() => document.querySelector("#logs-state").textContent === "live", null, { timeout: 15000 });
  await shot("07-live-logs");
  await tab("metrics");
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && !(await page.$("#usage-charts canvas"))) {
    await page.waitForTimeout(2000);
    await page.click("#usage-ranges button:first-child");
  }
  await page.waitForSelector("#usage-charts canvas", { timeout: 5000 });
  await shot("08-usage-charts");
  await page.click("#nav-team");
  await page.waitForFunction(() => document.querySelector("#member-list tbody").textContent.includes("(you)"), null, { timeout: 15000 });
  await shot("09-team");
  // Security page: its own URL; this session is listed in words; an API
  // token is created, listed and revoked; two-factor setup shows a QR
  // code drawn by the control plane and the secret.
  await page.click("#security");
  await page.waitForFunction(() => (document.querySelector("#session-list")?.textContent || "").includes("this one"));
  if (new URL(page.url()).pathname !== "/security") throw new Error("the Security page has no URL: " + page.url());
  const sessions = await page.textContent("#session-list");
  if (!sessions.includes("Chrome on Linux")) throw new Error("sessions: " + sessions);
  await page.fill("#security-body input[name=name]", "ci deploys");
  await page.click("#security-body button:text('Create token')");
  await page.waitForFunction(() => /wht_/.test((document.querySelector("#token-shown")?.textContent || "")));
  await page.waitForFunction(() => (document.querySelector("#token-list")?.textContent || "").includes("ci deploys"));
  await shot("10a-token-created");
  await page.click("#token-list button:text('Revoke')");
  await page.waitForFunction(() => { const l = document.querySelector("#token-list"); return l && !l.textContent.includes("ci deploys"); });
  await page.fill("#security-body input[name=password]", PASSWORD);
  await page.click("#security-body button:text('Set up')");
  await page.waitForFunction(() => document.querySelector("#security-body").textContent.includes("otpauth://totp/"));
  await page.waitForFunction(() => { const i = document.querySelector("#security-body img.qr"); return i && i.complete && i.naturalWidth > 100; });
  await shot("10-security-2fa-setup");

  // Turn two-factor on with the code an authenticator computes from the
  // secret shown; sign out and in again: the code already used is refused,
  // the next step's code lets the person in.
  const secret = await page.textContent("#totp-secret");
  const step0 = Math.floor(Date.now() / 30000);
  const used = totp(secret, step0);
  await page.fill("#security-body input[name=code]", used);
  await page.click("#security-body button:text('Turn on')");
  await page.waitForFunction(() => document.querySelector("#security-body").textContent.includes("Two-factor authentication is on."));
  await shot("11-2fa-on");
  await page.click("#logout");
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#login-form input[name=email]", EMAIL);
  await page.fill("#login-form input[name=password]", PASSWORD);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#auth-totp:not([hidden])");
  await page.fill("#auth-totp input[name=code]", used);
  await page.click("#auth-totp button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#auth-totp").textContent.includes("already used"));
  await shot("12-2fa-code-replay-refused");
  await page.fill("#auth-totp input[name=code]", totp(secret, Math.max(Math.floor(Date.now() / 30000), step0 + 1)));
  await page.click("#auth-totp button[type=submit]");
  // Signed in again: back on the page the person left (Security).
  await page.waitForSelector("#auth-security:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#auth-totp").hidden && !document.querySelector("#nav").hidden);
  await shot("13-signed-in-with-2fa");
  // Two-factor off again with the password.
  await page.waitForSelector("#pw-off");
  await page.fill("#pw-off", PASSWORD);
  await page.click("#security-body button:text('Turn off')");
  await page.waitForFunction(() => document.querySelector("#security-body").textContent.includes("Set up"));
  return { appId, logLines: lines.length };
});
