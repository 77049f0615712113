// Browser end-to-end test of the Vigil dashboard, run by the Go test
// TestDashboardInBrowser (package e2e), which starts the node, seeds it and
// passes the configuration in VIGIL_E2E. Drives Debian's chromium through
// playwright-core. Every page and state is checked with axe-core (WCAG 2.2
// A and AA rules); an alarm indicator is checked in each phase of its
// flash. Prints progress lines and, last, one JSON line with the result;
// exits non-zero on the first failure.
import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import path from "node:path";

const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

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
  // bypassCSP lets the test inject axe-core into the pages (their CSP
  // forbids inline script); the pages themselves never rely on it.
  const newPage = async (viewport = { width: 1180, height: 820 }) => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport, timezoneId: "Europe/Paris", bypassCSP: true });
    const page = await ctx.newPage();
    page.on("pageerror", (e) => log("page error: " + e.message));
    page.on("console", (m) => { if (m.type() === "error") log("console error: " + m.text()); });
    return page;
  };
  // seek pauses every CSS animation (the alarm flashes) at a fraction of
  // its period: 0 is the first phase of a flash, 0.5 the second; null
  // lets them run again.
  const seek = (page, f) => page.evaluate((f) => {
    for (const a of document.getAnimations()) {
      if (f === null) { a.play(); continue; }
      a.pause();
      a.currentTime = f * a.effect.getTiming().duration + 1;
    }
  }, f);
  // a11y runs axe-core on the page as it is, in every phase of the flashes
  // shown, and fails on any serious or critical violation.
  result.axe = {};
  const a11y = async (page, state) => {
    if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ path: axePath });
    const flashing = await page.evaluate(() => document.getAnimations().length);
    const phases = flashing ? [0, 0.5] : [null];
    let total = 0;
    for (const f of phases) {
      if (f !== null) await seek(page, f);
      const vs = await page.evaluate(async () => {
        const r = await window.axe.run(document, { resultTypes: ["violations"],
          runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] } });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ") + ": " + n.failureSummary) }));
      });
      const bad = vs.filter((v) => v.impact === "serious" || v.impact === "critical");
      if (bad.length) fail(`axe: ${state}${f === null ? "" : " (flash phase " + f + ")"}: ` + JSON.stringify(bad, null, 1));
      total += vs.length;
    }
    if (flashing) await seek(page, null);
    result.axe[state] = { phases: phases.length, minor: total };
    log(`axe: ${state}: no serious or critical violation (${phases.length} phase(s), ${total} minor)`);
  };
  // Screenshots show the first phase of every flash, so they do not
  // change from run to run with the moment they are taken.
  const shot = async (page, name) => {
    await seek(page, 0);
    await page.screenshot({ path: path.join(cfg.screenshots, name + ".png"), fullPage: true });
    await seek(page, null);
  };
  const style = (page, sel, prop) => page.$eval(sel, (el, prop) => getComputedStyle(el)[prop], prop);
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
  await a11y(clin, "signin");
  await shot(clin, "signin");

  // 2. A clinician signs in and sees the worklist, most at risk first.
  await signIn(clin, cfg.clinician, cfg.password, "/worklist");
  if (new URL(clin.url()).pathname !== "/worklist") fail("clinician landed on " + clin.url());
  const order = await clin.$$eval("#worklist-rows tr.row", (rows) => rows.map((r) => r.dataset.patient));
  if (JSON.stringify(order) !== JSON.stringify(cfg.order)) fail("worklist order " + JSON.stringify(order) + ", want " + JSON.stringify(cfg.order));
  const topClass = await clin.$eval("#worklist-rows tr.row", (r) => r.className);
  if (!topClass.includes("pri-high")) fail("the top row is not marked high priority: " + topClass);
  log("worklist ordered by risk: " + order.join(", "));

  // IEC 60601-1-8: the alarm indicator flashes (high 2 Hz, medium
  // 0.625 Hz), not the whole row.
  const topRow = `#worklist-rows tr[data-patient="${cfg.order[0]}"]`;
  const rowAnim = await style(clin, topRow, "animationName");
  if (rowAnim !== "none") fail("the whole row flashes: animation " + rowAnim);
  const ind = topRow + " .badge.pri-high.state-open";
  const indAnim = [await style(clin, ind, "animationName"), await style(clin, ind, "animationDuration"), await style(clin, ind, "animationIterationCount")];
  if (JSON.stringify(indAnim) !== JSON.stringify(["flash-high", "0.5s", "infinite"])) fail("the high-priority indicator does not flash at 2 Hz: " + indAnim);
  const medium = await clin.evaluate(() => {
    const b = document.createElement("span");
    b.className = "badge pri-medium state-open"; b.textContent = "medium";
    document.querySelector("h1").append(b);
    const cs = getComputedStyle(b), out = [cs.animationName, cs.animationDuration];
    b.remove();
    return out;
  });
  if (JSON.stringify(medium) !== JSON.stringify(["flash-medium", "1.6s"])) fail("the medium-priority indicator does not flash at 0.625 Hz: " + medium);
  // Phases of the high-priority flash differ (it is visibly flashing).
  await seek(clin, 0);
  const phaseA = await style(clin, ind, "backgroundColor");
  await seek(clin, 0.5);
  const phaseB = await style(clin, ind, "backgroundColor");
  await seek(clin, null);
  if (phaseA === phaseB) fail("the indicator's two phases look the same: " + phaseA);
  log("alarm indicator flashes: high " + indAnim.join(" ") + ", medium " + medium.join(" "));

  // Abnormal values stand out by NEWS2 band (from the server); units as
  // people write them; the score says when it is incomplete.
  const cls = (sel) => clin.$eval(sel, (e) => e.className);
  const graceSpO2 = `${topRow} .vital[data-vital="spo2"] .value`;
  if (!(await cls(graceSpO2)).includes("band-3")) fail("SpO2 85 % is not marked NEWS2 band 3: " + await cls(graceSpO2));
  const alanRow = `#worklist-rows tr[data-patient="${cfg.live}"]`;
  if (!(await cls(alanRow + ' .vital[data-vital="hr"] .value')).includes("band-0")) fail("a normal heart rate is not band 0");
  const hrUnit = await clin.$eval(alanRow + ' .vital[data-vital="hr"] .unit', (e) => [e.textContent, e.title]);
  if (hrUnit[0] !== "bpm" || hrUnit[1] !== "UCUM: /min") fail("heart rate unit shown as " + hrUnit);
  if (!(await clin.locator(topRow + " td.news2 .flag.incomplete").isVisible())) fail("an incomplete NEWS2 is not marked incomplete");
  if (!(await cls(topRow + " td.news2 .score")).includes("risk-lowmedium")) fail("a NEWS2 with SpO2 scoring 3 is not low-medium: " + await cls(topRow + " td.news2 .score"));
  const lastText = await clin.locator(topRow + " td.last time").innerText();
  if (!/^\d{1,2} [A-Z][a-z]{2}( \d{4})? \d{2}:\d{2} \(/.test(lastText)) fail("time not written as '7 Dec 10:05': " + lastText);
  log("bands, units, incomplete score and times shown: " + lastText);
  await clin.waitForSelector("#live:has-text('live')", { timeout: 10000 });
  await a11y(clin, "worklist");
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
  if (!(await clin.$eval(liveSel, (e) => e.className)).includes("band-3")) fail("a live heart rate of 131 is not marked band 3");
  // The NEWS2 the rules engine derives from it arrives live, in the RCP's
  // low-medium band (a parameter scoring 3), as the server computed it.
  await clin.locator(`#worklist-rows tr[data-patient="${cfg.live}"] td.news2 .score.risk-lowmedium`).waitFor({ timeout: 30000 });
  log("worklist updated live, with the server's NEWS2 bands");

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
  if (!(await clin.$eval(tileSel + " .value", (e) => e.className)).includes("band-3")) fail("the live tile is not marked band 3");
  await a11y(clin, "patient");
  await shot(clin, "patient");

  // 5. Enter an observation by hand (ACVPU), keyboard and labels only.
  await clin.getByLabel("Observation", { exact: true }).selectOption({ label: "Consciousness (ACVPU)" });
  await clin.getByLabel("Level", { exact: true }).selectOption("2");
  await clin.getByRole("button", { name: "Record", exact: true }).click();
  await clin.locator('#tiles .tile[data-vital="acvpu"] .value', { hasText: /^V$/ }).waitFor({ timeout: 10000 });
  log("manual observation recorded and shown live");
  await a11y(clin, "patient after an entry");

  // 6. The alert inbox: acknowledge the high-priority alert.
  await clin.goto(cfg.url + "/alerts");
  const alertSel = `li.alert.pri-high[data-patient="${cfg.order[0]}"]`;
  await clin.waitForSelector(alertSel + ".state-open");
  if (await style(clin, alertSel, "animationName") !== "none") fail("the whole alert card flashes");
  if (await style(clin, alertSel + " .badge", "animationName") !== "flash-high") fail("the open alert's indicator does not flash");
  const message = await clin.locator(alertSel + " .message").innerText();
  if (/\d{4}-\d{2}-\d{2}T/.test(message)) fail("an alert text shows an ISO time: " + message);
  const values = await clin.locator(alertSel + " .values").innerText();
  if (!/^Now 85 % · worst 85 % since \d{1,2} [A-Z][a-z]{2}/.test(values)) fail("the alert does not show the value now and the worst: " + values);
  await a11y(clin, "alerts");
  await shot(clin, "alerts");
  await clin.locator(alertSel).getByRole("button", { name: "Acknowledge" }).click();
  await clin.waitForSelector(alertSel + ".state-acknowledged", { timeout: 10000 });
  if (await style(clin, alertSel + " .badge", "animationName") !== "none") fail("an acknowledged alert still flashes");
  if (!(await style(clin, alertSel + " .badge", "backgroundColor")).startsWith("rgb(200, 16, 46")) fail("an acknowledged alert lost its colour");
  const meta = await clin.locator(alertSel + " .meta").innerText();
  if (!/acknowledged \d{1,2} [A-Z][a-z]{2}( \d{4})? \d{2}:\d{2} by /.test(meta) || !meta.includes("by " + cfg.clinician_name)) fail("the alert does not say who (display name) acknowledged it and when: " + meta);
  log("alert acknowledged; indicator steady; " + meta);
  await a11y(clin, "alerts after acknowledging");
  await clin.goto(cfg.url + "/patients/" + cfg.order[0]);
  const timeline = await clin.locator(".timeline").innerText();
  if (!timeline.includes("acknowledged by " + cfg.clinician_name)) fail("the timeline does not say who acknowledged: " + timeline);
  await a11y(clin, "patient with an acknowledged alert");
  await clin.goto(cfg.url + "/patients/" + cfg.own); // for the patient's access log below

  // 7. The patient signs in, sees their own record and who accessed it,
  // and cannot open another patient's.
  const pat = await newPage();
  await signIn(pat, cfg.patient, cfg.password, "/patients/");
  if (new URL(pat.url()).pathname !== "/patients/" + cfg.own) fail("patient landed on " + pat.url());
  if (!(await pat.locator("#access-h").isVisible())) fail("no access log on the patient's own view");
  const access = await pat.locator("table.access").innerText();
  if (!access.includes(cfg.clinician_name)) fail("the access log does not name the clinician who opened the record: " + access);
  if (/device\t|sent measurements/.test(access)) fail("the access log lists device writes by default: " + access);
  if (!/looked at your measurements/.test(access)) fail("the access log does not say in plain words what was done: " + access);
  await a11y(pat, "my record");
  await shot(pat, "my-record");
  // 7b. The patient shares their record with an app, withdraws it again,
  // allows research use, and downloads their data.
  if (!(await pat.locator("#consents-h").isVisible())) fail("no consents on the patient's own view");
  await pat.getByLabel("Share my record with").selectOption({ label: cfg.app_name });
  await Promise.all([pat.waitForNavigation(), pat.getByRole("button", { name: "Share", exact: true }).click()]);
  let consents = await pat.locator("table.consents").innerText();
  if (!consents.includes("Sharing with " + cfg.app_name) || !/given/.test(consents)) fail("sharing not shown as given: " + consents);
  await a11y(pat, "my record with a consent given");
  await shot(pat, "my-consents");
  await Promise.all([pat.waitForNavigation(), pat.getByRole("button", { name: /^Withdraw/ }).click()]);
  consents = await pat.locator("table.consents").innerText();
  if (!/withdrawn/.test(consents)) fail("sharing not shown as withdrawn: " + consents);
  await Promise.all([pat.waitForNavigation(), pat.getByRole("button", { name: "Allow research use" }).click()]);
  consents = await pat.locator("table.consents").innerText();
  if (!consents.includes("Research use")) fail("research use not shown: " + consents);
  const changes = await pat.locator("table.access").innerText();
  for (const c of ["gave consent: sharing with " + cfg.app_name, "withdrew consent: sharing with " + cfg.app_name, "gave consent: research use"]) {
    if (changes.split(c).length !== 2) fail(`the access log does not show "${c}" once: ` + changes);
  }
  const [download] = await Promise.all([pat.waitForEvent("download"), pat.getByRole("link", { name: "Download my data" }).click()]);
  if (!/^vigil-record-\d{4}-\d{2}-\d{2}\.zip$/.test(download.suggestedFilename())) fail("download named " + download.suggestedFilename());
  log("patient shared, withdrew, allowed research and downloaded " + download.suggestedFilename());
  const res = await pat.goto(cfg.url + "/patients/" + cfg.other);
  if (res.status() !== 404) fail("patient opened another patient's record: " + res.status());
  if ((await pat.content()).includes("Grace Hopper")) fail("another patient's name leaked");
  log("patient refused another record (404)");

  // 8. The admin page.
  const adm = await newPage();
  await signIn(adm, cfg.admin, cfg.admin_password, "/admin");
  if (new URL(adm.url()).pathname !== "/admin") fail("admin landed on " + adm.url());
  await a11y(adm, "admin");
  await adm.getByLabel("Model").fill("CGM-9");
  await adm.getByLabel("Serial").fill("SN-E2E-CGM");
  await adm.getByRole("button", { name: "Register" }).click();
  await adm.waitForSelector("#token-once:not([hidden])", { timeout: 10000 });
  const token = await adm.locator("#token-value").innerText();
  if (token.length < 20) fail("no device token shown: " + token);
  await a11y(adm, "admin with a token shown");
  await shot(adm, "admin");
  log("admin registered a device; token shown once");

  // 9. A phone: the worklist stacks its cells and labels every number.
  const phone = await newPage({ width: 390, height: 844 });
  await signIn(phone, cfg.clinician, cfg.password, "/worklist");
  const labels = await phone.$$eval(`#worklist-rows tr[data-patient="${cfg.order[0]}"] td`, (tds) => tds.map((td) => getComputedStyle(td, "::before").content));
  if (labels.some((l) => !l || l === "none" || l === "normal")) fail("a worklist cell is unlabelled on a phone: " + JSON.stringify(labels));
  await a11y(phone, "worklist on a phone");
  await shot(phone, "worklist-phone");
  log("phone worklist labels: " + labels.join(", "));

  result.ok = true;
} catch (e) {
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
}
