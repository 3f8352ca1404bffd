// Visits every page and tab of the dashboard in light and dark, at
// 1400×900 and 390×844: runs axe-core on each (injected through the
// DevTools protocol, never served by the product), checks that nothing
// overflows horizontally on the phone, that every `pattern` compiles the
// way Chromium compiles it (the v flag), and keeps a screenshot of each.
// Prints a JSON report; exit status 1 when anything fails.
// Environment: BASE, EMAIL, PASSWORD, OUT, CHROMIUM, APP (an app id).
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";

const { BASE, EMAIL, PASSWORD, OUT, APP } = process.env;
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
mkdirSync(OUT, { recursive: true });

const tabs = ["overview", "deployments", "logs", "metrics", "alerts", "domains", "environment", "settings", "danger"];
const pages = [["apps", "/"], ["new-app", "/new"], ...tabs.map((t) => [`app-${t}`, `/apps/${APP}/${t}`]), ["team", "/team"], ["workers", "/workers"], ["security", "/security"]];
const viewports = [["desktop", { width: 1400, height: 900 }], ["phone", { width: 390, height: 844 }]];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const report = { ok: true, visited: [], violations: [], overflow: [], patterns: [], errors: [], consoleErrors: [] };

// settle waits until the page's section is shown and nothing says Loading.
async function settle(page) {
  await page.waitForFunction(() => [...document.querySelectorAll("main > section")].some((s) => !s.hidden)
    && !document.querySelector("main section:not([hidden]) .loading"), null, { timeout: 20000 });
  await page.waitForTimeout(400);
}

async function check(page, cdp, name) {
  await settle(page);
  const shotName = `${name}.png`;
  await page.screenshot({ path: `${OUT}/${shotName}`, fullPage: true });
  await cdp.send("Runtime.evaluate", { expression: axeSource });
  const res = await page.evaluate(async () => {
    // Colour contrast on canvases and scrolled log boxes is judged on what is visible.
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(" ")} :: ${n.failureSummary}`) }));
  });
  for (const v of res) report.violations.push({ page: name, ...v });
  const geo = await page.evaluate(() => ({ scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth }));
  if (geo.scroll > geo.inner) {
    const wide = await page.evaluate(() => [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}.${[...e.classList].join(".")}`));
    report.overflow.push({ page: name, scrollWidth: geo.scroll, innerWidth: geo.inner, wide });
  }
  const bad = await page.evaluate(() => [...document.querySelectorAll("input[pattern]")].filter((i) => {
    try { new RegExp(`^(?:${i.pattern})$`, "v"); return false; } catch (_) { return true; }
  }).map((i) => `${i.name}: ${i.pattern}`));
  for (const b of bad) report.patterns.push({ page: name, pattern: b });
  report.visited.push(shotName);
}

try {
  for (const scheme of (process.env.SCHEMES || "light,dark").split(",")) {
    for (const [vpName, viewport] of viewports.filter(([n]) => !process.env.VIEWPORTS || process.env.VIEWPORTS.includes(n))) {
      const context = await browser.newContext({ viewport, colorScheme: scheme });
      const page = await context.newPage();
      page.on("console", (m) => { if (m.type() === "error" && !/status of 401/.test(m.text())) report.consoleErrors.push(`${scheme}-${vpName}: ${m.text()}`); });
      page.on("pageerror", (e) => report.consoleErrors.push(`${scheme}-${vpName}: ${e.message}`));
      const cdp = await context.newCDPSession(page);
      await page.goto(BASE + "/");
      await page.waitForSelector("#login:not([hidden])");
      await check(page, cdp, `${scheme}-${vpName}-login`);
      const theme = await page.evaluate(() => document.documentElement.dataset.theme);
      if (theme !== scheme) report.errors.push(`${scheme}-${vpName}: the page follows ${theme}, not the system's ${scheme}`);
      await page.fill("#login-form input[name=email]", EMAIL);
      await page.fill("#login-form input[name=password]", PASSWORD);
      await page.click("#login-form button[type=submit]");
      await page.waitForSelector("#apps:not([hidden])");
      for (const [name, path] of pages.filter(([n]) => !process.env.ONLY || new RegExp(process.env.ONLY).test(n))) {
        await page.goto(BASE + path);
        await check(page, cdp, `${scheme}-${vpName}-${name}`);
      }
      // The phone's menu opens and its links are reachable.
      if (vpName === "phone") {
        await page.click("#menu");
        await page.waitForSelector("#nav-team", { state: "visible" });
        await check(page, cdp, `${scheme}-${vpName}-menu-open`);
      }
      await context.close();
    }
  }
} catch (err) {
  report.errors.push(String(err && err.stack || err));
}
await browser.close();
report.ok = !report.errors.length && !report.violations.length && !report.overflow.length && !report.patterns.length && !report.consoleErrors.length;
console.log(JSON.stringify(report));
process.exitCode = report.ok ? 0 : 1;
