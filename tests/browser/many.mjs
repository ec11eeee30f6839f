// 500 nodes in real Chromium: every card renders, a full run's live updates land, and the
// canvas stays responsive. Prints measured times (medians) as one JSON line; budgets are
// reported, not asserted (machines are noisy).
import { launch } from "./launch.mjs";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
const { context, page, errors } = await launch(shots);
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
