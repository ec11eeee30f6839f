// The layout as a user sees it, and why a node recomputed, in real Chromium (playwright-core,
// Debian's chromium). Usage: node layout_and_why.mjs <url> <screenshot dir>; env
// DAGGR_PLAYWRIGHT = path to playwright-core.
// The pipeline (tests/inspector_browser.rs) has the quick start's shape: inputs width,
// height, seed, sigma; scene(width, height, seed); soft(scene, sigma); outline(scene);
// stats(soft, outline); caption(stats). The edge sigma -> soft crosses scene's column (it
// used to run under the scene card).
// Checks, geometrically: no edge passes over a card other than its two ends; closed cards
// are as tall as the layout says, input cards without an empty bottom; an opened card
// pushes the card below it down instead of covering it; the run menu opens beside its card;
// the minimap tells cached from done. Then: sigma changes, and the stale cards say which
// change made them stale (sigma's new value, on sigma's card and on the cards below it); a
// rerun, and soft's card says which input changed; the history list shows the wired inputs'
// values, not `null`. Last, a card dropped on an edge it is not part of pushes that edge
// around it (caption dropped on sigma -> soft's slot above scene), and the edge takes its
// slot again once the card is put back; a dragged card keeps its edges off other cards
// (sigma dragged level with scene: its edge to soft goes around scene, not through it).
// Prints one JSON line of findings; exits 1 on the first failed check.
import { launch, checks, card } from "./launch.mjs";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
const browser = await launch(shots, { consoleErrors: true });
const { context, page, errors } = browser;

const findings = {};
const { fail, check, waitFor } = checks(browser, shots, "failure-layout-why.png");
const waitStatus = (name, wanted) =>
  waitFor(([c, w]) => w.includes(document.querySelector(c)?.dataset.status), [card(name), wanted], `${name} never became ${wanted}`);
/** A card's box on the canvas (world coordinates: the edges' SVG units). */
const boxOf = (name) => page.$eval(card(name), (c) => ({ x: parseFloat(c.style.left), y: parseFloat(c.style.top), w: c.offsetWidth, h: c.offsetHeight }));
const meet = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

await page.goto(url);
await page.waitForSelector("body[data-ready=true]", { timeout: 15000 }).catch(() => fail("the page never became ready"));
const graph = await page.evaluate(() => fetch("/api/graph").then((r) => r.json()));
await check(graph.edges.some((e) => e.from === "sigma" && e.to === "soft" && e.route?.length === 4), `sigma -> soft has no route: ${JSON.stringify(graph.edges)}`);

// Closed cards are exactly as tall as the layout made room for.
for (const n of graph.nodes) {
  const b = await boxOf(n.name);
  await check(Math.abs(b.h - n.h) <= 1 && Math.abs(b.x - n.x) <= 1 && Math.abs(b.y - n.y) <= 1, `${n.name}: card ${JSON.stringify(b)} vs layout ${JSON.stringify(n)}`);
}
// An input card ends right after its rows: no empty bottom.
const inputGap = await page.$eval(card("sigma"), (c) => {
  const rows = c.querySelectorAll(".port");
  return c.getBoundingClientRect().bottom - rows[rows.length - 1].getBoundingClientRect().bottom;
});
await check(inputGap <= 32, `the input card has ${inputGap}px below its last row`);
findings.input_card_gap = Math.round(inputGap);

/** Edges that pass over a card other than their two ends: sampled every 3 px of their length. */
const edgesOverCards = () => page.evaluate(() => {
  const boxes = [...document.querySelectorAll(".card")].map((c) => ({
    name: c.dataset.name, x: parseFloat(c.style.left), y: parseFloat(c.style.top), w: c.offsetWidth, h: c.offsetHeight }));
  const hits = [];
  for (const path of document.querySelectorAll("#edges path")) {
    const ends = [path.dataset.from, path.dataset.to];
    const length = path.getTotalLength();
    for (let at = 0; at <= length; at += 3) {
      const p = path.getPointAtLength(at);
      const over = boxes.find((b) => !ends.includes(b.name) && p.x > b.x + 2 && p.x < b.x + b.w - 2 && p.y > b.y + 2 && p.y < b.y + b.h - 2);
      if (over) {
        hits.push(`${ends.join("->")} over ${over.name} at ${Math.round(p.x)},${Math.round(p.y)}`);
        break;
      }
    }
  }
  return { hits, paths: document.querySelectorAll("#edges path").length };
});
const before = await edgesOverCards();
await check(before.paths === graph.edges.length, `${before.paths} edge paths for ${graph.edges.length} edges`);
await check(before.hits.length === 0, `edges over cards: ${before.hits.join("; ")}`);
await page.screenshot({ path: join(shots, "10-layout.png") });

