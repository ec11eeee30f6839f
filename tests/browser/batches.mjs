// The Batches panel in real Chromium (playwright-core, Debian's chromium).
// Usage: node batches.mjs <url> <screenshot dir> <go file>; env DAGGR_PLAYWRIGHT = path to
// playwright-core. The pipeline (tests/inspector_batches.rs): squares of `n`, failing on 13;
// batch `first` ran over 1, 2, 3, 13, 5, 6 (item 3 failed), batch `later` (7, 8, 9) did not
// run yet. The panel lists both with their counts; `first` shows its six items, item 2's
// output and item 3's error, and the status filter keeps the failed one. Then `later` is
// opened, all pending, and the script writes <go file>: the test runs `later`, and the open
// panel must show it done by itself (it polls while a batch has items left).
// Prints one JSON line of findings; exits 1 on the first failed check.
import { checks, launch } from "./launch.mjs";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [url, shots, goFile] = process.argv.slice(2);
// A refused request logs a console error; none is expected here.
const browser = await launch(shots, { consoleErrors: true });
const { context, page, errors } = browser;
const findings = {};
const { fail, check, waitFor, ready } = checks(browser, shots, "failure-batches.png");
const text = async (selector) => (await page.textContent(selector))?.trim();
const rows = () => page.$$eval('[data-testid="batch-items"] tbody tr[data-status]', (rs) => rs.map((r) => ({
  item: r.querySelector("td")?.textContent, status: r.dataset.status,
  outputs: r.querySelector(".bt-outputs")?.textContent ?? null,
})));
const rowCount = (n, status, message) =>
  waitFor(([n, s]) => {
    const rs = document.querySelectorAll('[data-testid="batch-items"] tbody tr[data-status]');
    return rs.length === n && [...rs].every((r) => !s || r.dataset.status === s);
  }, [n, status], message, 20000);

await page.goto(url);
await ready();

// The panel: both batches with their counts and progress bars.
await page.click('[data-testid="batches-toggle"]');
await page.waitForSelector('[data-testid="batch-first"]', { timeout: 10000 }).catch(() => fail("the panel does not list batch first"));
findings.names = await page.$$eval('[data-testid="batch-list"] .bt-name', (ns) => ns.map((n) => n.textContent));
findings.first_counts = await text('[data-testid="batch-counts-first"]');
findings.later_before = await text('[data-testid="batch-counts-later"]');
const segments = await page.$$eval('[data-testid="batch-first"] .bt-seg', (ss) => ss.map((s) => s.className));
await check(segments.includes("bt-seg done") && segments.includes("bt-seg failed"), `first's bar: ${JSON.stringify(segments)}`);

// Batch `first`: its items, an output, the failed item's error.
await page.click('[data-testid="batch-first"]');
await rowCount(6, null, "first's six items are not shown");
findings.rows = (await rows()).length;
findings.error = await text('[data-testid="batch-error-3"]');
findings.error_title = await page.getAttribute('[data-testid="batch-error-3"]', "title");
findings.done_output = await text('[data-testid="batch-item-2"] .bt-outputs');
await page.screenshot({ path: join(shots, "batches-first.png") });

// The status filter.
await page.selectOption('[data-testid="batch-filter"]', "failed");
await rowCount(1, "failed", "the failed filter does not keep item 3 alone");
findings.failed_rows = (await rows()).map((r) => r.item);

// Batch `later`: all pending; once it runs, the open panel follows it.
await page.click('[data-testid="batch-later"]');
await rowCount(3, "pending", "later's three pending items are not shown");
writeFileSync(goFile, "go");
await waitFor(() => document.querySelector('[data-testid="batch-counts-later"]')?.textContent === "3 done · 3 items", null,
  "the panel did not follow batch later to done", 30000);
await rowCount(3, "done", "later's items did not become done");
findings.later_after = await text('[data-testid="batch-counts-later"]');
findings.later_outputs = (await rows()).map((r) => r.outputs);
await page.screenshot({ path: join(shots, "batches-later.png") });
// The dark theme, for a look at the same panel.
await page.click('[data-testid="theme-toggle"]');
await page.click('[data-testid="batch-first"]');
await rowCount(6, null, "first's items are not shown again");
await page.screenshot({ path: join(shots, "batches-dark.png") });

await check(errors.length === 0, `page errors: ${JSON.stringify(errors)}`);
console.log(JSON.stringify(findings));
await context.close();
