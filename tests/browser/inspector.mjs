// End-to-end check of the inspector in real Chromium (playwright-core, Debian's chromium).
// Usage: node inspector.mjs <url> <screenshot dir>; env DAGGR_PLAYWRIGHT = path to playwright-core.
// Prints one JSON line of findings; exits 1 with a message on the first failed check.
import { card, checks, launch, outputShown } from "./launch.mjs";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
const browser = await launch(shots, { consoleErrors: true });
const { context, page, errors } = browser;
page.on("dialog", (d) => d.accept(d.message().startsWith("New sheet") ? "experiment" : undefined));

const findings = {};
const { fail, check, ready } = checks(browser, shots, "failure.png");
const status = (name) => page.getAttribute(card(name), "data-status");
const waitStatus = async (name, wanted, timeout = 15000) => {
  try {
    await page.waitForFunction(([n, w]) => w.includes(document.querySelector(`[data-testid="node-${n}"]`)?.dataset.status),
      [name, wanted], { timeout });
  } catch { await fail(`${name} never reached ${wanted} (is ${await status(name)})`); }
};

await page.goto(url);
await ready();
const graph = await page.evaluate(() => fetch("/api/graph").then((r) => r.json()));
const cardCount = await page.locator(".card").count();
const edgeCount = await page.locator("#edges path").count();
await check(cardCount === graph.nodes.length, `cards ${cardCount} != nodes ${graph.nodes.length}`);
await check(edgeCount === graph.edges.length, `edges ${edgeCount} != ${graph.edges.length}`);
findings.nodes = cardCount;
findings.edges = edgeCount;
await page.screenshot({ path: join(shots, "1-loaded.png") });

// Run all: statuses update live (the slow node is seen running before it is done).
await page.evaluate(() => {
  window.__seen = {};
  new MutationObserver((ms) => ms.forEach((m) => {
    const c = m.target;
    (window.__seen[c.dataset.testid] ||= []).push(c.dataset.status);
  })).observe(document.getElementById("cards"), { attributes: true, subtree: true, attributeFilter: ["data-status"] });
});
await page.click('[data-testid="run-all"]');
for (const n of graph.nodes) await waitStatus(n.name, ["done", "cached"]);
const seen = await page.evaluate(() => window.__seen);
await check((seen["node-slow"] || []).includes("running"), `slow was never shown running: ${JSON.stringify(seen["node-slow"])}`);
findings.live = seen["node-slow"];

// The image output is an image.
const img = page.locator('[data-testid="node-render"] img');
await img.waitFor({ timeout: 10000 }).catch(() => fail("no <img> in the render card"));
await page.waitForFunction(() => document.querySelector('[data-testid="node-render"] img')?.naturalWidth > 0, null, { timeout: 10000 })
  .catch(() => fail("the image did not load"));
findings.image_width = await img.evaluate((i) => i.naturalWidth);
await outputShown(page, "count", "output").catch(() => fail("count's output never arrived"));
const countBefore = (await page.textContent('[data-testid="node-count"] [data-testid="output-output"]')).trim();
await page.screenshot({ path: join(shots, "2-after-run.png") });

// Edit count's input, see count and report go stale, run count only.
await page.fill('[data-testid="input-count-min"]', "6");
await page.press('[data-testid="input-count-min"]', "Enter");
await page.locator('[data-testid="input-count-min"]').evaluate((e) => e.blur());
await waitStatus("count", ["stale"]);
await waitStatus("report", ["stale"]);
await check((await status("upper")) !== "stale", "upper must not be stale");
await page.click('[data-testid="play-count"]');
await page.click('[data-testid="run-only-count"]');
await waitStatus("count", ["done"]);
// The status flips on the event; the new output arrives with the state refetch just after.
await page.waitForFunction((before) =>
  document.querySelector('[data-testid="node-count"] [data-testid="output-output"]')?.textContent.trim() !== before,
  countBefore, { timeout: 10000 }).catch(() => fail(`count output did not change (${countBefore})`));
const countAfter = (await page.textContent('[data-testid="node-count"] [data-testid="output-output"]')).trim();
await check((await status("report")) === "stale", "report stays stale after running count only");
findings.count = [countBefore, countAfter];
await page.screenshot({ path: join(shots, "3-after-edit.png") });

// History: step back to the older result of count, then restore the inputs that made it.
await page.click('[data-testid="history-count"] button:has-text("‹")');
await page.waitForFunction((before) =>
  document.querySelector('[data-testid="node-count"] [data-testid="output-output"]')?.textContent.trim() === before,
  countBefore, { timeout: 10000 }).catch(() => fail("‹ did not bring back the older result"));
await page.click('[data-testid="history-count"] button:text-matches("restore inputs", "i")');
await page.waitForFunction(() => document.querySelector('[data-testid="input-count-min"]')?.value === "3", null, { timeout: 10000 })
  .catch(() => fail("restore inputs did not bring back min = 3"));
await waitStatus("count", ["done", "cached"]);
// Forward again to the newest result, and put the edited input back.
await page.click('[data-testid="history-count"] button:has-text("›")');
await page.fill('[data-testid="input-count-min"]', "6");
await page.locator('[data-testid="input-count-min"]').evaluate((e) => e.blur());
await page.waitForFunction(() => document.querySelector('[data-testid="node-count"]')?.dataset.status === "done", null, { timeout: 10000 })
  .catch(() => fail("count is current again after › and the input edit"));
findings.history = true;

// A reload keeps the sheet.
await page.reload();
await page.waitForSelector("body[data-ready=true]");
await page.waitForFunction(() => document.querySelector('[data-testid="node-count"]')?.dataset.status === "done");
const afterReload = (await page.textContent('[data-testid="node-count"] [data-testid="output-output"]')).trim();
await check(afterReload === countAfter, `after reload: ${afterReload} != ${countAfter}`);
await check((await page.inputValue('[data-testid="input-count-min"]')) === "6", "the edited input survives a reload");

// Switching sheets: a new sheet starts empty; the first keeps its results.
await page.click('[data-testid="sheet-new"]');
await page.waitForFunction(() => document.querySelector('[data-testid="sheet-select"]').value === "experiment");
await waitStatus("count", ["pending"]);
await page.selectOption('[data-testid="sheet-select"]', "default");
await waitStatus("count", ["done"]);
findings.sheets = await page.$$eval('[data-testid="sheet-select"] option', (os) => os.map((o) => o.value));

// Dark mode and deep links.
await page.click('[data-testid="theme-toggle"]');
const theme = await page.evaluate(() => document.documentElement.dataset.theme);
await page.screenshot({ path: join(shots, "4-theme-toggled.png") });
findings.theme = theme;
await page.goto(`${url}${url.includes("?") ? "&" : "?"}sheet=experiment&node=count`);
await page.waitForSelector("body[data-ready=true]");
await check(await page.locator('[data-testid="node-count"].highlight').count() === 1, "deep link highlights the node");
await check((await page.inputValue('[data-testid="sheet-select"]')) === "experiment", "deep link selects the sheet");
await page.screenshot({ path: join(shots, "5-deep-link.png") });

await check(errors.length === 0, `page errors: ${JSON.stringify(errors)}`);
console.log(JSON.stringify(findings));
await context.close();
