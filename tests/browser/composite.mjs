// Map, choice and grouped-input cards in real Chromium (playwright-core, Debian's chromium).
// Usage: node composite.mjs <url> <screenshot dir>; env DAGGR_PLAYWRIGHT = path to playwright-core.
// The pipeline (tests/inspector_composite.rs): the group `look` (style: an enum, bold,
// scale: a ranged f64, note: a long text) read by styled(style, bold), scaled(scale) and
// noted(note); the map `tile` over twelve words (item 5, `flaky`, fails its first call;
// errors collected), logging "call N: word" per call (the failed item's rerun, then item
// 2's own rerun, each make one); the choice `caption` of title
// (upper | reverse | remote, remote always down, fallback).
// Prints one JSON line of findings; exits 1 with a message on the first failed check.
import { launch, checks, card } from "./launch.mjs";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
const browser = await launch(shots, { consoleErrors: true });
const { context, page, errors } = browser;

const findings = {};
const { fail, check, waitFor, ready } = checks(browser, shots, "failure-composite.png");
const input = (node, port) => `[data-testid="input-${node}-${port}"]`;
const status = (name) => page.$eval(card(name), (c) => c.dataset.status);
const waitStatus = (name, wanted, message) =>
  waitFor(([c, w]) => w.includes(document.querySelector(c)?.dataset.status), [card(name), wanted], message || `${name} never became ${wanted.join(" or ")}`);
const output = (name) => page.$eval(`${card(name)} [data-testid="output-output"]`, (v) => v.textContent.trim());
const chips = (name) => page.$$eval(`${card(name)} .chip`, (cs) => cs.map((c) => ({ item: Number(c.dataset.item), outcome: c.dataset.outcome, title: c.title })));
const byOutcome = (list) => {
  const out = {};
  for (const c of list) (out[c.outcome] ||= []).push(c.item);
  return out;
};
// The nodes (not the group card) shown stale: what an edit invalidated.
const staleCards = () => page.$$eval(".card", (cs) => cs.filter((c) => c.dataset.kind !== "group" && c.dataset.status === "stale").map((c) => c.dataset.name).sort());
// Settled: nothing pending, running or stale (the group card counts: its inputs ran too).
const settled = (message) => waitFor(() => document.querySelectorAll('.card[data-status="pending"], .card[data-status="running"], .card[data-status="stale"]').length === 0
  && !document.body.classList.contains("is-running"), null, message, 20000);
const runAll = async (message) => {
  await page.click('[data-testid="run-all"]');
  await settled(message);
};
const runOnly = async (name) => {
  await page.click(`[data-testid="play-${name}"]`);
  await page.click(`[data-testid="run-only-${name}"]`);
};
const near = (a, b, tolerance = 1.5) => Math.abs(a - b) <= tolerance;
const numbers = (d) => d.match(/-?\d+(\.\d+)?/g).map(Number);

await page.goto(url);
await ready();
const graph = await page.evaluate(() => fetch("/api/graph").then((r) => r.json()));

// ---- the group card: one card, a row per input, the widget that fits each ----
await check(await page.locator(card("look")).count() === 1, "no card for the group `look`");
for (const m of ["style", "bold", "scale", "note"]) await check(await page.locator(card(m)).count() === 0, `the grouped input ${m} has a card of its own`);
const look = await page.$eval(card("look"), (c) => ({
  title: c.querySelector("header .name").textContent, kind: c.dataset.kind, rows: [...c.querySelectorAll(".port.member")].map((r) => r.dataset.port) }));
await check(look.title === "look" && look.kind === "group" && JSON.stringify(look.rows) === '["style","bold","scale","note"]', `group card: ${JSON.stringify(look)}`);
const widgets = await page.evaluate(() => {
  const q = (m) => document.querySelector(`[data-testid="input-${m}-value"]`);
  return {
    style: { tag: q("style").tagName, options: [...q("style").options].map((o) => o.textContent), value: q("style").selectedOptions[0]?.textContent },
    bold: { type: q("bold").type, checked: q("bold").checked },
    scale: { type: q("scale").type, min: q("scale").min, max: q("scale").max, step: q("scale").step, value: q("scale").value },
    note: { tag: q("note").tagName, value: q("note").value, rows: q("note").closest(".port").offsetHeight },
  };
});
findings.widgets = widgets;
await check(widgets.style.tag === "SELECT" && JSON.stringify(widgets.style.options) === '["Photo","Sketch","Watercolor"]' && widgets.style.value === "Photo",
  `the enum's dropdown: ${JSON.stringify(widgets.style)}`);
