// 500 nodes in real Chromium: every card renders, a full run's live updates land, and the
// canvas stays responsive. Prints measured times (medians) as one JSON line; budgets are
// reported, not asserted (machines are noisy).
import { createRequire } from "node:module";
import { execSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { chromium } = require(process.env.DAGGR_PLAYWRIGHT);
const executablePath = execSync("command -v chromium", { shell: "/bin/bash" }).toString().trim();
mkdirSync(shots, { recursive: true });
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "daggr-ui-")), {
  executablePath, headless: true, args, viewport: { width: 1280, height: 800 } });
const page = context.pages()[0] || (await context.newPage());
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const fail = (m) => { console.error(`FAIL: ${m} ${JSON.stringify(errors)}`); process.exit(1); };

let t = Date.now();
await page.goto(url);
await page.waitForSelector("body[data-ready=true]", { timeout: 60000 }).catch(() => fail("not ready"));
const load_ms = Date.now() - t;
const cards = await page.locator(".card").count();
if (cards !== 500) fail(`${cards} cards`);

t = Date.now();
await page.click('[data-testid="run-all"]');
await page.waitForFunction(() => [...document.querySelectorAll(".card")].every((c) => c.dataset.status === "done" || c.dataset.status === "cached"),
  null, { timeout: 60000, polling: 100 }).catch(() => fail("not all nodes finished"));
const run_ms = Date.now() - t;

// Frame times while zooming and panning: 40 wheel steps.
const frames = await page.evaluate(async () => {
  const times = [];
  const vp = document.getElementById("viewport");
  let last = performance.now();
  for (let i = 0; i < 40; i++) {
    vp.dispatchEvent(new WheelEvent("wheel", { deltaY: i % 2 ? 120 : -120, clientX: 400, clientY: 300, bubbles: true, cancelable: true }));
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    times.push(now - last);
    last = now;
  }
  times.sort((a, b) => a - b);
  return { median: times[20], p90: times[36] };
});
await page.click('[data-testid="fit"]');
await page.screenshot({ path: join(shots, "6-500-nodes.png") });
if (errors.length) fail("page errors");
console.log(JSON.stringify({ cards, load_ms, run_ms, frame_median_ms: frames.median, frame_p90_ms: frames.p90 }));
await context.close();
