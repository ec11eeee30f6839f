#!/usr/bin/env node
// Functional checks of the page against the stub server (token mode), in Debian's chromium via
// playwright-core: token on every request, failure and skip display, uploads, exports, sheet
// CRUD, reconnect without missed events, cancel, keys, theme persistence, history list.
//   node dev/check.mjs
import { spawn, execSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const TOKEN = "s3cret";
const child = spawn(process.execPath, [join(here, "stub-server.mjs"), "--graph", "demo", "--port", "0", "--token", TOKEN, "--speed", "2"], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve) => child.stdout.on("data", (d) => String(d).match(/http:\/\/\S+/) && resolve(String(d).match(/http:\/\/\S+/)[0])));
const base = url.replace(/\?.*/, "");

const executablePath = execSync("command -v chromium", { shell: "/bin/bash" }).toString().trim();
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "inspector-check-")), {
  executablePath, headless: true, acceptDownloads: true, viewport: { width: 1280, height: 800 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
const page = context.pages()[0] || (await context.newPage());
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => m.type() === "error" && !m.text().includes("ERR_INCOMPLETE_CHUNKED_ENCODING") && errors.push(m.text()));
const requests = [];
page.on("request", (r) => r.url().startsWith(base) && requests.push(r));
let dialogAnswer = null;
page.on("dialog", (d) => d.accept(dialogAnswer ?? undefined));

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message.split("\n")[0]}`);
    await page.screenshot({ path: `/tmp/check-fail-${passed + failed}.png` }).catch(() => {});
  }
}
const assert = (cond, message) => {
  if (!cond) throw new Error(message);
};
const status = (n) => page.getAttribute(`[data-testid="node-${n}"]`, "data-status");
const waitStatus = (n, wanted, timeout = 15000) =>
  page.waitForFunction(([n, w]) => w.includes(document.querySelector(`[data-testid="node-${n}"]`)?.dataset.status), [n, wanted], { timeout });
const idle = () => page.waitForFunction(() => !document.body.classList.contains("is-running") && document.querySelector("#run-status").textContent !== "", null, { timeout: 20000 });
const runAll = async () => {
  await page.click('[data-testid="run-all"]');
  await page.waitForFunction(() => document.body.classList.contains("is-running"));
};

await check("loads with the token and goes live", async () => {
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  await page.waitForSelector('[data-testid="live-status"][data-state="live"]');
});

await check("every API request carries the token (header or query)", async () => {
  const api = requests.filter((r) => new URL(r.url()).pathname.startsWith("/api/"));
  assert(api.length > 3, `only ${api.length} API requests`);
  const missing = api.filter((r) => r.headers()["x-daggr-token"] !== TOKEN && new URL(r.url()).searchParams.get("token") !== TOKEN);
  assert(!missing.length, `no token on ${missing.map((r) => r.url()).join(", ")}`);
});

await check("run all: failure shows an error box, downstream is skipped, others done", async () => {
  await runAll();
  await idle();
  assert((await status("publish")) === "failed", `publish is ${await status("publish")}`);
  assert((await page.textContent('[data-testid="error-publish"]')).includes("503"), "no 503 in the error box");
  assert((await status("notify")) === "skipped", `notify is ${await status("notify")}`);
  for (const n of ["generate", "caption", "stats", "report"]) assert((await status(n)) === "done", `${n} is ${await status(n)}`);
  assert(/Done in .*: .*computed.*1 failed.*1 skipped/.test(await page.textContent("#run-status")), await page.textContent("#run-status"));
});

await check("logs: a failed node's card shows the lines it logged and its error", async () => {
  // A DOM click: Playwright would scroll the off-screen card into view, which pans the canvas.
  await page.$eval('[data-testid="node-publish"] header .name', (n) => n.click());
  await page.waitForSelector('[data-testid="logs-publish"]', { state: "visible" });
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="log-lines-publish"] .line').length === 2);
  const lines = await page.$$eval('[data-testid="log-lines-publish"] .line .text', (ts) => ts.map((t) => t.textContent));
  assert(lines[0] === "uploading report.md" && lines[1].startsWith("failed: HTTP 503"), JSON.stringify(lines));
  await page.click('[data-testid="canvas"]', { position: { x: 5, y: 5 } });
  assert(await page.locator(".card.open").count() === 0, "a click on the background closes the card");
});

await check("history: a failed run is listed with its error; picking it shows its log, not as a result", async () => {
  // DOM clicks, as above: the card is off-screen.
  await page.waitForFunction(() => document.querySelector('[data-testid="history-publish"] .counter')?.textContent === "✕ 1");
  await page.$eval('[data-testid="history-publish"] .counter', (b) => b.click());
  const failedEntry = '[data-testid="history-list-publish"] .entry.failed';
  await page.waitForSelector(failedEntry);
  const error = await page.textContent(`${failedEntry} .entry-error`);
  assert(error.startsWith("HTTP 503"), `entry error: ${error}`);
  await page.$eval(failedEntry, (b) => b.click());
  await page.waitForFunction(() => document.querySelector('[data-testid="logs-source-publish"]')?.textContent === "run 1 · failed");
  const lines = await page.$$eval('[data-testid="log-lines-publish"] .line .text', (ts) => ts.map((t) => t.textContent));
  assert(lines[0] === "uploading report.md" && lines[1].startsWith("failed: HTTP 503"), JSON.stringify(lines));
  await page.$eval('[data-testid="logs-current-publish"]', (b) => b.click());
  await page.waitForFunction(() => document.querySelector('[data-testid="logs-source-publish"]')?.closest("[hidden]"));
  await page.click('[data-testid="canvas"]', { position: { x: 5, y: 5 } });
});

await check("previews: image, gallery, audio, JSON tree, file link, long text", async () => {
  assert(await page.locator('[data-testid="node-generate"] .rich img').count() === 1, "no image");
  await page.waitForFunction(() => document.querySelector('[data-testid="node-generate"] .rich img')?.naturalWidth > 0);
  assert(await page.locator('[data-testid="node-variations"] .gallery img').count() === 6, "gallery is not 6 images");
  assert(await page.locator('[data-testid="node-narrate"] audio[controls]').count() === 1, "no audio player");
  assert(await page.locator('[data-testid="node-stats"] .json details').count() >= 1, "no JSON tree");
  const href = await page.getAttribute('[data-testid="node-report"] a.file', "href");
  assert(href && href.includes("token="), `file link ${href}`);
  assert((await page.textContent('[data-testid="node-caption"] .rich pre')).startsWith("A lone lighthouse"), "no caption text");
  assert((await page.textContent('[data-testid="node-score"] [data-testid="output-output"]')).trim() === "0.8734", "score");
});

await check("the image opens full size in a dialog and Escape closes it", async () => {
  await page.click('[data-testid="node-generate"] .thumb');
  await page.waitForSelector("#lightbox[open] img");
  await page.keyboard.press("Escape");
  await page.waitForSelector("#lightbox:not([open])", { state: "attached" });
});

await check("uploading an image sets the input and marks downstream stale", async () => {
  const { Buffer } = await import("node:buffer");
  const png = Buffer.from("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc0f01f0005000201a5f0c1a90000000049454e44ae426082", "hex");
  await page.setInputFiles('[data-testid="input-reference-value"]', { name: "dot.png", mimeType: "image/png", buffer: png });
  await waitStatus("similarity", ["stale"]);
  await page.waitForFunction(() => document.querySelector('[data-testid="node-reference"] .file-name')?.textContent.startsWith("dot.png"));
  assert(await page.locator('[data-testid="reset-reference-value"]:visible').count() === 1, "no reset button for the override");
  await page.click('[data-testid="reset-reference-value"]');
  await waitStatus("similarity", ["done"]);
});

await check("a bad integer is refused in the page, not sent", async () => {
  const before = requests.length;
  await page.fill('[data-testid="input-size-value"]', "1.5");
  await page.press('[data-testid="input-size-value"]', "Enter");
  assert((await page.getAttribute('[data-testid="input-size-value"]', "aria-invalid")) === "true", "not marked invalid");
  assert(!requests.slice(before).some((r) => r.url().endsWith("/inputs")), "sent anyway");
  await page.press('[data-testid="input-size-value"]', "Escape");
  assert((await page.inputValue('[data-testid="input-size-value"]')) === "96", "Escape did not revert");
});

await check("export SVG downloads a standalone SVG with every edge", async () => {
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="export-svg"]')]);
  const text = readFileSync(await download.path(), "utf8");
  assert(download.suggestedFilename() === "quickstart.svg", download.suggestedFilename());
  assert(text.startsWith("<?xml") && text.includes('xmlns="http://www.w3.org/2000/svg"'), "not standalone SVG");
  const edges = (await page.evaluate(() => fetch("/api/graph?token=s3cret").then((r) => r.json()))).edges.length;
  assert((text.match(/<path /g) || []).length === edges, `paths != ${edges}`);
  assert(!text.includes("class="), "classes left in (styles must be inline)");
});

await check("export Mermaid downloads the server's text", async () => {
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="export-mermaid"]')]);
  assert(readFileSync(await download.path(), "utf8").startsWith("flowchart"), "not mermaid");
});

await check("dragging a card moves it and its edges; Reset layout puts it back", async () => {
  const left = () => page.$eval('[data-testid="node-score"]', (c) => parseFloat(c.style.left));
  const edge = () => page.getAttribute('#edges path[data-to="score"]', "d");
  const [x0, d0] = [await left(), await edge()];
  const h = await page.locator('[data-testid="node-score"] header .name').boundingBox();
  const saved = page.waitForResponse((r) => r.url().includes("/positions") && r.request().method() === "POST");
  await page.mouse.move(h.x + 5, h.y + 5);
  await page.mouse.down();
  await page.mouse.move(h.x + 105, h.y + 45, { steps: 6 });
  await page.mouse.up();
  assert((await saved).ok(), "positions not saved");
  assert((await left()) > x0 + 20, `score did not move (${x0} -> ${await left()})`);
  assert((await edge()) !== d0, "its edge did not follow");
  assert(await page.locator('[data-testid="node-score"].open').count() === 0, "a drag opened the card");
  await page.click('[data-testid="reset-layout"]');
  await page.waitForFunction((x) => parseFloat(document.querySelector('[data-testid="node-score"]').style.left) === x, x0);
  assert((await edge()) === d0, "the edge is not back");
  assert(await page.isHidden('[data-testid="reset-layout"]'), "Reset layout still shown");
});

await check("history list selects an older result; restore brings its inputs back", async () => {
  await page.fill('[data-testid="input-generate-seed"]', "8");
  await page.press('[data-testid="input-generate-seed"]', "Enter");
  await waitStatus("generate", ["stale"]);
  await page.click('[data-testid="play-generate"]');
  await page.click('[data-testid="run-only-generate"]');
  await waitStatus("generate", ["done"]);
  await idle();
  await page.waitForSelector('[data-testid="history-generate"]:visible');
  await page.click('[data-testid="history-generate"] .counter');
  await page.waitForSelector('[data-testid="history-list-generate"] button');
  const items = page.locator('[data-testid="history-list-generate"] button');
  assert((await items.count()) === 2, `${await items.count()} entries`);
  await items.nth(1).click();
  await page.waitForFunction(() => document.querySelector('[data-testid="history-generate"] .counter')?.textContent === "1/2");
  await page.click('[data-testid="history-generate"] .restore');
  await page.waitForFunction(() => document.querySelector('[data-testid="input-generate-seed"]').value === "7");
  await waitStatus("generate", ["done", "cached"]);
});

await check("run menu: keyboard opens it, hover outlines the plan, Escape closes and refocuses", async () => {
  await page.focus('[data-testid="play-stats"]');
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-testid="run-menu-stats"]');
  await page.keyboard.press("ArrowDown");
  assert(await page.evaluate(() => document.activeElement?.dataset.testid) === "run-to-stats", "ArrowDown did not move");
  const planned = await page.locator(".card.in-plan").count();
  assert(planned === 5, `${planned} cards outlined for run to stats`);
  await page.keyboard.press("Escape");
  assert(await page.locator('[data-testid="run-menu-stats"]').count() === 0, "menu still open");
  assert(await page.evaluate(() => document.activeElement?.dataset.testid) === "play-stats", "focus not back on ▶");
  assert(await page.locator(".card.in-plan").count() === 0, "plan outline left behind");
});

await check("reconnect: dropped streams come back and no event is missed", async () => {
  await page.fill('[data-testid="input-size-value"]', "64");
  await page.press('[data-testid="input-size-value"]', "Enter");
  await waitStatus("generate", ["stale"]);
  await runAll();
  await page.waitForFunction(() => document.querySelector('[data-testid="node-generate"]')?.dataset.status === "running");
  await page.evaluate(() => fetch("/__stub/drop?token=s3cret", { method: "POST" }));
  await page.waitForSelector('[data-testid="live-status"][data-state="live"]', { timeout: 10000 });
  await idle();
  const states = await page.$$eval(".card", (cs) => cs.map((c) => c.dataset.status));
  assert(states.filter((s) => s === "running").length === 0, "a card still shows running");
  assert((await status("caption")) === "done" || (await status("caption")) === "cached", `caption is ${await status("caption")}`);
});

await check("cancel stops a run", async () => {
  await page.fill('[data-testid="input-prompt-value"]', "cancel me");
  await page.press('[data-testid="input-prompt-value"]', "Enter");
  await waitStatus("generate", ["stale"]);
  await runAll();
  await page.click('[data-testid="cancel"]');
  await page.waitForFunction(() => document.querySelector("#run-status").textContent.startsWith("Cancelled"), null, { timeout: 10000 });
});

await check("keys: f fits, + zooms in, - zooms out, t toggles the timeline", async () => {
  await page.click('[data-testid="canvas"]', { position: { x: 5, y: 5 } });
  const zoom = () => page.evaluate(() => new DOMMatrix(getComputedStyle(document.getElementById("world")).transform).a);
  await page.keyboard.press("f");
  await page.waitForTimeout(50);
  const z0 = await zoom();
  await page.keyboard.press("+");
  await page.waitForTimeout(50);
  assert((await zoom()) > z0, "+ did not zoom in");
  await page.keyboard.press("-");
  await page.keyboard.press("-");
  await page.waitForTimeout(50);
  assert((await zoom()) < z0, "- did not zoom out");
  await page.keyboard.press("t");
  await page.waitForSelector('[data-testid="timeline"]:visible');
  assert(await page.locator(".tl-row .tl-bar").count() > 0, "no timeline bars");
  await page.keyboard.press("t");
  await page.waitForSelector('[data-testid="timeline"]', { state: "hidden" });
});

await check("sheets: fork, rename, delete", async () => {
  dialogAnswer = "fork-1";
  await page.click('[data-testid="sheet-fork"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="sheet-select"]').value === "fork-1");
  assert(new URL(page.url()).searchParams.get("sheet") === "fork-1", "URL not updated");
  await waitStatus("generate", ["done", "cached", "stale"]);
  dialogAnswer = "renamed";
  await page.click('[data-testid="sheet-rename"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="sheet-select"]').value === "renamed");
  const names = await page.$$eval('[data-testid="sheet-select"] option', (os) => os.map((o) => o.value));
  assert(JSON.stringify(names) === JSON.stringify(["default", "renamed"]), JSON.stringify(names));
  dialogAnswer = null;
  await page.click('[data-testid="sheet-delete"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="sheet-select"]').value === "default");
  assert((await page.$$eval('[data-testid="sheet-select"] option', (os) => os.length)) === 1, "not deleted");
});

await check("theme toggle persists across a reload", async () => {
  const before = await page.evaluate(() => document.documentElement.dataset.theme);
  await page.click('[data-testid="theme-toggle"]');
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  const after = await page.evaluate(() => document.documentElement.dataset.theme);
  assert(after !== before, `theme ${before} -> ${after}`);
});

await check("deep link to a missing node says so and still loads", async () => {
  await page.goto(`${url}&node=nope`);
  await page.waitForSelector("body[data-ready=true]");
  await page.waitForFunction(() => document.getElementById("toast").textContent.includes("nope"));
  errors.length = errors.filter((e) => !e.includes("404")).length;
});

await check("no page errors", async () => assert(!errors.length, JSON.stringify(errors)));

console.log(`${passed} passed, ${failed} failed`);
await context.close();
child.kill();
process.exit(failed ? 1 : 0);