// Run all.
await page.click('[data-testid="run-all"]');
for (const n of graph.nodes) await waitStatus(n.name, ["done", "cached"]);
await waitFor(() => document.querySelector('[data-testid="node-soft"] .rich img')?.naturalWidth > 0, null, "soft's image never showed");
await waitFor(() => document.querySelector('[data-testid="why-soft"]')?.textContent.startsWith("first run"), null, "soft's first result is not explained");

// Opening a card: the card below it in its column moves down, nothing overlaps.
const column = graph.nodes.filter((n) => n.x === graph.nodes.find((m) => m.name === "soft").x).sort((a, b) => a.y - b.y);
await check(column.length === 2, `soft's column: ${column.map((n) => n.name)}`);
const [upper, lower] = column.map((n) => n.name);
const lowerBefore = await boxOf(lower);
await page.click(`${card(upper)} header .name`);
await waitFor((c) => document.querySelector(c)?.classList.contains("open"), card(upper), "a click did not open the card");
await waitFor(([c, h]) => document.querySelector(c).offsetHeight > h + 5, [card(upper), column[0].h], "the opened card did not grow");
await page.waitForTimeout(300); // the log and the image settle; the card below follows each change
const opened = await boxOf(upper);
const lowerAfter = await boxOf(lower);
await check(!meet(opened, lowerAfter), `the open ${upper} ${JSON.stringify(opened)} covers ${lower} ${JSON.stringify(lowerAfter)}`);
await check(lowerAfter.y > lowerBefore.y, `${lower} did not move down (${lowerBefore.y} -> ${lowerAfter.y})`);
const opening = await edgesOverCards();
await check(opening.hits.length === 0, `with ${upper} open, edges over cards: ${opening.hits.join("; ")}`);
findings.opened = { card: upper, height: opened.h, below: lower, moved_by: lowerAfter.y - lowerBefore.y };
await page.screenshot({ path: join(shots, "11-open-card.png") });
// Closing it puts the card below back.
const empty = await page.evaluate(() => {
  const r = document.getElementById("viewport").getBoundingClientRect();
  for (let y = r.top + 10; y < r.bottom - 10; y += 20) {
    for (let x = r.left + 10; x < r.right - 200; x += 20) {
      const hit = document.elementFromPoint(x, y);
      if (hit && !hit.closest(".card, #minimap, button, .hint")) return { x, y };
    }
  }
  return null;
});
await check(empty, "no empty spot on the canvas");
await page.mouse.click(empty.x, empty.y);
await waitFor(([c, y]) => Math.abs(parseFloat(document.querySelector(c).style.top) - y) < 1, [card(lower), lowerBefore.y], `${lower} did not go back`);

// The run menu opens beside its card, not over it.
await page.click('[data-testid="play-stats"]');
await page.waitForSelector('[data-testid="run-menu-stats"]').catch(() => fail("no run menu"));
const menu = await page.locator('[data-testid="run-menu-stats"]').boundingBox();
const statsCard = await page.locator(card("stats")).boundingBox();
await check(!meet({ x: menu.x, y: menu.y, w: menu.width, h: menu.height }, { x: statsCard.x, y: statsCard.y, w: statsCard.width, h: statsCard.height }),
  `the run menu ${JSON.stringify(menu)} covers its card ${JSON.stringify(statsCard)}`);
await page.screenshot({ path: join(shots, "12-run-menu.png") });
await page.keyboard.press("Escape");

// Change sigma, run again: soft's card says its input sigma changed; scene was a cache hit.
await page.fill('[data-testid="input-sigma-value"]', "6");
await page.press('[data-testid="input-sigma-value"]', "Enter");
await waitStatus("soft", ["stale"]);
// The stale cards say what made them stale: sigma's edit, from sigma's card down.
const staleSays = (name, part) => waitFor(([n, p]) => document.querySelector(`[data-testid="why-${n}"]`)?.textContent.includes(p), [name, part],
  `the stale card of ${name} does not say "${part}"`);
