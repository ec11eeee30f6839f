// A failed run in a node's history, in real Chromium (playwright-core, Debian's chromium).
// Usage: node failed_history.mjs <url> <screenshot dir> <phase>; env DAGGR_PLAYWRIGHT = path to
// playwright-core. The pipeline (tests/inspector_browser.rs): text -> remote -> shout, where
// remote logs a line and fails on its first call (a two-line error), then succeeds.
// Phase "run": run all (remote fails), run all again (it succeeds); the history lists the
// failure with the first line of its error, picking it shows its log, and the card's current
// result is the good one. Phase "restart" (a new server on the same sheets): the same, from
// the stored history. Prints one JSON line of findings; exits 1 on the first failed check.
import { card, checks, launch, outputShown, withParam } from "./launch.mjs";
import { join } from "node:path";

const [url, shots, phase] = process.argv.slice(2);
// A refused request logs a console error; none is expected here.
const browser = await launch(shots, { consoleErrors: true });
const { context, page, errors } = browser;

const findings = {};
const { fail, check, waitFor, ready } = checks(browser, shots, `failure-failed-history-${phase}.png`);
const status = (name) => page.getAttribute(card(name), "data-status");
const waitStatus = (name, wanted) =>
  waitFor(([c, w]) => document.querySelector(c)?.dataset.status === w, [card(name), wanted], `${name} never became ${wanted}`);
const lineTexts = () => page.$$eval('[data-testid="log-lines-remote"] .line .text', (ts) => ts.map((t) => t.textContent));
const counter = '[data-testid="history-remote"] .counter';

await page.goto(phase === "run" ? url : withParam(url, "node=remote"));
await ready();

if (phase === "run") {
  await page.click('[data-testid="run-all"]');
  await waitStatus("remote", "failed");
  await waitFor(() => !document.body.classList.contains("is-running"), null, "the first run did not end");
  findings.live_error = await page.textContent('[data-testid="error-remote"]');
  await check(await status("shout") === "skipped", "shout was not skipped");
  await page.click('[data-testid="run-all"]');
  await waitStatus("remote", "done");
  await waitStatus("shout", "done");
  await page.click(`${card("remote")} header .name`);
}
await waitFor((c) => document.querySelector(c)?.classList.contains("open"), card("remote"), "remote's card is not open");

// The current-result panel: the good result, no error (once it and the history counter,
// which comes with it, have arrived).
await outputShown(page, "remote", "output").catch(() => fail("remote's output never arrived"));
await waitFor((c) => document.querySelector(c)?.textContent === "1/1 · ✕ 1", counter, "the history counter does not show the failed run");
findings.output = (await page.textContent(`${card("remote")} [data-testid="output-output"]`)).trim();
findings.error_box = await page.locator('[data-testid="error-remote"]').count();
await waitFor(() => document.querySelectorAll('[data-testid="log-lines-remote"] .line').length > 0, null, "no current log");
findings.current_log = await lineTexts();

// The history: one result and one failed run.
await page.click(counter);
const failedEntry = '[data-testid="history-list-remote"] .entry.failed';
await page.waitForSelector(failedEntry).catch(() => fail("the history list has no failed entry"));
findings.entries = await page.$$eval('[data-testid="history-list-remote"] .entry', (es) => es.map((e) => e.dataset.outcome));
findings.entry_head = await page.textContent(`${failedEntry} .entry-head`);
findings.entry_error = await page.textContent(`${failedEntry} .entry-error`);
await page.screenshot({ path: join(shots, `8-failed-history-${phase}.png`) });

// Picking it shows its log (the card's outputs stay the good result's).
await page.click(failedEntry);
await waitFor(() => !document.querySelector('[data-testid="logs-source-remote"]')?.closest("[hidden]"), null, "the failed run's log is not shown");
findings.source = await page.textContent('[data-testid="logs-source-remote"]');
await waitFor(() => [...document.querySelectorAll('[data-testid="log-lines-remote"] .line .text')].some((t) => t.textContent.startsWith("failed: ")),
  null, "the failed run's log has no failure line");
findings.failed_log = await lineTexts();
const outputAfter = (await page.textContent(`${card("remote")} [data-testid="output-output"]`)).trim();
await check(outputAfter === findings.output, `picking a failed run changed the outputs: ${JSON.stringify(findings.output)} became ${JSON.stringify(outputAfter)}`);
await page.screenshot({ path: join(shots, `9-failed-log-${phase}.png`) });

// And back to the current log.
await page.click('[data-testid="logs-current-remote"]');
await waitFor(() => document.querySelector('[data-testid="logs-source-remote"]')?.closest("[hidden]"), null, "Current log did not go back");
await waitFor((n) => document.querySelectorAll('[data-testid="log-lines-remote"] .line').length === n, findings.current_log.length, "the current log did not come back");
findings.back_log = await lineTexts();

await check(errors.length === 0, `page errors: ${JSON.stringify(errors)}`);
console.log(JSON.stringify(findings));
await context.close();
