// Drive the page in headless Chromium (playwright-core) through the cases of a spec file, in one browser:
//
//   node web/tests/drive.mjs SPEC.json > RESULT.json
//
// SPEC: {url, chromium, out, timeout_ms, sessions: [{name, query, route: {url, status, body}, screenshot,
// steps: [{file, screenshot}]}]}. Each session is a fresh page (its optional route answers one URL with `status`/`body`);
// each step uploads `file`, waits for the page to be done or to show an error, and records what the page
// shows and, when done, the JSON its download button gives. A page that neither finishes nor shows a
// message within timeout_ms fails the run. Assertions are the caller's (tests/test_web.py).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const SETTLED = ["ready", "done", "error"];

/** Distinct colours among the taggram's cells (a blank or one-colour taggram has 1). */
function taggramColours() {
  const canvas = document.getElementById("taggram");
  if (!canvas.dataset.cells) return 0;
  const [x, y, w, h] = JSON.parse(canvas.dataset.cells);
  const { data } = canvas.getContext("2d").getImageData(x, y, w, h);
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return colours.size;
}

/** Wait until the page is ready, done or shows an error; what it shows then. */
async function settle(page, timeout) {
  await page.waitForFunction((states) => states.includes(document.body.dataset.state), SETTLED, { timeout });
  const shown = await page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    return {
      state: document.body.dataset.state,
      message: $("message").hidden ? "" : $("message").textContent,
      modelInfo: $("model-info").textContent,
      title: $("result").hidden ? "" : $("track-title").textContent,
      bars: [...document.querySelectorAll("#tags .tag")].map((row) => [row.dataset.tag, Number(row.dataset.probability)]),
      fileEnabled: !$("file").disabled,
    };
  });
  shown.taggramColours = await page.evaluate(taggramColours);
  return shown;
}

async function runStep(page, step) {
  const started = Date.now();
  await page.evaluate(() => { document.body.dataset.state = "submitted"; });
  await page.setInputFiles("#file", step.file);
  const shown = await settle(page, spec.timeout_ms);
  shown.seconds = (Date.now() - started) / 1000;
  if (shown.state === "done") {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
    const saved = join(spec.out, download.suggestedFilename());
    await download.saveAs(saved);
    shown.result = JSON.parse(readFileSync(saved, "utf8"));
  }
  if (step.screenshot) await page.screenshot({ path: join(spec.out, step.screenshot), fullPage: true });
  return shown;
}

async function runSession(browser, session) {
  const context = await browser.newContext({ viewport: { width: 960, height: 720 }, acceptDownloads: true });
  const page = await context.newPage();
  const console_ = [];
  page.on("console", (m) => ["error", "warning"].includes(m.type()) && console_.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (err) => console_.push(`pageerror: ${err.message}`));
  const requested = [], external = []; // paths asked of the page's server; URLs of any other (must be none)
  const origin = new URL(spec.url).origin;
  context.on("request", (r) => {
    if (/^(data|blob):/.test(r.url())) return;
    const url = new URL(r.url());
    if (url.origin === origin) requested.push(url.pathname);
    else external.push(r.url());
  });
  if (session.route) {
    await page.route(session.route.url, (route) => route.fulfill({ status: session.route.status ?? 200,
      body: session.route.body ?? "", headers: { "Cross-Origin-Resource-Policy": "same-origin" } }));
  }
  const started = Date.now();
  await page.goto(spec.url + (session.query || ""));
  const loaded = await settle(page, spec.timeout_ms);
  loaded.seconds = (Date.now() - started) / 1000;
  Object.assign(loaded, await page.evaluate(() => ({ isolated: self.crossOriginIsolated, cores: navigator.hardwareConcurrency })));
  if (session.screenshot) await page.screenshot({ path: join(spec.out, session.screenshot), fullPage: true });
  const steps = [];
  for (const step of session.steps || []) steps.push(await runStep(page, step));
  await context.close();
  return { name: session.name, loaded, steps, console: console_, requested, external };
}

const browser = await chromium.launch({
  executablePath: spec.chromium, headless: true,
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});
try {
  const sessions = [];
  for (const session of spec.sessions) sessions.push(await runSession(browser, session));
  process.stdout.write(JSON.stringify({ version: browser.version(), sessions }, null, 1));
} finally {
  await browser.close();
}
