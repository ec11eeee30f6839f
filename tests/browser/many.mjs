// A big graph in real Chromium: the page becomes ready, only the cards near the view have DOM
// (the far zoom draws the graph on a canvas), a full run's live updates land, and the canvas
// stays responsive. Usage: node many.mjs <url> <screenshot dir> [node count, default 500];
// env DAGGR_PLAYWRIGHT = path to playwright-core. Prints measured times (medians and p90 of
// frame times) as one JSON line; budgets are reported, not asserted (machines are noisy):
// inspector/measure-big.sh runs this several times and prints the medians.
import { launch, checks } from "./launch.mjs";
import { join } from "node:path";

const [url, shots, count = "500"] = process.argv.slice(2);
const expected = Number(count);
const browser = await launch(shots);
const { context, page, errors } = browser;
const { fail } = checks(browser, shots, `failure-many-${expected}.png`);

let t = Date.now();
await page.goto(url);
await page.waitForSelector("body[data-ready=true]", { timeout: 60000 }).catch(() => fail("not ready"));
const load_ms = Date.now() - t;
// Where the load time went: the graph and state requests, and the page's own work until ready.
const timing = await page.evaluate(() => {
  const of = (part) => performance.getEntriesByType("resource").find((e) => e.name.includes(part));
  const nav = performance.getEntriesByType("navigation")[0];
  const graph = of("/api/graph");
  const state = of("/state");
  // The page's own marks (src/main.ts), in ms since the navigation started.
  const marks = Object.fromEntries(performance.getEntriesByType("mark").filter((m) => m.name.startsWith("daggr:"))
    .map((m) => [`${m.name.slice(6).replace("-", "_")}_at_ms`, Math.round(m.startTime)]));
  return { graph_ms: Math.round(graph?.duration ?? -1), graph_kb: Math.round((graph?.transferSize ?? 0) / 1024), state_ms: Math.round(state?.duration ?? -1),
    state_kb: Math.round((state?.transferSize ?? 0) / 1024), state_started_ms: Math.round(state?.startTime ?? -1),
    // What the JSON is once decoded, beside what came over the wire (compressed) above.
    graph_json_kb: Math.round((graph?.decodedBodySize ?? 0) / 1024), state_json_kb: Math.round((state?.decodedBodySize ?? 0) / 1024),
    script_done_ms: Math.round(nav?.domContentLoadedEventEnd ?? -1), ...marks };
});
const graph = await page.evaluate(() => fetch("/api/graph").then((r) => r.json()));
if (graph.nodes.length !== expected) await fail(`${graph.nodes.length} nodes, expected ${expected}`);
// Only the cards near the view are in the DOM, and they are where the layout put them.
const mounted = await page.evaluate(() => {
  const m = new DOMMatrix(getComputedStyle(document.getElementById("world")).transform);
  const r = document.getElementById("viewport").getBoundingClientRect();
  const view = { x: -m.e / m.a, y: -m.f / m.a, w: r.width / m.a, h: r.height / m.a };
  const cards = [...document.querySelectorAll(".card")];
  const inView = cards.filter((c) => {
    const x = parseFloat(c.style.left), y = parseFloat(c.style.top);
    return x < view.x + view.w && x + c.offsetWidth > view.x && y < view.y + view.h && y + c.offsetHeight > view.y;
  });
  return { cards: cards.length, in_view: inView.length, zoom: m.a };
});
if (!mounted.in_view) await fail(`no card in view: ${JSON.stringify(mounted)}`);
if (expected > 1000 && mounted.cards >= expected / 4) await fail(`${mounted.cards} cards in the DOM for ${expected} nodes`);

t = Date.now();
await page.click('[data-testid="run-all"]');
// Every node finished (read from the server: most cards have no DOM), and the page saw it.
await page.waitForFunction(async () => {
  const s = await fetch("/api/sheets/default/state").then((r) => r.json());
  return !s.running && s.nodes.every((n) => n.status === "done" || n.status === "cached");
}, null, { timeout: 120000, polling: 250 }).catch(() => fail("not all nodes finished"));
await page.waitForFunction(() => !document.body.classList.contains("is-running") && [...document.querySelectorAll(".card")].every((c) => c.dataset.status === "done" || c.dataset.status === "cached"),
  null, { timeout: 30000, polling: 100 }).catch(() => fail("the cards on screen did not all finish"));
const run_ms = Date.now() - t;
// Let the last state refresh and the cards' explanations land: frames below measure moving
// the view, not that background work.
await page.waitForTimeout(1000);

/** Frame times while dispatching 40 wheel events (zoom in/out, or pans with `deltaX`). */
const frames = (kind) => page.evaluate(async (kind) => {
  const times = [];
  const vp = document.getElementById("viewport");
  let last = performance.now();
  for (let i = 0; i < 40; i++) {
    const wheel = kind === "pan" ? { deltaX: i % 2 ? 90 : -90, deltaY: 40 } : { deltaY: i % 2 ? 120 : -120 };
    vp.dispatchEvent(new WheelEvent("wheel", { ...wheel, clientX: 400, clientY: 300, bubbles: true, cancelable: true }));
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    times.push(now - last);
    last = now;
  }
  times.sort((a, b) => a - b);
  return { median: times[20], p90: times[36] };
}, kind);
const near_zoom = await frames("zoom");
const near_pan = await frames("pan");
await page.screenshot({ path: join(shots, `6-${expected}-nodes-near.png`) });

// Fitting the whole graph: the far zoom draws it on a canvas, with no card in the DOM.
await page.click('[data-testid="fit"]');
const far = await page.waitForFunction(() => !document.getElementById("far").hidden && document.querySelectorAll(".card").length <= 1, null, { timeout: 5000 })
  .then(() => true, () => false);
if (expected > 1000 && !far) await fail("fitting a big graph did not switch to the far canvas");
const far_zoom = await frames("zoom");
// One full redraw of the far canvas (frames in between scale the last one; see src/far.ts).
await page.waitForTimeout(400);
const far_redraw_ms = await page.evaluate(() => Number(document.getElementById("far").dataset.renderMs));
await page.screenshot({ path: join(shots, `6-${expected}-nodes.png`) });
if (errors.length) await fail("page errors");
console.log(JSON.stringify({
  nodes: graph.nodes.length, edges: graph.edges.length, cards_in_dom: mounted.cards, load_ms, ...timing, run_ms,
  frame_median_ms: near_zoom.median, frame_p90_ms: near_zoom.p90,
  pan_frame_median_ms: near_pan.median, pan_frame_p90_ms: near_pan.p90,
  far_frame_median_ms: far_zoom.median, far_frame_p90_ms: far_zoom.p90, far_redraw_ms,
}));
await context.close();
