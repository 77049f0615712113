// Browser end-to-end test of the Vigil dashboard, run by the Go test
// TestDashboardInBrowser (package e2e), which starts the node, seeds it and
// passes the configuration in VIGIL_E2E. Drives Debian's chromium through
// playwright-core. The pages' CSP forbids eval, so the script waits with
// locators rather than page functions. Prints progress lines and, last, one JSON line with the
// result; exits non-zero on the first failure.
import { chromium } from "playwright-core";
import path from "node:path";

const cfg = JSON.parse(process.env.VIGIL_E2E);
const log = (...a) => console.log(...a);
const fail = (msg) => { throw new Error(msg); };

const browser = await chromium.launch({
  executablePath: process.env.VIGIL_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync"],
});
const result = { ok: false };
try {
  // A tablet in landscape: the dashboard must work at this width.
  const newPage = async () => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1180, height: 820 }, timezoneId: "Europe/Paris" });
    const page = await ctx.newPage();
    page.on("pageerror", (e) => log("page error: " + e.message));
    page.on("console", (m) => { if (m.type() === "error") log("console error: " + m.text()); });
    return page;
  };
  const shot = (page, name) => page.screenshot({ path: path.join(cfg.screenshots, name + ".png"), fullPage: true });
  const signIn = async (page, user, password, expectPath) => {
    await page.goto(cfg.url + "/");
    // Unauthenticated: redirected to the sign-in page.
    if (!page.url().includes("/signin")) fail("not redirected to sign-in: " + page.url());
    await page.getByLabel("Username").fill(user);
    await page.getByLabel("Password").fill(password);
    await page.keyboard.press("Enter"); // keyboard only
    await page.waitForURL((u) => u.pathname.startsWith(expectPath), { timeout: 15000 });
  };

  // 1. The sign-in page.
  const clin = await newPage();
  await clin.goto(cfg.url + "/signin");
  await shot(clin, "signin");

  // 2. A clinician signs in and sees the worklist, most at risk first.
  await signIn(clin, cfg.clinician, cfg.password, "/worklist");
  if (new URL(clin.url()).pathname !== "/worklist") fail("clinician landed on " + clin.url());
  const order = await clin.$$eval("#worklist-rows tr.row", (rows) => rows.map((r) => r.dataset.patient));
  if (JSON.stringify(order) !== JSON.stringify(cfg.order)) fail("worklist order " + JSON.stringify(order) + ", want " + JSON.stringify(cfg.order));
  const topClass = await clin.$eval("#worklist-rows tr.row", (r) => r.className);
  if (!topClass.includes("pri-high")) fail("the top row is not marked high priority: " + topClass);
  const anim = await clin.$eval("#worklist-rows tr.row", (r) => getComputedStyle(r).animationName);
  if (anim !== "flash-high") fail("the high-priority row does not flash: animation " + anim);
  log("worklist ordered by risk: " + order.join(", "));
  await clin.waitForSelector("#live:has-text('live')", { timeout: 10000 });
  await shot(clin, "worklist");

  // 3. A heart rate sent by a device shows on the worklist without reload.
  const sendHR = async (value) => {
    const body = { readings: [{ code: "8867-4", value, unit: "/min", time: new Date().toISOString() }] };
    const res = await fetch(cfg.url + "/api/v1/readings", {
      method: "POST", headers: { Authorization: "Bearer " + cfg.live_device, "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (res.status !== 202) fail("sending a reading: " + res.status + " " + await res.text());
    return Date.now(); // acknowledged: durable in the log
  };
  const liveSel = `#worklist-rows tr[data-patient="${cfg.live}"] .vital[data-vital="hr"] .value`;
  await clin.evaluate(() => { window.__reloaded = false; window.addEventListener("beforeunload", () => { window.__reloaded = true; }); });
  await sendHR(131);
  await clin.locator(liveSel, { hasText: /^131$/ }).waitFor({ timeout: 10000 });
  if (await clin.evaluate(() => window.__reloaded)) fail("the worklist reloaded");
  log("worklist updated live");

  // 4. Open the patient; a new value arrives live on the patient page.
  await clin.click(`#worklist-rows tr[data-patient="${cfg.live}"] th a`);
  await clin.waitForURL("**/patients/" + cfg.live);
  await clin.waitForSelector("#live:has-text('live')", { timeout: 10000 });
  if (await clin.locator("figure.chart-hr").count() !== 1) fail("no heart-rate chart on the patient page");
  const tileSel = '#tiles .tile[data-vital="hr"]';
  const sent = await sendHR(142);
  await clin.locator(tileSel + " .value", { hasText: /^142$/ }).waitFor({ timeout: 10000 });
  const shown = Number(await clin.$eval(tileSel, (t) => t.dataset.updatedAt));
  result.live_latency_ms = shown - sent;
  log(`patient page updated live ${result.live_latency_ms} ms after the reading was acknowledged`);
  await shot(clin, "patient");

  // 5. Enter an observation by hand (ACVPU), keyboard and labels only.
  await clin.getByLabel("Observation", { exact: true }).selectOption({ label: "Consciousness (ACVPU)" });
  await clin.getByLabel("Level", { exact: true }).selectOption("2");
  await clin.getByRole("button", { name: "Record" }).click();
  await clin.locator('#tiles .tile[data-vital="acvpu"] .value', { hasText: /^V$/ }).waitFor({ timeout: 10000 });
  log("manual observation recorded and shown live");

  // 6. The alert inbox: acknowledge the high-priority alert.
  await clin.goto(cfg.url + "/alerts");
  const alertSel = `li.alert.pri-high[data-patient="${cfg.order[0]}"]`;
  await clin.waitForSelector(alertSel + ".state-open");
  await shot(clin, "alerts");
  await clin.locator(alertSel).getByRole("button", { name: "Acknowledge" }).click();
  await clin.waitForSelector(alertSel + ".state-acknowledged", { timeout: 10000 });
  log("alert acknowledged");
  await clin.goto(cfg.url + "/patients/" + cfg.order[0]);
  const timeline = await clin.locator(".timeline").innerText();
  if (!timeline.includes("acknowledged by " + cfg.clinician)) fail("the timeline does not say who acknowledged: " + timeline);
  await clin.goto(cfg.url + "/patients/" + cfg.own); // for the patient's access log below

  // 7. The patient signs in, sees their own record and who accessed it,
  // and cannot open another patient's.
  const pat = await newPage();
  await signIn(pat, cfg.patient, cfg.password, "/patients/");
  if (new URL(pat.url()).pathname !== "/patients/" + cfg.own) fail("patient landed on " + pat.url());
  if (!(await pat.locator("#access-h").isVisible())) fail("no access log on the patient's own view");
  const access = await pat.locator("table.access").innerText();
  if (!access.includes(cfg.clinician)) fail("the access log does not show the clinician who opened the record: " + access);
  await shot(pat, "my-record");
  const res = await pat.goto(cfg.url + "/patients/" + cfg.other);
  if (res.status() !== 404) fail("patient opened another patient's record: " + res.status());
  if ((await pat.content()).includes("Grace Hopper")) fail("another patient's name leaked");
  log("patient refused another record (404)");

  // 8. The admin page.
  const adm = await newPage();
  await signIn(adm, cfg.admin, cfg.admin_password, "/admin");
  if (new URL(adm.url()).pathname !== "/admin") fail("admin landed on " + adm.url());
  await adm.getByLabel("Model").fill("CGM-9");
  await adm.getByLabel("Serial").fill("SN-E2E-CGM");
  await adm.getByRole("button", { name: "Register" }).click();
  await adm.waitForSelector("#token-once:not([hidden])", { timeout: 10000 });
  const token = await adm.locator("#token-value").innerText();
  if (token.length < 20) fail("no device token shown: " + token);
  await shot(adm, "admin");
  log("admin registered a device; token shown once");

  result.ok = true;
} catch (e) {
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
}
