// Drives the dashboard like a person: sign in, create an app, add an env
// var and a domain, deploy and watch the live log, open the Security panel,
// turn two-factor authentication on and sign in again with a code. Screenshots go to OUT.
// Environment: BASE, EMAIL, PASSWORD, REPO, OUT, CHROMIUM.
import { openSession } from "./session.mjs";
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
const { browser, page, steps, shot } = await openSession(OUT);
try {

  await page.goto(BASE + "/");
  await page.waitForSelector("#login:not([hidden])");
  await shot("01-login");
  await page.fill("#login-form input[name=email]", EMAIL);
  await page.fill("#login-form input[name=password]", PASSWORD);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#apps:not([hidden])");
  await shot("02-apps-empty");

  await page.fill("#app-form input[name=name]", "Browser Site");
  await page.fill("#app-form input[name=slug]", "browser-site");
  await page.fill("#app-form input[name=git_repo]", REPO);
  await page.click("#app-form button[type=submit]");
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#app-name").textContent === "Browser Site");
  await shot("03-app-created");

  await page.fill("#env-form input[name=key]", "GREETING");
  await page.fill("#env-form input[name=value]", "hello from the browser");
  await page.click("#env-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#env-list").textContent.includes("GREETING"));
  const envText = await page.textContent("#env-list");
  if (envText.includes("hello from the browser")) throw new Error("the env var value is shown after saving");

  await page.fill("#domain-form input[name=hostname]", "www.browser-site.test");
  await page.click("#domain-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#domain-list").textContent.includes("www.browser-site.test"));
  await shot("04-env-and-domain");


  await page.click("#deploy");
  await page.waitForFunction(() => document.querySelector("#log").textContent.includes("[clone]"), null, { timeout: 60000 });
  await shot("05-deploy-live-log");
  await page.waitForFunction(() => document.querySelector("#log-status").textContent === "succeeded", null, { timeout: 120000 });
  await page.waitForFunction(() => document.querySelector("#app-status").textContent === "running", null, { timeout: 30000 });

  // Routes (the app's port is known once it ran): a path of the app, its weight changed, a broken rule refused
  // with the API's sentence.
  await page.fill("#route-form input[name=path_prefix]", "/api");
  await page.check("#route-form input[name=strip_prefix]");
  await page.click("#route-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#route-list").textContent.includes("/api"));
  await page.fill("#route-list li input[type=number]", "40");
  await page.click("#route-list li button.link:has-text('set weight')");
  await page.waitForFunction(() => document.querySelector("#route-list li input[type=number]").value === "40");
  await page.fill("#route-form input[name=path_prefix]", "/api/");
  await page.click("#route-form button[type=submit]");
  await page.waitForFunction(() => document.body.textContent.includes("without a trailing slash"));
  await shot("04b-routes");
  await shot("06-deployed");

  // Operations: the live runtime log connects over a WebSocket, the usage
  // charts draw (the worker's stats are sampled every second here), the
  // team page lists the members.
  await page.click("#ops-logs > summary");
  await page.waitForFunction(() => document.querySelector("#logs-state").textContent === "live", null, { timeout: 15000 });
  await shot("07-live-logs");
  await page.click("#ops-usage > summary");
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && !(await page.$("#usage-charts svg.chart"))) {
    await page.waitForTimeout(2000);
    await page.click("#usage-ranges button:first-child");
  }
  await page.waitForSelector("#usage-charts svg.chart", { timeout: 5000 });
  await shot("08-usage-charts");
  await page.click("#nav-team");
  await page.waitForFunction(() => document.querySelector("#member-list tbody").textContent.includes("(you)"), null, { timeout: 15000 });
  await shot("09-team");
  // Security panel: this session is listed; two-factor setup shows the
  // otpauth URL and the secret as text.
  await page.click("#security");
  await page.waitForFunction(() => document.querySelector("#security-body").textContent.includes("this one"));
  await page.fill("#security-body input[name=password]", PASSWORD);
  await page.click("#security-body form.inline button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#security-body").textContent.includes("otpauth://totp/"));
  await shot("10-security-2fa-setup");
  const log = await page.textContent("#log");

  // Turn two-factor on with the code an authenticator computes from the
  // secret shown; sign out and in again: the code already used is refused,
  // the next step's code lets the person in.
  const secret = await page.evaluate(() => [...document.querySelectorAll("#security-body code")]
    .map((c) => c.textContent).find((t) => !t.startsWith("otpauth://")));
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
  await page.waitForFunction(() => !document.querySelector("#error").hidden && document.querySelector("#error").textContent.includes("already used"));
  await shot("12-2fa-code-replay-refused");
  await page.fill("#auth-totp input[name=code]", totp(secret, Math.max(Math.floor(Date.now() / 30000), step0 + 1)));
  await page.click("#auth-totp button[type=submit]");
  // Signed in again: back on the page the person left (the Team page).
  await page.waitForSelector("#team-page:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#auth-totp").hidden && !document.querySelector("#nav").hidden);
  await shot("13-signed-in-with-2fa");
  console.log(JSON.stringify({ ok: true, steps, logLines: log.split("\n").length }));
} catch (err) {
  if (page) await page.screenshot({ path: `${OUT}/failure.png`, fullPage: true }).catch(() => {});
  const errText = page ? await page.textContent("#error").catch(() => "") : "";
  console.log(JSON.stringify({ ok: false, steps, error: String(err), pageError: errText }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
