// The console as a person uses it, in Debian's chromium driven by playwright-core (no browser download).
// Run by tests/e2e/test_console_browser.py against `make run`'s processes:
//   node console/browser.mjs <api url> <operator token> <output dir>
// It signs up, creates a key, makes calls with it through the API, finds them on the usage chart, then, as
// an operator, finds the tenant and changes its plan; it also signs in with the keyboard alone and checks
// that every control has a label. It writes a screenshot of each page and results.json (what was seen, the
// paint time, each page's transfer and API calls) to the output dir; the pytest test judges them.
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { mkdtempSync } from "node:fs";

const [apiUrl, operatorToken, outDir] = process.argv.slice(2);
const shots = join(outDir, "screenshots");
mkdirSync(shots, { recursive: true });
const results = { pages: {}, steps: [], unlabelled: {}, console_errors: [], csp_violations: [] };
const step = (name, data) => { results.steps.push({ name, ...data }); };

// A fresh profile each run (playwright passes it as --user-data-dir); pages share it, but the console keeps
// its session in each page's memory, so the owner, the operator and the keyboard user stay apart.
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "tessera-chromium-")), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// Every response the page receives, so a page's transfer and API calls can be summed.
function watch(page) {
  const seen = [];
  page.on("requestfinished", async (request) => {
    const sizes = await request.sizes().catch(() => ({ responseBodySize: 0, responseHeadersSize: 0 }));
    const url = new URL(request.url());
    seen.push({ path: url.pathname + url.search, method: request.method(), type: request.resourceType(),
      bytes: sizes.responseBodySize + sizes.responseHeadersSize });
  });
  page.on("console", (message) => { if (message.type() === "error") results.console_errors.push(message.text()); });
  page.on("pageerror", (error) => results.console_errors.push(String(error)));
  return seen;
}

const isApi = (r) => (r.type === "fetch" || r.type === "xhr");

