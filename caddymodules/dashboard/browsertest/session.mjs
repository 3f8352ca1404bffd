// One Chromium session of a browser journey: launch flags, a page, and
// shot(name), which saves a full-page screenshot to out and records the
// step; journey runs the steps and reports how they went.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

export async function openSession(out, height = 900) {
  mkdirSync(out, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const steps = [];
  const context = await browser.newContext({ viewport: { width: 1200, height } });
  const page = await context.newPage();
  const shot = async (name) => { await page.screenshot({ path: `${out}/${name}.png`, fullPage: true }); steps.push(name); };
  return { browser, page, steps, shot };
}

// journey runs a journey's steps in session and prints one JSON line: ok
// with the steps and what run returned, or the error with the page's
// messages (and a screenshot, failure.png in out), failing the process.
// The browser is closed either way.
export async function journey(session, out, run) {
  const { browser, page, steps } = session;
  try {
    const result = await run();
    console.log(JSON.stringify({ ok: true, steps, ...result }));
  } catch (err) {
    await page.screenshot({ path: `${out}/failure.png`, fullPage: true }).catch(() => {});
    const errText = await page.evaluate(() => [...document.querySelectorAll(".toast, .field-error")].map((e) => e.textContent).join(" | ")).catch(() => "");
    console.log(JSON.stringify({ ok: false, steps, error: String(err), pageError: errText }));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
