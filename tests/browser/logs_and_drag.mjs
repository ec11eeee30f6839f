// Node logs and card dragging in real Chromium (playwright-core, Debian's chromium).
// Usage: node logs_and_drag.mjs <url> <screenshot dir>; env DAGGR_PLAYWRIGHT = path to playwright-core.
// The pipeline (tests/inspector_browser.rs): text -> chatty (logs 18 lines over ~1 s),
// text -> upper -> tail, and flaky (fails once, then succeeds on its retry).
// Prints one JSON line of findings; exits 1 with a message on the first failed check.
import { card, checks, launch, withParam } from "./launch.mjs";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
const browser = await launch(shots, { clipboardFor: new URL(url).origin, consoleErrors: true });
const { context, page, errors } = browser;

const findings = {};
const { fail, check, waitFor, ready } = checks(browser, shots, "failure-logs-drag.png");
const lineTexts = (name) => page.$$eval(`[data-testid="log-lines-${name}"] .line .text`, (ts) => ts.map((t) => t.textContent));

await page.goto(url);
await ready();

// ---- logs ----
// Opening a card shows its Logs section (nothing yet).
await page.click(`${card("chatty")} header .name`);
await waitFor((c) => document.querySelector(c)?.classList.contains("open"), card("chatty"), "a click did not open the card");
await page.waitForSelector('[data-testid="logs-chatty"]', { state: "visible" }).catch(() => fail("no Logs section in the open card"));
await check((await page.textContent('[data-testid="log-lines-chatty"]')).includes("Not run yet"), "an empty log says the node has not run");

// Run: lines arrive while the node is still running.
await page.click('[data-testid="run-all"]');
await waitFor(([c, l]) => document.querySelector(c)?.dataset.status === "running" && document.querySelectorAll(`${l} .line`).length >= 2,
  [card("chatty"), '[data-testid="log-lines-chatty"]'], "no log line was shown while chatty was running");
findings.live_lines = await page.locator('[data-testid="log-lines-chatty"] .line').count();
await waitFor((c) => document.querySelector(c)?.dataset.status === "done", card("chatty"), "chatty did not finish");
await waitFor(() => [...document.querySelectorAll('[data-testid="log-lines-chatty"] .line .text')].some((t) => t.textContent === "done: 17 chars"),
  null, "the last line never showed");
const lines = await lineTexts("chatty");
findings.lines = lines;
await check(lines.length === 18 + lines.filter((l) => l.startsWith("progress")).length, `unexpected lines: ${JSON.stringify(lines)}`);
await check(lines.some((l) => /^progress \d+%: step \d+$/.test(l)), `no progress line: ${JSON.stringify(lines)}`);
const stamps = await page.$$eval('[data-testid="log-lines-chatty"] .line time', (ts) => ts.map((t) => t.textContent));
await check(stamps.length === lines.length && stamps.every((s) => /^\d\d:\d\d:\d\d\.\d{3}$/.test(s)), `timestamps: ${JSON.stringify(stamps)}`);
const box = await page.$eval('[data-testid="log-lines-chatty"]', (l) => ({
  font: getComputedStyle(l).fontFamily, top: l.scrollTop, height: l.clientHeight, scroll: l.scrollHeight }));
await check(/mono/i.test(box.font), `the log is not monospace: ${box.font}`);
await check(box.scroll > box.height, `18 lines should overflow the log box (${box.scroll} <= ${box.height})`);
await check(box.top + box.height >= box.scroll - 2, `the log is not scrolled to its end: ${JSON.stringify(box)}`);
await page.screenshot({ path: join(shots, "6-logs.png") });

// Copy puts the lines with their timestamps on the clipboard.
await page.click('[data-testid="logs-copy-chatty"]');
findings.copied = await page.evaluate(() => navigator.clipboard.readText());
await check(findings.copied.split("\n").length === lines.length && /^\d\d:\d\d:\d\d\.\d{3} {2}hello from chatty$/m.test(findings.copied),
  `copied text: ${findings.copied}`);

// The executor's retry line is in flaky's log.
await page.click(`${card("flaky")} header .name`);
await waitFor(() => document.querySelector('[data-testid="log-lines-flaky"] .line'), null, "flaky's log is empty");
findings.flaky = (await lineTexts("flaky")).join("\n");

// After a reload (deep link to the node), the log comes from the stored result.
await page.goto(withParam(url, "node=chatty"));
await ready();
await waitFor(() => document.querySelectorAll('[data-testid="log-lines-chatty"] .line').length > 0, null, "no log after a reload");
findings.after_reload = await lineTexts("chatty");

// Another input, another run, another log; stepping back in the history shows the older one.
const hasLine = (text) => waitFor((t) => [...document.querySelectorAll('[data-testid="log-lines-chatty"] .line .text')].some((e) => e.textContent === t),
  text, `the line "${text}" never showed`);
await page.fill('[data-testid="input-text-value"]', "x");
await page.press('[data-testid="input-text-value"]', "Enter");
await waitFor((c) => document.querySelector(c)?.dataset.status === "stale", card("chatty"), "chatty did not go stale");
await page.click('[data-testid="run-all"]');
await hasLine("done: 1 chars");
await waitFor((c) => document.querySelector(c)?.dataset.status === "done", card("chatty"), "chatty did not finish again");
await page.click('[data-testid="history-chatty"] button:has-text("‹")');
await hasLine("done: 17 chars");
findings.older_log = await lineTexts("chatty");