await check(widgets.bold.type === "checkbox" && !widgets.bold.checked, `the bool's checkbox: ${JSON.stringify(widgets.bold)}`);
await check(widgets.scale.type === "range" && widgets.scale.min === "0.5" && widgets.scale.max === "4" && widgets.scale.step === "0.5" && widgets.scale.value === "1.5",
  `the slider: ${JSON.stringify(widgets.scale)}`);
await check(widgets.note.tag === "TEXTAREA" && widgets.note.value.includes("\n") && widgets.note.rows === 78, `the text area: ${JSON.stringify(widgets.note)}`);

// Laid out as one box in the inputs' column; each edge leaves from its input's row.
const box = graph.groups[0];
const geometry = await page.evaluate(() => {
  const c = document.querySelector('[data-testid="node-look"]');
  const top = parseFloat(c.style.top);
  const rows = {};
  for (const r of c.querySelectorAll(".port.member")) rows[r.dataset.port] = top + 1 + r.offsetTop + r.offsetHeight / 2;
  const edges = [...document.querySelectorAll('#edges path[data-from="look"]')].map((p) => ({ port: p.dataset.fromPort, to: p.dataset.to, d: p.getAttribute("d") }));
  return { left: parseFloat(c.style.left), top, width: c.offsetWidth, height: c.offsetHeight, rows, edges };
});
await check(near(geometry.left, box.x) && near(geometry.top, box.y) && near(geometry.height, box.h), `the group card is not where the layout put it: ${JSON.stringify(geometry)} vs ${JSON.stringify(box)}`);
await check(graph.nodes.find((n) => n.name === "words").x === box.x, "the group is not in the inputs' column");
await check(geometry.edges.length === 4, `edges from the group: ${JSON.stringify(geometry.edges)}`);
for (const e of geometry.edges) {
  const [x, y] = numbers(e.d);
  await check(near(x, geometry.left + geometry.width) && near(y, geometry.rows[e.port]), `the edge ${e.port} -> ${e.to} starts at ${x},${y}, not at its row (${geometry.rows[e.port]})`);
}
findings.group_edges = geometry.edges.map((e) => `${e.port}->${e.to}`).sort();

// ---- the map: items finish live, one fails, previews per item, the failed one reruns ----
await page.click('[data-testid="run-all"]');
await waitFor(() => {
  const c = document.querySelector('[data-testid="node-tile"]');
  return c?.dataset.status === "running" && [...c.querySelectorAll(".chip")].some((x) => x.dataset.outcome === "computed");
}, null, "no item finished while the map was running", 20000);
findings.live = await page.evaluate(() => {
  const c = document.querySelector('[data-testid="node-tile"]');
  const cs = [...c.querySelectorAll(".chip")];
  return { status: c.dataset.status, finished: cs.filter((x) => x.dataset.outcome !== "running").length, summary: c.querySelector('[data-testid="items-tile"]').textContent };
});
// `item_finished` says how many items there are: a first run already shows k/12.
await check(/^\d+\/12 items$/.test(findings.live.summary) && findings.live.finished < 12, `while running (first run, k/12 items): ${JSON.stringify(findings.live)}`);
await page.screenshot({ path: join(shots, "20-composite-live.png") });
await settled("the first run did not finish");
await waitFor(() => document.querySelectorAll('[data-testid="node-tile"] .chip').length === 12, null, "the map does not show twelve items");
const afterRun = await chips("tile");
findings.items_after_run = byOutcome(afterRun);
await waitFor(() => document.querySelector('[data-testid="items-tile"]')?.dataset.running === "false", null, "the items still show as running");
findings.items_summary = await page.textContent('[data-testid="items-tile"]');
await check(afterRun[5].title.includes("503: the tile service is busy"), `the failed item's chip does not say why: ${afterRun[5].title}`);
await check(findings.items_summary === "12 items · 11 computed · 1 failed", `items summary: ${findings.items_summary}`);
await page.screenshot({ path: join(shots, "21-composite-run.png") });