await staleSays("sigma", "stale: value changed: 2.5 → 6");
await staleSays("soft", "stale: input `sigma` is out of date: `sigma` changed: 2.5 → 6");
await staleSays("stats", "stale: input `blurred` is out of date: `sigma` changed: 2.5 → 6");
findings.stale = { sigma: await page.textContent('[data-testid="why-sigma"]'), soft: await page.textContent('[data-testid="why-soft"]'),
  stats: await page.textContent('[data-testid="why-stats"]') };
await page.screenshot({ path: join(shots, "13-stale-why.png") });
await page.click('[data-testid="run-all"]');
await waitStatus("soft", ["done"]);
await waitStatus("caption", ["done", "cached"]);
const whyOf = (name) => page.textContent(`[data-testid="why-${name}"]`);
const whyIs = (name, part) => waitFor(([n, p]) => document.querySelector(`[data-testid="why-${n}"]`)?.textContent.includes(p), [name, part],
  `the card of ${name} does not say "${part}"`);
await whyIs("soft", "input `sigma` changed");
await whyIs("scene", "cached: same key");
await whyIs("stats", "input `blurred` changed (from `soft`)");
await whyIs("sigma", "2.5 → 6");
findings.why = { soft: await whyOf("soft"), scene: await whyOf("scene"), stats: await whyOf("stats"), sigma: await whyOf("sigma") };
await page.screenshot({ path: join(shots, "13-why.png") });

// The minimap: the cached scene and the recomputed soft do not look alike.
await page.waitForTimeout(200);
const pixels = await page.evaluate((nodes) => {
  const c = document.getElementById("minimap");
  const [s, ox, oy] = [Number(c.dataset.scale), Number(c.dataset.ox), Number(c.dataset.oy)];
  const dpr = c.width / c.clientWidth;
  const ctx = c.getContext("2d");
  const at = (n) => [...ctx.getImageData(Math.round((ox + (n.x + n.w / 2) * s) * dpr), Math.round((oy + (n.y + n.h / 2) * s) * dpr), 1, 1).data];
  const out = {};
  for (const n of nodes) out[n.name] = at(n);
  out.background = [...ctx.getImageData(1, 1, 1, 1).data];
  return out;
}, graph.nodes);
const distance = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]);
await check(distance(pixels.scene, pixels.soft) > 60, `cached and done look alike in the minimap: ${JSON.stringify(pixels)}`);
await check(pixels.soft[3] > 0 && pixels.scene[3] > 0, `nodes missing from the minimap: ${JSON.stringify(pixels)}`);
findings.minimap = { cached: pixels.scene, done: pixels.soft };

// The history list of soft tells its entries apart by sigma, and names the wired image.
await page.click(`${card("soft")} header .name`);
await page.click('[data-testid="history-soft"] .counter');
await page.waitForSelector('[data-testid="history-list-soft"]').catch(() => fail("no history list"));
const entries = await page.$$eval('[data-testid="history-list-soft"] .entry-sub', (es) => es.map((e) => e.textContent));
findings.history = entries;
await check(entries.length === 2, `soft's history: ${JSON.stringify(entries)}`);
await check(entries[0].includes("sigma=6") && entries[1].includes("sigma=2.5"), `entries not told apart by sigma: ${JSON.stringify(entries)}`);
await check(entries.every((e) => !e.includes("null") && e.includes("image ← scene")), `wired inputs shown as null: ${JSON.stringify(entries)}`);
await page.screenshot({ path: join(shots, "14-history.png") });

await page.keyboard.press("Escape");
await page.mouse.click(empty.x, empty.y);
const zoom = await page.evaluate(() => new DOMMatrix(getComputedStyle(document.getElementById("world")).transform).a);
/** Drags a card by its title, by (dx, dy) world pixels, in a few pointer moves. */
const drag = async (name, dx, dy) => {
  const before = await boxOf(name);
  const handle = await page.locator(`${card(name)} header .name`).boundingBox();
  await page.mouse.move(handle.x + 5, handle.y + handle.height / 2);
  await page.mouse.down();
  for (let i = 1; i <= 8; i++) await page.mouse.move(handle.x + 5 + (dx * zoom * i) / 8, handle.y + handle.height / 2 + (dy * zoom * i) / 8);
  await page.mouse.up();
  await waitFor(([c, x, y]) => Math.hypot(parseFloat(document.querySelector(c).style.left) - x, parseFloat(document.querySelector(c).style.top) - y) > 20,
    [card(name), before.x, before.y], `${name} was not dragged`);
  await page.waitForTimeout(200);
};
const pathOf = (from, to) => page.$eval(`#edges path[data-from="${from}"][data-to="${to}"]`, (p) => p.getAttribute("d"));

