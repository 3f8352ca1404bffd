// One Chromium session of a browser journey: launch flags, a page, and
// shot(name), which saves a full-page screenshot to out and records the
// step.
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