// An item's own output: its image.
await page.click('[data-testid="item-tile-0"]');
await waitFor(() => document.querySelector('[data-testid="item-value-tile"] img')?.naturalWidth > 0, null, "item 0's image did not load");
findings.item_image_width = await page.$eval('[data-testid="item-value-tile"] img', (i) => i.naturalWidth);
// The failed item: its error, and the rerun.
await page.click('[data-testid="item-tile-5"]');
await waitFor(() => document.querySelector('[data-testid="item-error-tile"]')?.textContent.includes("503"), null, "the failed item's error is not shown");
findings.item_error = await page.textContent('[data-testid="item-error-tile"]');
await page.screenshot({ path: join(shots, "22-composite-failed-item.png") });
await page.click('[data-testid="item-rerun-tile"]');
await waitFor(() => {
  const c = document.querySelector('[data-testid="node-tile"]');
  const cs = [...c.querySelectorAll(".chip")];
  return c.dataset.status === "done" && cs.length === 12 && cs[5].dataset.outcome === "computed" && cs.filter((x) => x.dataset.outcome === "cached").length === 11;
}, null, "the rerun did not compute the failed item alone", 20000);
findings.items_after_rerun = byOutcome(await chips("tile"));
// The map's log: one call, for the failed item (the others were cache hits).
await waitFor(() => JSON.stringify([...document.querySelectorAll('[data-testid="log-lines-tile"] .line .text')].map((t) => t.textContent)
  .filter((t) => t.startsWith("call "))) === '["call 13: flaky"]', null, "the map's log does not show the one call of the rerun");
findings.rerun_log = await page.$$eval('[data-testid="log-lines-tile"] .line .text', (ts) => ts.map((t) => t.textContent).filter((t) => t.startsWith("call ")));
await waitFor(() => !document.querySelector('[data-testid="item-error-tile"]') && document.querySelector('[data-testid="item-value-tile"] img')?.naturalWidth > 0,
  null, "the rerun item does not show its image");
await page.screenshot({ path: join(shots, "23-composite-rerun.png") });
// One item computed again on request, a cached one (item 2): it alone is computed, the
// other eleven are cache hits, and the map's log shows its one call.
await page.click('[data-testid="item-tile-2"]');
await waitFor(() => document.querySelector('[data-testid="item-run-tile-2"]')?.disabled === false, null, "item 2 has no enabled rerun button");
await check(await page.$eval('[data-testid="item-tile-2"]', (c) => c.dataset.outcome) === "cached", "item 2 is not cached before its rerun");
await page.click('[data-testid="item-run-tile-2"]');
await waitFor(() => {
  const c = document.querySelector('[data-testid="node-tile"]');
  const cs = [...c.querySelectorAll(".chip")];
  return c.dataset.status === "done" && cs.length === 12 && cs[2].dataset.outcome === "computed" && cs.filter((x) => x.dataset.outcome === "cached").length === 11;
}, null, "item 2's rerun did not compute item 2 alone", 20000);
findings.items_after_item_run = byOutcome(await chips("tile"));
await waitFor(() => JSON.stringify([...document.querySelectorAll('[data-testid="log-lines-tile"] .line .text')].map((t) => t.textContent)
  .filter((t) => t.startsWith("call "))) === '["call 14: w2"]', null, "the map's log does not show the one call of item 2's rerun");
findings.item_run_log = await page.$$eval('[data-testid="log-lines-tile"] .line .text', (ts) => ts.map((t) => t.textContent).filter((t) => t.startsWith("call ")));
await waitFor(() => document.querySelector('[data-testid="item-detail-tile"] .item-outcome')?.textContent === "computed"
  && document.querySelector('[data-testid="item-value-tile"] img')?.naturalWidth > 0, null, "item 2's detail does not show it computed, with its image");
