// Output previews, the minimap, SVG export and the timeline in real Chromium (playwright-core,
// Debian's chromium). Usage: node previews.mjs <url> <screenshot dir>; env DAGGR_PLAYWRIGHT =
// path to playwright-core.
// The pipeline (tests/inspector_browser.rs): size -> picture (a 48x32 PNG) -> tiles (three
// PNGs: a gallery) -> summary (JSON); tone (a WAV of 0.5 s), clip (a 64x48 WebM), table (a
// CSV file). Each preview is checked as a user gets it: the element is there, points at the
// blob with the right type, and the browser loads it (an image's natural size, an audio
// clip's duration, a video's frame size, a file's bytes).
// Prints one JSON line of findings; exits 1 on the first failed check.
import { card, checks, launch } from "./launch.mjs";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
const browser = await launch(shots, { consoleErrors: true });
const { context, page, errors } = browser;

const findings = {};
const { check, waitFor, ready } = checks(browser, shots, "failure-previews.png");

await page.goto(url);
await ready();
const graph = await page.evaluate(() => fetch("/api/graph").then((r) => r.json()));
await page.click('[data-testid="run-all"]');
for (const n of graph.nodes) {
  await waitFor(([c]) => ["done", "cached"].includes(document.querySelector(c)?.dataset.status), [card(n.name)], `${n.name} did not finish`);
}

// Image: a thumbnail that loads at its real size; the lightbox shows it full size.
await waitFor(() => document.querySelector('[data-testid="node-picture"] .rich img')?.naturalWidth > 0, null, "the image did not load");
findings.image = await page.$eval('[data-testid="node-picture"] .rich img', (i) => ({ w: i.naturalWidth, h: i.naturalHeight, src: i.getAttribute("src") }));
await check(findings.image.w === 48 && findings.image.h === 32 && findings.image.src.includes("mime=image%2Fpng"), `image: ${JSON.stringify(findings.image)}`);
await page.click('[data-testid="node-picture"] .rich .thumb');
await waitFor(() => document.querySelector("#lightbox[open] img")?.naturalWidth === 48, null, "the lightbox did not show the image");
await page.keyboard.press("Escape");

// Audio: a player whose clip loads, with its length.
await waitFor(() => document.querySelector('[data-testid="node-tone"] audio')?.readyState >= 1, null, "the audio clip did not load");
findings.audio = await page.$eval('[data-testid="node-tone"] audio', (a) => ({ duration: a.duration, controls: a.controls, src: a.getAttribute("src") }));
await check(Math.abs(findings.audio.duration - 0.5) < 0.02 && findings.audio.controls && findings.audio.src.includes("mime=audio%2Fwav"), `audio: ${JSON.stringify(findings.audio)}`);

// Video: a player whose first frame decodes at the video's size.
await waitFor(() => document.querySelector('[data-testid="node-clip"] video')?.readyState >= 2, null, "the video did not load");
findings.video = await page.$eval('[data-testid="node-clip"] video', (v) => ({ w: v.videoWidth, h: v.videoHeight, src: v.getAttribute("src") }));
await check(findings.video.w === 64 && findings.video.h === 48 && findings.video.src.includes("mime=video%2Fwebm"), `video: ${JSON.stringify(findings.video)}`);

// File: a download link to the file's bytes, under its name.
findings.file = await page.$eval('[data-testid="node-table"] a.file', async (a) => {
  const r = await fetch(a.getAttribute("href"));
  return { download: a.getAttribute("download"), text: a.textContent, status: r.status, type: r.headers.get("content-type"),
    disposition: r.headers.get("content-disposition"), body: await r.text() };
});
await check(findings.file.status === 200 && findings.file.download === "table.csv" && findings.file.body === "name,value\na,1\nb,2\n"
  && findings.file.disposition === "attachment" && findings.file.type === "text/csv", `file: ${JSON.stringify(findings.file)}`);

// Gallery: every item of a list of images, each loaded.
await waitFor(() => {
  const imgs = [...document.querySelectorAll('[data-testid="node-tiles"] .gallery img')];
  return imgs.length === 3 && imgs.every((i) => i.naturalWidth > 0);
}, null, "the gallery did not show three loaded images");
findings.gallery = await page.$$eval('[data-testid="node-tiles"] .gallery img', (is) => is.map((i) => i.naturalWidth));
await check(JSON.stringify(findings.gallery) === "[48,24,12]", `gallery: ${JSON.stringify(findings.gallery)}`);

// JSON: a tree with the object's keys; a nested branch opens.
findings.json_keys = await page.$$eval('[data-testid="node-summary"] .json > details > .leaf .k, [data-testid="node-summary"] .json > details > details > summary .k',
  (ks) => ks.map((k) => k.textContent));