// ---- dragging ----
// No card open (an open card is taller and may cover its neighbours).
await page.goto(url);
await ready();
const graph = await page.evaluate(() => fetch("/api/graph").then((r) => r.json()));
const layoutOf = (name) => graph.nodes.find((n) => n.name === name);
const placed = (name) => page.$eval(card(name), (c) => ({ x: parseFloat(c.style.left), y: parseFloat(c.style.top) }));
const pathD = (sel) => page.getAttribute(`#edges path${sel}`, "d");
const numbers = (d) => d.match(/-?\d+(\.\d+)?/g).map(Number);
const zoom = () => page.evaluate(() => new DOMMatrix(getComputedStyle(document.getElementById("world")).transform).a);
const near = (a, b) => Math.abs(a - b) <= 1.5;

const start = await placed("upper");
await check(near(start.x, layoutOf("upper").x) && near(start.y, layoutOf("upper").y), "upper starts where the layout put it");
await check(await page.isHidden('[data-testid="reset-layout"]'), "nothing to reset before a drag");
const outBefore = await pathD('[data-from="upper"]');
const inBefore = await pathD('[data-to="upper"]');
const z = await zoom();
const handle = await page.locator(`${card("upper")} header .name`).boundingBox();
const [sx, sy] = [handle.x + 8, handle.y + handle.height / 2];
const saved = page.waitForResponse((r) => r.url().includes("/positions") && r.request().method() === "POST");
await page.mouse.move(sx, sy);
await page.mouse.down();
await page.mouse.move(sx + 150, sy + 120, { steps: 10 });
await page.mouse.up();
await saved;
const dragged = await placed("upper");
await check(near(dragged.x, start.x + 150 / z) && near(dragged.y, start.y + 120 / z),
  `upper is at ${JSON.stringify(dragged)}, expected ${start.x + 150 / z}, ${start.y + 120 / z}`);
const outAfter = await pathD('[data-from="upper"]');
const inAfter = await pathD('[data-to="upper"]');
const [ox0, oy0] = numbers(outBefore);
const [ox1, oy1] = numbers(outAfter);
await check(near(ox1 - ox0, dragged.x - start.x) && near(oy1 - oy0, dragged.y - start.y), `the outgoing edge did not follow: ${outBefore} -> ${outAfter}`);
await check(near(numbers(inAfter).at(-2) - numbers(inBefore).at(-2), dragged.x - start.x), `the incoming edge did not follow: ${inBefore} -> ${inAfter}`);
await check(await page.locator(".card.highlight").count() === 0, "a drag must not select the card");
await check(await page.isVisible('[data-testid="reset-layout"]'), "Reset layout is offered after a drag");
await page.screenshot({ path: join(shots, "7-dragged.png") });

// A click without movement still selects the card.
await page.click(`${card("upper")} header .name`);
await waitFor((c) => document.querySelector(c)?.classList.contains("open"), card("upper"), "a click on the moved card did not select it");

// Dragging the background still pans (and moves no card).
const empty = await page.evaluate(() => {
  const r = document.getElementById("viewport").getBoundingClientRect();
  for (let y = r.bottom - 40; y > r.top + 10; y -= 20) {
    for (let x = r.left + 10; x < r.right - 200; x += 20) {
      const hit = document.elementFromPoint(x, y);
      if (hit && !hit.closest(".card, #minimap, button, .hint")) return { x, y };
    }
  }
  return null;
});
await check(empty, "no empty spot to pan from");
const before = await page.evaluate(() => getComputedStyle(document.getElementById("world")).transform);
await page.mouse.move(empty.x, empty.y);
await page.mouse.down();
await page.mouse.move(empty.x + 60, empty.y - 30, { steps: 5 });
await page.mouse.up();
await waitFor((t) => getComputedStyle(document.getElementById("world")).transform !== t, before, "dragging the background did not pan");
const afterPan = await placed("upper");
await check(near(afterPan.x, dragged.x) && near(afterPan.y, dragged.y), "panning moved a card");

// A reload keeps the position (and the edges drawn to it).
await page.reload();
await ready();
const reloaded = await placed("upper");
await check(near(reloaded.x, dragged.x) && near(reloaded.y, dragged.y), `after a reload upper is at ${JSON.stringify(reloaded)}, not ${JSON.stringify(dragged)}`);
await check((await pathD('[data-from="upper"]')) === outAfter, "after a reload the edge is drawn to the moved card");

// Reset layout puts it back, and that is stored too.
const cleared = page.waitForResponse((r) => r.url().includes("/positions") && r.request().method() === "DELETE");
await page.click('[data-testid="reset-layout"]');
await cleared;
await waitFor(([c, x]) => Math.abs(parseFloat(document.querySelector(c).style.left) - x) <= 1.5, [card("upper"), start.x], "Reset layout did not move upper back");
await check((await pathD('[data-from="upper"]')) === outBefore, "the edge is back too");
await page.reload();
await ready();
const afterReset = await placed("upper");
await check(near(afterReset.x, start.x) && near(afterReset.y, start.y), `after reset and reload upper is at ${JSON.stringify(afterReset)}`);
await check(await page.isHidden('[data-testid="reset-layout"]'), "nothing to reset after a reset");
findings.dragged = true;
findings.reset = true;

await check(errors.length === 0, `page errors: ${JSON.stringify(errors)}`);
console.log(JSON.stringify(findings));
await context.close();