// A card dropped on an edge it is not part of: caption over the slot sigma -> soft takes
// above scene (the layout's route), touching no other card. That edge goes around it.
const slot = graph.edges.find((e) => e.from === "sigma" && e.to === "soft").route;
const captionBox = await boxOf("caption");
const target = { x: slot[0], y: slot[1] - captionBox.h + 40, w: captionBox.w, h: captionBox.h };
const others = graph.nodes.filter((n) => n.name !== "caption" && meet(target, n)).map((n) => n.name);
await check(others.length === 0 && target.y > 0, `caption's drop ${JSON.stringify(target)} would cover ${others}`);
const slotPath = await pathOf("sigma", "soft");
await check(slotPath.includes(`L${slot[2]},${slot[3]}`), `sigma -> soft does not take its slot: ${slotPath}`);
await drag("caption", target.x - captionBox.x, target.y - captionBox.y);
const dropped = await boxOf("caption");
await check(dropped.y < slot[1] && dropped.y + dropped.h > slot[1] && dropped.x < slot[0] + 10 && dropped.x + dropped.w > slot[2] - 10,
  `caption ${JSON.stringify(dropped)} was not dropped on sigma -> soft's slot ${slot}`);
const onEdge = await edgesOverCards();
const aroundCaption = await pathOf("sigma", "soft");
// Caption's own edge from stats now runs backwards over the cards: only the others count.
const covered = onEdge.hits.filter((h) => h.includes("over caption") || h.startsWith("sigma->soft"));
await check(covered.length === 0, `with caption dropped on sigma -> soft, edges under it: ${covered.join("; ")} (sigma -> soft: ${aroundCaption})`);
await check(aroundCaption !== slotPath, `sigma -> soft was not routed again: ${aroundCaption}`);
findings.dropped_on_edge = { caption: dropped, slot, path: aroundCaption };
await page.screenshot({ path: join(shots, "15-dropped-on-edge.png") });
// Put back (reset layout), the card frees the edge: it takes its slot again.
await page.click('[data-testid="reset-layout"]');
await waitFor(([c, x, y]) => parseFloat(document.querySelector(c).style.left) === x && parseFloat(document.querySelector(c).style.top) === y,
  [card("caption"), captionBox.x, captionBox.y], "caption did not go back");
await waitFor(([p, part]) => document.querySelector(p)?.getAttribute("d").includes(part), ['#edges path[data-from="sigma"][data-to="soft"]', `L${slot[2]},${slot[3]}`],
  "sigma -> soft did not take its slot again");

// A dragged card's edges are routed again around the cards in their way: sigma dragged
// level with scene (its edge to soft would cut straight through scene).
const sigmaBox = await boxOf("sigma");
const sceneBox = await boxOf("scene");
await drag("sigma", 0, sceneBox.y + sceneBox.h / 2 - (sigmaBox.y + sigmaBox.h / 2));
const dragged = await boxOf("sigma");
const afterDrag = await edgesOverCards();
await check(afterDrag.paths === graph.edges.length, `${afterDrag.paths} edge paths after the drag`);
await check(afterDrag.hits.length === 0, `with sigma dragged to ${JSON.stringify(dragged)}, edges over cards: ${afterDrag.hits.join("; ")}`);
// Its edge to soft goes around scene: it has a route of its own (straight through scene's column).
const detour = await page.$eval('#edges path[data-from="sigma"][data-to="soft"]', (p) => p.getAttribute("d"));
await check(detour.includes(" L"), `sigma -> soft is not routed: ${detour}`);
findings.dragged = { sigma: dragged, scene: sceneBox, path: detour };
await page.screenshot({ path: join(shots, "16-dragged-routes.png") });

await check(errors.length === 0, `page errors: ${JSON.stringify(errors)}`);
console.log(JSON.stringify(findings));
await context.close();