await page.screenshot({ path: join(shots, "23b-composite-item-run.png") });
await page.click('[data-testid="node-tile"] header .name'); // keeps it selected; the next clicks select others

// ---- the choice: the variants, the selected one, the one that produced the result ----
const choice = () => page.evaluate(() => {
  const pills = [...document.querySelectorAll('[data-testid="node-caption"] .variant')];
  const select = document.querySelector('[data-testid="input-caption-variant"]');
  return {
    options: [...select.options].map((o) => o.textContent),
    selected: select.selectedOptions[0]?.textContent,
    pills: pills.map((p) => ({ name: p.textContent, state: p.dataset.state, pressed: p.getAttribute("aria-pressed"), title: p.title })),
    note: document.querySelector('[data-testid="choice-note-caption"]').textContent,
  };
});
const first = await choice();
await check(JSON.stringify(first.options) === '["upper","reverse","remote"]' && first.selected === "upper", `the variant dropdown: ${JSON.stringify(first)}`);
await check(first.pills[0].state === "used" && first.pills[0].pressed === "true" && first.note === "result from upper", `the choice card: ${JSON.stringify(first)}`);
const captions = [await output("caption")];
// Another variant: the node alone goes stale; a run changes the result.
await page.selectOption(input("caption", "variant"), { label: "reverse" });
await waitStatus("caption", ["stale"]);
findings.stale_after_variant = await staleCards();
await runOnly("caption");
await waitStatus("caption", ["done"]);
await waitFor(() => document.querySelector('[data-testid="node-caption"] [data-testid="output-output"]')?.textContent.trim() === "sedon etisopmoc", null, "reverse did not change the result");
captions.push(await output("caption"));
await waitFor(() => document.querySelector('[data-testid="variant-caption-reverse"]')?.dataset.state === "used", null, "the card does not say reverse produced the result");
// Back to the first variant: a cache hit.
await page.selectOption(input("caption", "variant"), { label: "upper" });
await waitStatus("caption", ["stale"]);
await runOnly("caption");
await waitStatus("caption", ["cached", "done"]);
findings.switched_back_status = await status("caption");
await waitFor(() => document.querySelector('[data-testid="node-caption"] [data-testid="output-output"]')?.textContent.trim() === "COMPOSITE NODES", null, "switching back did not bring the first result back");
captions.push(await output("caption"));
findings.captions = captions;
// A variant that is down: the choice falls back to the next and says so.
await page.selectOption(input("caption", "variant"), { label: "remote" });
await waitStatus("caption", ["stale"]);
await runOnly("caption");
await waitFor(() => document.querySelector('[data-testid="variant-caption-remote"]')?.dataset.state === "failed", null, "the card does not say remote failed");
const fellBack = await choice();
const remote = fellBack.pills.find((p) => p.name === "remote");
await check(remote.title.includes("503: the Space is down") && remote.pressed === "true", `the failed variant: ${JSON.stringify(remote)}`);
await check(fellBack.note === "result from upper after remote failed", `the fallback note: ${fellBack.note}`);
findings.fallback = { used: fellBack.pills.find((p) => p.state === "used")?.name, failed: remote.name, note: fellBack.note, status: await status("caption") };
await page.screenshot({ path: join(shots, "24-composite-choice.png") });
// Back to a variant that works, for a settled graph.
await page.selectOption(input("caption", "variant"), { label: "upper" });
await runAll("the graph did not settle after the choice");

