// Drives the git-provider screens like a person: on the team page a wrong
// token is refused next to its field and a good one connects; in the new
// app form the repository is searched, picked (its framework detected
// through the provider), the app created and its webhook shown installed;
// the settings form shows an error next to its field and saves.
// Environment: BASE, EMAIL, PASSWORD, OUT, CHROMIUM, TOKEN.
import { journey, openSession } from "./session.mjs";

const { BASE, EMAIL, PASSWORD, OUT, TOKEN } = process.env;
const session = await openSession(OUT, 1000);
const { page, shot } = session;
await journey(session, OUT, async () => {

  await page.goto(BASE + "/");
  await page.fill("#login-form input[name=email]", EMAIL);
  await page.fill("#login-form input[name=password]", PASSWORD);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#apps:not([hidden])");

  // Connect GitHub on the team page: the wrong token first.
  await page.click("#nav-team");
  await page.waitForSelector("#git-connect-form");
  await page.selectOption("#git-connect-form select[name=provider]", "github");
  await page.fill("#git-connect-form input[name=token]", "ghp_wrong");
  await page.click("#git-connect-form button[type=submit]");
  await page.waitForSelector("#git-connect-form .field-error");
  const tokenErr = await page.textContent("#git-connect-form .field-error");
  if (!/refused the token/.test(tokenErr)) throw new Error("token error: " + tokenErr);
  await shot("g1-wrong-token");
  await page.fill("#git-connect-form input[name=token]", TOKEN);
  await page.click("#git-connect-form button[type=submit]");
  await page.waitForFunction(() => /alice/.test(document.querySelector("#git-connections").textContent));
  await shot("g2-connected");

  // Create an app from a repository.
  await page.goto(BASE + "/new");
  await page.waitForSelector("#new-app:not([hidden])");
  await page.waitForSelector("#repo-picker:not([hidden])");
  await page.fill("#repo-search", "blo");
  await page.waitForFunction(() => document.querySelectorAll("#repo-list button").length === 1 && /alice\/blog/.test(document.querySelector("#repo-list").textContent));
  await page.click("#repo-list button");
  await page.waitForFunction(() => /Next\.js detected/.test(document.querySelector("#repo-detected").textContent));
  await shot("g3-repo-picked");
  await page.fill("#app-form input[name=slug]", "browser-blog");
  await page.click("#app-form button[type=submit]");
  await page.waitForSelector("#app:not([hidden])");
  await page.click("#app-tabs a[data-tab=settings]");
  await page.waitForFunction(() => /webhook installed/.test(document.querySelector("#hook-box").textContent));
  await shot("g4-app-with-hook");

  // Settings: an error next to its field, then a save.
  await page.fill("#settings-form input[name=health_path]", "healthz");
  await page.click("#settings-form button[type=submit]");
  await page.waitForSelector("#settings-form .field-error");
  await shot("g5-settings-error");
  await page.fill("#settings-form input[name=health_path]", "/healthz");
  await page.uncheck("#settings-form input[name=auto_deploy]");
  await page.click("#settings-form button[type=submit]");
  await page.waitForSelector("#settings-saved:not([hidden])");
  await shot("g6-settings-saved");

  // An app from a prebuilt image: the reference's error next to its
  // field, then the app page shows the image, never the password.
  await page.goto(BASE + "/new");
  await page.waitForSelector("#new-app:not([hidden])");
  await page.check("#app-form input[name=source_kind][value=image]");
  await page.waitForSelector("#image-fields:not([hidden])");
  await page.fill("#app-form input[name=name]", "Prebuilt");
  await page.fill("#app-form input[name=slug]", "browser-image");
  await page.fill("#app-form input[name=image]", "nginx:1");
  await page.click("#app-form button[type=submit]");
  await page.waitForSelector("#app-form .field-error");
  const imgErr = await page.textContent("#app-form .field-error");
  if (!/must name its registry/.test(imgErr)) throw new Error("image error: " + imgErr);
  await shot("g7-image-error");
  await page.fill("#app-form input[name=image]", "registry.example.test/acme/site:1.0");
  await page.fill("#app-form input[name=registry_username]", "ci-bot");
  await page.fill("#app-form input[name=registry_password]", "browser-registry-pass");
  await page.click("#app-form button[type=submit]");
  await page.waitForSelector("#app:not([hidden])");
  await page.click("#app-tabs a[data-tab=settings]");
  await page.waitForSelector("#image-form:not([hidden])");
  const shown = await page.inputValue("#image-form input[name=image]");
  if (shown !== "registry.example.test/acme/site:1.0") throw new Error("image shown: " + shown);
  if (await page.inputValue("#image-form input[name=registry_password]") !== "") throw new Error("the password is shown");
  if (!(await page.isHidden("#git-only"))) throw new Error("git settings shown for an image app");
  await shot("g8-image-app");
  return {};
});