await check(["count: ", "widths: "].every((k) => findings.json_keys.includes(k)), `JSON keys: ${JSON.stringify(findings.json_keys)}`);
await page.click('[data-testid="node-summary"] .json details details > summary');
await waitFor(() => [...document.querySelectorAll('[data-testid="node-summary"] .json details details .leaf .v')].map((v) => v.textContent).join(",") === "48,24,12",
  null, "the nested list did not open");
await page.screenshot({ path: join(shots, "15-previews.png") });

// Minimap: every node is drawn; a click moves the view to that spot.
const minimap = await page.evaluate((nodes) => {
  const c = document.getElementById("minimap");
  const [s, ox, oy] = [Number(c.dataset.scale), Number(c.dataset.ox), Number(c.dataset.oy)];
  const dpr = c.width / c.clientWidth;
  const ctx = c.getContext("2d");
  const drawn = nodes.filter((n) => ctx.getImageData(Math.round((ox + (n.x + n.w / 2) * s) * dpr), Math.round((oy + (n.y + n.h / 2) * s) * dpr), 1, 1).data[3] > 0);
  return { drawn: drawn.length, scale: s, ox, oy, rect: c.getBoundingClientRect().toJSON() };
}, graph.nodes);
await check(minimap.drawn === graph.nodes.length, `the minimap draws ${minimap.drawn} of ${graph.nodes.length} nodes`);
const target = graph.nodes.find((n) => n.name === "summary");
const [tx, ty] = [target.x + target.w / 2, target.y + target.h / 2];
await page.mouse.click(minimap.rect.x + minimap.ox + tx * minimap.scale, minimap.rect.y + minimap.oy + ty * minimap.scale);
await page.waitForTimeout(100);
const centre = await page.evaluate(() => {
  const m = new DOMMatrix(getComputedStyle(document.getElementById("world")).transform);
  const r = document.getElementById("viewport").getBoundingClientRect();
  return { x: (r.width / 2 - m.e) / m.a, y: (r.height / 2 - m.f) / m.a };
});
await check(Math.hypot(centre.x - tx, centre.y - ty) < 2 / minimap.scale + 2, `the minimap click centred ${JSON.stringify(centre)}, not ${tx},${ty}`);
findings.minimap = { drawn: minimap.drawn, centred_on: "summary" };

// SVG export: a standalone SVG with every edge and every node's name, that a browser renders.
await page.click('[data-testid="fit"]');
const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="export-svg"]')]);
const svgText = readFileSync(await download.path(), "utf8");
const parsed = await page.evaluate(async (text) => {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const img = new Image();
  img.src = `data:image/svg+xml;base64,${btoa(unescape(encodeURIComponent(text)))}`;
  await img.decode();
  return { error: !!doc.querySelector("parsererror"), paths: doc.querySelectorAll("path").length, texts: [...doc.querySelectorAll("text")].map((t) => t.textContent), width: img.naturalWidth };
}, svgText);
await check(download.suggestedFilename() === `${graph.name}.svg`, `export file name ${download.suggestedFilename()}`);
await check(!parsed.error && parsed.paths === graph.edges.length && parsed.width > 0, `SVG export: ${JSON.stringify(parsed)}`);
await check(graph.nodes.every((n) => parsed.texts.includes(n.name)), `SVG export lacks node names: ${JSON.stringify(parsed.texts)}`);
findings.svg = { paths: parsed.paths, width: parsed.width, bytes: svgText.length };

// Timeline: one row per node of the last run; a rerun shows every node as a cache hit; a
// click on a name selects that node.
await page.click('[data-testid="timeline-toggle"]');
await waitFor(() => !document.getElementById("timeline").hidden, null, "the timeline did not open");
const rows = () => page.$$eval("#timeline .tl-row:not(.tl-axis-row)", (rs) => rs.map((r) => ({
  name: r.querySelector(".tl-name").textContent, cached: !!r.querySelector(".tl-bar.cached"), width: r.querySelector(".tl-bar").getBoundingClientRect().width })));
const first = await rows();
await check(first.length === graph.nodes.length && first.every((r) => !r.cached && r.width > 0), `timeline after the first run: ${JSON.stringify(first)}`);
await page.click('[data-testid="run-all"]');
await waitFor((n) => document.querySelectorAll("#timeline .tl-row .tl-bar.cached").length === n, graph.nodes.length, "the rerun's timeline does not show cache hits");
await page.screenshot({ path: join(shots, "16-timeline.png") });
await page.click('#timeline .tl-name:text-is("clip")');
await waitFor(() => document.querySelector('[data-testid="node-clip"]')?.classList.contains("highlight"), null, "a click on a timeline name did not select the node");
findings.timeline = { rows: first.length, cached_after_rerun: (await rows()).filter((r) => r.cached).length };

await check(errors.length === 0, `page errors: ${JSON.stringify(errors)}`);
console.log(JSON.stringify(findings));
await context.close();