// ---- grouped inputs: an edit marks exactly its readers stale ----
// Playwright brought the lower cards into view by scrolling the canvas element itself (its
// overflow is hidden, pan and zoom are a transform): scroll it back, close the open card
// and fit the graph, so the group card is in view below the toolbar.
await page.evaluate(() => {
  const v = document.getElementById("viewport");
  v.scrollTop = 0;
  v.scrollLeft = 0;
});
await page.keyboard.press("Escape");
await page.mouse.click(1100, 400);
await page.click('[data-testid="fit"]');
await page.focus(input("scale", "value"));
await page.keyboard.press("End");
await waitStatus("scaled", ["stale"], "moving the slider did not make scaled stale");
await page.waitForTimeout(300);
findings.stale_after_scale = await staleCards();
await runAll("the run after the slider did not settle");
await page.click(input("bold", "value"));
await waitStatus("styled", ["stale"], "the checkbox did not make styled stale");
await page.waitForTimeout(300);
findings.stale_after_bold = await staleCards();
await runAll("the run after the checkbox did not settle");
await page.fill(input("note", "value"), "line one\nline two\nline three");
await page.locator(input("note", "value")).evaluate((e) => e.blur());
await waitStatus("noted", ["stale"], "the text area did not make noted stale");
await page.waitForTimeout(300);
findings.stale_after_note = await staleCards();
await page.selectOption(input("style", "value"), { label: "Sketch" });
await waitFor(() => document.querySelector('[data-testid="node-look"] .why')?.textContent.includes("4 edited"), null, "the group card does not count its edited inputs");
await runAll("the run after the edits did not settle");
// Statuses come with events, outputs with the state fetched just after (API.md).
for (const [name, text] of [["styled", "Sketch (bold)"], ["scaled", "400"], ["noted", "3"]]) {
  await waitFor(([n, t]) => document.querySelector(`[data-testid="node-${n}"] [data-testid="output-output"]`)?.textContent.trim() === t,
    [name, text], `${name} does not show ${text}`);
}
findings.outputs = { styled: await output("styled"), scaled: await output("scaled"), noted: await output("noted") };
// Whole-node cache hits (the map and the choice under their own keys) carry no parts: the
// map's items come from its output, the choice's variant from its selection.
await waitFor(() => document.querySelectorAll('[data-testid="node-tile"] .chip[data-outcome="cached"]').length === 12, null, "a cached map does not show its items");
findings.whole_hits = {
  tile: await status("tile"), items: await page.textContent('[data-testid="items-tile"]'),
  caption: await status("caption"), note: await page.textContent('[data-testid="choice-note-caption"]') };
await check(findings.whole_hits.items === "12 items · 12 cached" && findings.whole_hits.note === "result from upper", `whole-node hits: ${JSON.stringify(findings.whole_hits)}`);
await page.screenshot({ path: join(shots, "25-composite-group.png") });

// A reload keeps the edited values; a dragged group card keeps its place.
await page.reload();
await ready();
const kept = await page.evaluate(() => {
  const q = (m) => document.querySelector(`[data-testid="input-${m}-value"]`);
  return { style: q("style").selectedOptions[0]?.textContent, bold: q("bold").checked, scale: q("scale").value, note: q("note").value };
});
await check(JSON.stringify(kept) === JSON.stringify({ style: "Sketch", bold: true, scale: "4", note: "line one\nline two\nline three" }), `after a reload: ${JSON.stringify(kept)}`);
const zoom = await page.evaluate(() => new DOMMatrix(getComputedStyle(document.getElementById("world")).transform).a);
const handle = await page.locator(`${card("look")} header .name`).boundingBox();
const saved = page.waitForResponse((r) => r.url().includes("/positions") && r.request().method() === "POST");
await page.mouse.move(handle.x + 8, handle.y + handle.height / 2);
await page.mouse.down();
await page.mouse.move(handle.x + 8 + 100, handle.y + handle.height / 2 + 60, { steps: 8 });
await page.mouse.up();
await saved;
await page.reload();
await ready();
const moved = await page.evaluate(() => {
  const c = document.querySelector('[data-testid="node-look"]');
  const d = document.querySelector('#edges path[data-from="look"][data-from-port="scale"]').getAttribute("d");
  return { left: parseFloat(c.style.left), top: parseFloat(c.style.top), width: c.offsetWidth, edgeX: Number(d.match(/-?\d+(\.\d+)?/)[0]) };
});
await check(near(moved.left, box.x + 100 / zoom, 2) && near(moved.top, box.y + 60 / zoom, 2) && near(moved.edgeX, moved.left + moved.width),
  `the dragged group card after a reload: ${JSON.stringify(moved)} (zoom ${zoom})`);
findings.dragged = true;

await check(errors.length === 0, `page errors: ${JSON.stringify(errors)}`);
console.log(JSON.stringify(findings));
await context.close();