// Open a page of the console through its navigation and record what it cost, once its content is drawn.
async function visit(page, seen, name, hash, ready) {
  const before = seen.length;
  const started = Date.now();
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(ready, { timeout: 15000 });
  await page.waitForLoadState("networkidle");
  const requests = seen.slice(before);
  results.pages[name] = {
    drawn_ms: Date.now() - started,
    api_calls: requests.filter(isApi).map((r) => `${r.method} ${r.path}`),
    api_bytes: requests.filter(isApi).reduce((s, r) => s + r.bytes, 0),
  };
  results.unlabelled[name] = await unlabelled(page);
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

// Controls without an accessible name: inputs without a label, buttons and links without text or aria-label.
function unlabelled(page) {
  return page.evaluate(() => [...document.querySelectorAll("input, select, textarea, button, a[href]")]
    .filter((e) => e.offsetParent !== null || e.tagName === "SELECT")
    .filter((e) => {
      if (e.getAttribute("aria-label")) return false;
      if (["INPUT", "SELECT", "TEXTAREA"].includes(e.tagName)) return !(e.labels && e.labels.length);
      return !e.textContent.trim();
    }).map((e) => e.outerHTML.slice(0, 120)));
}

async function call(method, path, token, body) {
  const response = await fetch(`${apiUrl}${path}`, {
    method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined });
  return { status: response.status, json: await response.json().catch(() => null) };
}

try {
  // --- a tenant owner: sign up, see the usage page, create a key ---------------------------------------
  const owner = await browser.newPage();
  const seen = watch(owner);
  owner.on("dialog", (d) => d.dismiss());
  await owner.goto(`${apiUrl}/console`, { waitUntil: "load" });
  await owner.waitForSelector("#login-form");
  const paint = await owner.evaluate(() => Object.fromEntries(performance.getEntriesByType("paint")
    .map((p) => [p.name, Math.round(p.startTime)])));
  results.first_load = {
    paint_ms: paint["first-contentful-paint"], first_paint_ms: paint["first-paint"],
    bytes: seen.reduce((s, r) => s + r.bytes, 0), files: seen.map((r) => `${r.path} ${r.bytes}`),
  };
  await owner.screenshot({ path: join(shots, "sign-in.png"), fullPage: true });
  results.unlabelled["sign-in"] = await unlabelled(owner);

  const slug = `console-${Date.now().toString(36)}`;
  const email = `owner@${slug}.example.com`;
  await owner.click("#sign-up summary");
  await owner.fill("#signup-company", "Console Test Co");
  await owner.fill("#signup-slug", slug);
  await owner.fill("#signup-email", email);
  await owner.fill("#signup-password", "console-password-1");
  let before = seen.length;
  const signUpStarted = Date.now();
  await owner.click("#signup-form button[type=submit]");
  await owner.waitForSelector("#usage-spend", { timeout: 15000 });
  await owner.waitForLoadState("networkidle");
  results.pages.usage_after_sign_in = {
    drawn_ms: Date.now() - signUpStarted,
    api_calls: seen.slice(before).filter(isApi).map((r) => `${r.method} ${r.path}`),
  };
  step("signed up", { slug });

  await visit(owner, seen, "keys", "#/keys", "#keys-table");
  await owner.fill("#key-name", "browser-test");
  await owner.click("text=Create key");
  await owner.waitForSelector("#new-key-secret");
  const key = (await owner.textContent("#new-key-secret")).trim();
  step("key created", { shown_once: key.startsWith("tsk_") });
  await owner.screenshot({ path: join(shots, "keys-new-secret.png"), fullPage: true });

  // --- calls through the API with that key, then seen on the usage chart -----------------------------
  const answers = [];
  for (let n = 0; n < 3; n++) {
    answers.push(await call("POST", "/ai/chat", key, { messages: [{ role: "user", content: `hello ${n}` }] }));
  }
  step("calls made", { statuses: answers.map((a) => a.status) });
  let api = null;
  let shown = null;
  for (let attempt = 0; attempt < 40; attempt++) {
    api = (await call("GET", "/usage", key)).json;
    if (api.requests === 3) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  await visit(owner, seen, "usage", "#/usage", "#usage-spend");
  await owner.waitForFunction(() => window.tesseraCharts["daily-chart"], null, { timeout: 5000 });
  shown = await owner.evaluate(() => {
    const chart = window.tesseraCharts["daily-chart"];
    return { spend: document.getElementById("usage-spend").textContent,
      requests: document.getElementById("usage-requests").textContent,
      chart_requests_today: chart.data[2][chart.data[2].length - 1],
      chart_days: chart.data[0].length,
      key_row: [...document.querySelectorAll("#by-key tbody tr")].map((r) => r.textContent) };
  });
  step("usage seen", { api_spend: api.total_cost_usd, api_requests: api.requests, ...shown,
    answers_cost: answers.map((a) => a.json && a.json.cost_usd) });

  await visit(owner, seen, "users", "#/users", "#users-table");
  await visit(owner, seen, "settings", "#/settings", "#ai-model");
  await visit(owner, seen, "prompts", "#/prompts", "#page h1:has-text(\"Prompts\")");

  // --- an operator finds the tenant and changes its plan ---------------------------------------------
  const operator = await browser.newPage();
  const opSeen = watch(operator);
  await operator.goto(`${apiUrl}/console`, { waitUntil: "load" });
  await operator.click("text=Platform operator");
  await operator.fill("#operator-token", operatorToken);
  await operator.click("text=Open the operator console");
  await operator.waitForSelector("#tenants-table");
  await visit(operator, opSeen, "operator_tenants", "#/op/tenants?sort=spend", "#tenants-table");
  await operator.fill("#tenant-search", slug.slice(0, 14));
  await operator.click("form[role=search] button");
  // The search's answer, not the list before it (which, on a stack with other tenants, also shows this one).
  await operator.waitForFunction((prefix) => {
    const rows = [...document.querySelectorAll("#tenants-table tbody tr")];
    return rows.length > 0 && rows.every((r) => r.textContent.includes(prefix));
  }, slug.slice(0, 14));
  const found = await operator.$$eval("#tenants-table tbody tr", (rows) => rows.map((r) => r.textContent));
  step("operator found tenant", { rows: found.length, row: found[0] });
  const tenantId = (await call("GET", "/me", key)).json.tenant_id;
  await visit(operator, opSeen, "operator_tenant", `#/op/tenant/${tenantId}`, "#tenant-plan");
  await operator.selectOption("#tenant-plan", "pro");
  await operator.click("text=Change plan");
  await operator.waitForSelector("#confirm[open]");
  await operator.screenshot({ path: join(shots, "operator-confirm.png") });
  await operator.click("#confirm-ok");
  await operator.waitForFunction(() => document.getElementById("tenant-plan-now")?.textContent === "pro",
    null, { timeout: 10000 });
  step("plan changed", { api_plan: (await call("GET", "/tenant", key)).json.plan });
  await visit(operator, opSeen, "operator_platform", "#/op/platform", "#by-plan");

  // --- keyboard only: sign in and move between pages without a pointer --------------------------------
  const keyboard = await browser.newPage();
  watch(keyboard);
  await keyboard.goto(`${apiUrl}/console`, { waitUntil: "load" });
  const focusOrder = [];
  for (let n = 0; n < 3; n++) {
    await keyboard.keyboard.press("Tab");
    focusOrder.push(await keyboard.evaluate(() => document.activeElement.id || document.activeElement.tagName));
  }
  // Skip to the form's first field by tabbing until it has focus (the header's controls come first).
  for (let n = 0; n < 10 && await keyboard.evaluate(() => document.activeElement.id) !== "login-tenant"; n++) {
    await keyboard.keyboard.press("Tab");
  }
  await keyboard.keyboard.type(slug);
  await keyboard.keyboard.press("Tab");
  await keyboard.keyboard.type(email);
  await keyboard.keyboard.press("Tab");
  await keyboard.keyboard.type("console-password-1");
  await keyboard.keyboard.press("Enter");
  await keyboard.waitForSelector("#usage-spend", { timeout: 15000 });
  let reached = null;
  for (let n = 0; n < 30; n++) {
    await keyboard.keyboard.press("Tab");
    const text = await keyboard.evaluate(() => document.activeElement.textContent);
    if (text === "API keys") { reached = n; break; }
  }
  const outline = await keyboard.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  await keyboard.keyboard.press("Enter");
  await keyboard.waitForSelector("#keys-table", { timeout: 10000 });
  step("keyboard only", { tabs_to_keys_link: reached, first_focus: focusOrder, focus_outline: outline });

  // --- storage: the session is in memory only ---------------------------------------------------------
  results.storage = await owner.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length,
    cookies: document.cookie }));
} catch (error) {
  results.error = String(error && error.stack || error);
} finally {
  await browser.close();
  writeFileSync(join(outDir, "results.json"), JSON.stringify(results, null, 2));
}
