#!/usr/bin/env node
// A stand-in for the Rust inspector server (../API.md), for working on the page without
// building the crate: Node standard library only. It serves ../../daggr/assets/inspector/ and
// simulates a pipeline with live SSE events, sheets, history, media blobs and staleness.
//
//   node dev/stub-server.mjs [--graph demo|browser|logs|many] [--port 7861] [--token T] [--speed 1]
//
// --graph browser and --graph logs mirror the pipelines of tests/inspector_browser.rs (so
// tests/browser/inspector.mjs and logs_and_drag.mjs can run against the stub); --graph many is
// 50 chains of 10 nodes (500 nodes).
// Dev-only extra: POST /__stub/drop closes every event stream (to watch the page reconnect).
//
//   node dev/stub-server.mjs --proxy http://127.0.0.1:7860
// serves the freshly built page but forwards everything else to a real inspector server (for
// instance `DAGGR_PORT=7860 target/debug/examples/quickstart`), so the page can be tried
// against the real API without rebuilding the crate.
import http from "node:http";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const GRAPH = arg("graph", "demo");
const PORT = Number(arg("port", "7861"));
const TOKEN = arg("token", null);
const SPEED = Number(arg("speed", "1"));
const PROXY = arg("proxy", null);
const ASSETS = join(dirname(fileURLToPath(import.meta.url)), "../../daggr/assets/inspector");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms / SPEED));

// ---------------------------------------------------------------- media
const blobs = new Map(); // integrity -> { bytes, mime }
function putBlob(bytes, mime, name) {
  const blob = `sha256-${createHash("sha256").update(bytes).digest("hex")}`;
  blobs.set(blob, { bytes, mime });
  const kind = ["image", "audio", "video"].find((k) => mime.startsWith(`${k}/`)) || "file";
  const ref = { kind, mime, size: bytes.length, blob };
  if (name) ref.name = name;
  return ref;
}
const CRC = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
const crc32 = (buf) => {
  let c = -1;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
};
function png(w, h, pixel) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) raw.set(pixel(x, y), y * (w * 3 + 1) + 1 + x * 3);
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}
function hsl(h, s, l) {
  const f = (n) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}
/** A little "painting": sky gradient, sea, a lighthouse. */
function scene(size, seed, hue = 25) {
  const s = size;
  return png(s, s, (x, y) => {
    const u = x / s;
    const v = y / s;
    if (v > 0.62) return hsl(210 + seed * 3, 0.45, 0.22 + 0.1 * Math.sin(u * 40 + v * 90 + seed));
    if (Math.abs(u - 0.68) < 0.035 && v > 0.3) return (Math.floor(v * 20) % 2 ? [235, 235, 235] : [200, 50, 40]);
    if (Math.hypot(u - 0.68, v - 0.27) < 0.04) return [255, 230, 140];
    return hsl(hue + v * 40, 0.7, 0.35 + 0.35 * v);
  });
}
function wav(seconds, freq) {
  const rate = 8000;
  const n = Math.round(seconds * rate);
  const buf = Buffer.alloc(44 + n * 2);
  buf.write("RIFF", 0);
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write("WAVEfmt ", 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write("data", 36);
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * freq * i) / rate) * Math.min(1, (n - i) / 800)), 44 + i * 2);
  return buf;
}

// ---------------------------------------------------------------- pipelines
const input = (name, type, widget, value) => ({ name, kind: "input", inputs: [{ name: "value", type, source: "const", widget, default: value }], outputs: [{ name: "value", type }], ms: 0, run: (i) => [i.value] });
const edge = (name, type, from) => ({ name, type, source: "edge", from });
const konst = (name, type, widget, value) => ({ name, type, source: "const", widget, default: value });

function demo() {
  const caption = "A lone lighthouse stands on a rocky shore at dusk, its warm beam sweeping over a calm violet sea.";
  return [
    input("prompt", "String", "text", "a lighthouse at dusk, oil painting"),
    input("size", "u32", "integer", 96),
    input("reference", "Image", "image", putBlob(scene(48, 2, 200), "image/png", "reference.png")),
    { name: "generate", kind: "gradio", inputs: [edge("prompt", "String", "prompt.value"), edge("size", "u32", "size.value"), konst("seed", "u64", "integer", 7)], outputs: [{ name: "output", type: "Image" }], ms: 900, steps: 6,
      logs: (i) => ["loaded the Space's config (Gradio 5)", `prompt: ${i.prompt}`, `seed ${i.seed}, ${i.size}×${i.size}`],
      run: (i) => [putBlob(scene(Math.min(256, Math.max(8, i.size)), i.seed, (i.prompt.length * 13) % 360), "image/png", "generated.png")] },
    { name: "caption", kind: "inference", inputs: [edge("image", "Image", "generate.output")], outputs: [{ name: "output", type: "String" }], ms: 1200, stream: caption, run: () => [caption] },
    { name: "variations", kind: "fn", inputs: [edge("image", "Image", "generate.output"), konst("count", "usize", "integer", 6)], outputs: [{ name: "output", type: "Vec<Image>" }], ms: 500,
      run: (i) => [Array.from({ length: Math.min(24, i.count) }, (_, k) => putBlob(scene(40, k, (k * 47) % 360), "image/png", `variation-${k + 1}.png`))] },
    { name: "similarity", kind: "fn", inputs: [edge("a", "Image", "generate.output"), edge("b", "Image", "reference.value")], outputs: [{ name: "output", type: "f64" }], ms: 300, run: () => [0.734215] },
    { name: "stats", kind: "fn", inputs: [edge("image", "Image", "generate.output"), edge("caption", "String", "caption.output")], outputs: [{ name: "output", type: "Stats" }], ms: 250,
      run: (i) => [{ width: 96, height: 96, words: i.caption.split(" ").length, palette: ["#e8a05c", "#7b4fa0", "#1f3b5c"], tags: ["lighthouse", "dusk", "sea"], model: { name: "sd-turbo", steps: 6, guidance: 0.0 } }] },
    { name: "narrate", kind: "fn", inputs: [edge("text", "String", "caption.output"), konst("speed", "f32", "number", 1.0)], outputs: [{ name: "output", type: "Audio" }], ms: 700, run: (i) => [putBlob(wav(1.2 / Math.max(0.25, i.speed), 440), "audio/wav", "narration.wav")] },
    { name: "score", kind: "fn", inputs: [edge("stats", "Stats", "stats.output")], outputs: [{ name: "output", type: "f64" }], ms: 150, run: () => [0.8734] },
    { name: "report", kind: "fn", inputs: [edge("caption", "String", "caption.output"), edge("score", "f64", "score.output")], outputs: [{ name: "output", type: "File" }], ms: 200,
      run: (i) => [putBlob(Buffer.from(`# Report\n\n${i.caption}\n\nscore: ${i.score}\n`), "text/markdown", "report.md")] },
    { name: "publish", kind: "gradio", inputs: [edge("report", "File", "report.output"), konst("dry_run", "bool", "bool", false)], outputs: [{ name: "output", type: "String" }], ms: 600,
      logs: (i) => [`uploading report.md${i.dry_run ? " (dry run)" : ""}`],
      run: (i) => {
        if (!i.dry_run) throw new Error("HTTP 503 from the upload Space: service unavailable (gave up after 3 attempts)");
        return ["dry run: nothing uploaded"];
      } },
    { name: "notify", kind: "fn", inputs: [edge("receipt", "String", "publish.output")], outputs: [{ name: "output", type: "String" }], ms: 100, run: () => ["sent"] },
  ];
}

function browser() {
  return [
    input("text", "String", "text", "typed pipelines in a real browser"),
    { name: "upper", kind: "fn", inputs: [edge("text", "String", "text.value")], outputs: [{ name: "output", type: "String" }], ms: 5, run: (i) => [i.text.toUpperCase()] },
    { name: "count", kind: "fn", inputs: [edge("text", "String", "upper.output"), konst("min", "u64", "integer", 3)], outputs: [{ name: "output", type: "u64" }], ms: 5,
      run: (i) => [i.text.split(/\s+/).filter((w) => w.length >= i.min).length] },
    { name: "report", kind: "fn", inputs: [edge("n", "u64", "count.output")], outputs: [{ name: "output", type: "String" }], ms: 5, run: (i) => [`${i.n} long words`] },
    { name: "slow", kind: "fn", inputs: [edge("t", "String", "text.value")], outputs: [{ name: "output", type: "u64" }], ms: 600, run: (i) => [i.t.length] },
    { name: "render", kind: "fn", inputs: [konst("size", "u32", "integer", 32)], outputs: [{ name: "output", type: "Image" }], ms: 5,
      run: (i) => [putBlob(png(i.size, i.size, (x, y) => [x * 8, y * 8, 160]), "image/png", "tile.png")] },
  ];
}

/** Mirrors logs_show_live_and_cards_can_be_dragged in tests/inspector_browser.rs. */
function logs() {
  return [
    input("text", "String", "text", "logs and dragging"),
    { name: "chatty", kind: "fn", inputs: [edge("in0", "String", "text.value")], outputs: [{ name: "output", type: "u64" }], ms: 1000,
      logs: (i) => ["hello from chatty", "progress 0%: step 0", ...Array.from({ length: 16 }, (_, k) => `step ${k} of 16`), `done: ${i.in0.length} chars`], run: (i) => [i.in0.length] },
    { name: "upper", kind: "fn", inputs: [edge("text", "String", "text.value")], outputs: [{ name: "output", type: "String" }], ms: 5, run: (i) => [i.text.toUpperCase()] },
    { name: "tail", kind: "fn", inputs: [edge("in0", "String", "upper.output")], outputs: [{ name: "output", type: "u64" }], ms: 5, run: (i) => [i.in0.length] },
    { name: "flaky", kind: "fn", inputs: [], outputs: [{ name: "output", type: "u64" }], ms: 60,
      logs: () => ["attempt 1 of 2 failed, retrying in 50ms: node `flaky` failed: 503 service unavailable"], run: () => [1] },
  ];
}

function many() {
  const nodes = [];
  for (let c = 0; c < 50; c++) {
    nodes.push({ name: `c${c}n0`, kind: "fn", inputs: [], outputs: [{ name: "output", type: "u64" }], ms: 2, run: () => [c] });
    for (let i = 1; i < 10; i++) {
      nodes.push({ name: `c${c}n${i}`, kind: "fn", inputs: [edge("x", "u64", `c${c}n${i - 1}.output`)], outputs: [{ name: "output", type: "u64" }], ms: 2 + ((c * 7 + i * 3) % 9), run: (v) => [v.x + 1] });
    }
  }
  return nodes;
}

const specs = { demo, browser, logs, many }[GRAPH]?.();
if (!specs) throw new Error(`unknown --graph ${GRAPH}`);
const byName = new Map(specs.map((n, i) => [n.name, Object.assign(n, { index: i })]));
const edges = [];
for (const n of specs) {
  for (const p of n.inputs) {
    if (p.source !== "edge") continue;
    const [from, from_port] = p.from.split(".");
    edges.push({ from, from_port, to: n.name, to_port: p.name, type: p.type });
  }
}
const ups = (name) => edges.filter((e) => e.to === name).map((e) => e.from);
const downs = (name) => edges.filter((e) => e.from === name).map((e) => e.to);

// Layout like src/inspector/layout.rs: longest-path layers, one row pitch.
const CARD_W = 260, GAP_X = 110, GAP_Y = 36, MARGIN = 40;
const layer = new Map();
for (const n of specs) layer.set(n.name, Math.max(0, ...ups(n.name).map((u) => layer.get(u) + 1)));
const heights = specs.map((n) => 96 + 28 * (n.inputs.length + n.outputs.length));
const pitch = Math.max(...heights) + GAP_Y;
const rowsUsed = new Map();
const graph = { name: GRAPH === "demo" ? "quickstart" : GRAPH, nodes: [], edges };
let width = 0, height = 0;
specs.forEach((n, i) => {
  const l = layer.get(n.name);
  const row = rowsUsed.get(l) || 0;
  rowsUsed.set(l, row + 1);
  const box = { x: MARGIN + l * (CARD_W + GAP_X), y: MARGIN + row * pitch, w: CARD_W, h: heights[i] };
  width = Math.max(width, box.x + box.w + MARGIN);
  height = Math.max(height, box.y + box.h + MARGIN);
  graph.nodes.push({ index: i, name: n.name, kind: n.kind, ...box,
    inputs: n.inputs.map((p) => ({ name: p.name, type: p.type, source: p.source, ...(p.widget ? { widget: p.widget } : {}) })),
    outputs: n.outputs });
});
Object.assign(graph, { width, height });

// ---------------------------------------------------------------- sheets
let entryIds = 0;
const sheets = new Map();
function newSheet(name) {
  const now = Date.now();
  return { name, created_ms: now, updated_ms: now, overrides: new Map(), results: new Map(), history: new Map(), live: new Map(),
    cachedNow: new Set(), timeline: [], log: [], nextId: 1, clients: new Set(), run: null, runs: 0, viewport: null,
    nodeLogs: new Map(), positions: {} };
}
sheets.set("default", newSheet("default"));

function push(sheet, event, data) {
  const e = { id: sheet.nextId++, event, data };
  sheet.log.push(e);
  if (sheet.log.length > 2000) sheet.log.shift();
  for (const res of sheet.clients) res.write(frame(e));
  return e;
}
const frame = (e) => `id: ${e.id}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;

/** Writes a line to a node's live log (the log of its latest execution) and sends it. */
function logLine(sheet, node, line) {
  const entry = { unix_ms: Date.now(), line };
  sheet.nodeLogs.get(node)?.push(entry);
  push(sheet, "node_log", { node, ...entry });
}
/** What GET …/logs shows: the live log while running or after a failure, else the current result's. */
function currentLog(sheet, name) {
  const live = sheet.live.get(name) || {};
  if ((live.running || live.error) && sheet.nodeLogs.has(name)) return { source: "live", lines: sheet.nodeLogs.get(name) };
  return { source: "result", lines: sheet.results.get(name)?.logs || [] };
}

const constValue = (sheet, node, port) => {
  const key = `${node.name}.${port.name}`;
  return sheet.overrides.has(key) ? sheet.overrides.get(key) : port.default;
};
function inputsOf(sheet, node) {
  const values = {};
  for (const p of node.inputs) {
    if (p.source === "const") values[p.name] = constValue(sheet, node, p);
    else {
      const [from, port] = p.from.split(".");
      const r = sheet.results.get(from);
      if (!r) return null;
      values[p.name] = r.outputs[byName.get(from).outputs.findIndex((o) => o.name === port)];
    }
  }
  return values;
}
/** What a result must have been computed from to be fresh: constants + upstream result ids. */
function keyOf(sheet, node) {
  return JSON.stringify(node.inputs.map((p) => (p.source === "const" ? constValue(sheet, node, p) : sheet.results.get(p.from.split(".")[0])?.id ?? null)));
}
const isStale = (sheet, node) => {
  const r = sheet.results.get(node.name);
  return !!r && (r.key !== keyOf(sheet, node) || ups(node.name).some((u) => isStale(sheet, byName.get(u))));
};

function media(value, into = []) {
  if (value && typeof value === "object") {
    if (typeof value.blob === "string" && typeof value.mime === "string" && typeof value.kind === "string") {
      into.push({ kind: value.kind, mime: value.mime, name: value.name ?? null, url: `/api/blobs/${encodeURIComponent(value.blob)}?mime=${encodeURIComponent(value.mime)}` });
    } else Object.values(value).forEach((v) => media(v, into));
  }
  return into;
}

function state(sheet) {
  return {
    sheet: sheet.name, running: !!sheet.run, last_event_id: sheet.nextId - 1, viewport: sheet.viewport, positions: sheet.positions,
    nodes: specs.map((node) => {
      const live = sheet.live.get(node.name) || {};
      const r = sheet.results.get(node.name);
      const stale = isStale(sheet, node);
      const status = live.running ? "running" : live.error ? "failed" : live.skipped ? "skipped" : !r ? "pending" : stale ? "stale" : sheet.cachedNow.has(node.name) ? "cached" : "done";
      const hist = sheet.history.get(node.name) || [];
      // Failed runs are listed in the history but are no results (as in the crate).
      const results = hist.filter((h) => !h.error);
      const pos = r ? results.findIndex((h) => h.id === r.id) + 1 : 0;
      return {
        name: node.name, status, stale, elapsed_ms: live.elapsed_ms ?? r?.elapsed_ms ?? null, error: live.error ?? null, progress: live.progress ?? null,
        skipped_because: live.skipped ?? null, log_lines: currentLog(sheet, node.name).lines.length,
        history: { count: results.length, selected_id: r?.id ?? null, position: pos, failed: hist.length - results.length },
        inputs: node.inputs.filter((p) => p.source === "const").map((p) => ({ port: p.name, value: constValue(sheet, node, p), overridden: sheet.overrides.has(`${node.name}.${p.name}`) })),
        outputs: r ? node.outputs.map((o, k) => ({ port: o.name, type: o.type, value: r.outputs[k], media: media(r.outputs[k]) })) : [],
      };
    }),
    timeline: sheet.timeline,
  };
}

function closure(name, next) {
  const seen = new Set([name]);
  const stack = [name];
  while (stack.length) for (const n of next(stack.pop())) if (!seen.has(n)) (seen.add(n), stack.push(n));
  return seen;
}

async function execute(sheet, scope, target) {
  const set = scope === "all" ? new Set(specs.map((n) => n.name)) : scope === "only" ? new Set([target]) : closure(target, scope === "to" ? ups : downs);
  const order = specs.filter((n) => set.has(n.name));
  const run = ++sheet.runs;
  const t0 = performance.now();
  const since = () => performance.now() - t0;
  sheet.timeline = [];
  for (const n of order) {
    sheet.live.delete(n.name);
    sheet.cachedNow.delete(n.name);
  }
  push(sheet, "run_started", { run, nodes: order.length });
  const counts = { computed: 0, cached: 0, failed: 0, skipped: 0 };
  const done = new Map(); // name -> promise
  const one = async (node) => {
    await Promise.all(ups(node.name).filter((u) => set.has(u)).map((u) => done.get(u)));
    if (sheet.run.cancelled) return;
    const blocked = ups(node.name).find((u) => !sheet.results.has(u) || sheet.live.get(u)?.error || sheet.live.get(u)?.skipped);
    if (blocked) {
      sheet.live.set(node.name, { skipped: `upstream ${blocked} did not finish` });
      counts.skipped++;
      push(sheet, "node_skipped", { node: node.name, because: `upstream ${blocked} did not finish` });
      return;
    }
    const key = keyOf(sheet, node);
    const prev = sheet.results.get(node.name);
    if (prev && prev.key === key && !isStale(sheet, node)) {
      sheet.cachedNow.add(node.name);
      counts.cached++;
      sheet.timeline.push({ node: node.name, start_ms: since(), end_ms: since(), cached: true });
      push(sheet, "node_cached", { node: node.name, source: "memory" });
      return;
    }
    const start = since();
    const bar = { node: node.name, start_ms: start, end_ms: null, cached: false };
    sheet.timeline.push(bar);
    sheet.live.set(node.name, { running: true });
    sheet.nodeLogs.set(node.name, []);
    push(sheet, "node_started", { node: node.name, attempt: 1 });
    const inputs = inputsOf(sheet, node);
    try {
      for (const line of node.logs?.(inputs) || []) logLine(sheet, node.name, line);
      if (node.steps) {
        for (let s = 1; s <= node.steps; s++) {
          await sleep(node.ms / node.steps);
          sheet.live.get(node.name).progress = { fraction: s / node.steps, message: `step ${s}/${node.steps}` };
          push(sheet, "node_progress", { node: node.name, fraction: s / node.steps, message: `step ${s}/${node.steps}` });
          logLine(sheet, node.name, `progress ${Math.round((s / node.steps) * 100)}%: step ${s}/${node.steps}`);
        }
      } else if (node.stream) {
        const words = node.stream.split(" ");
        for (let w = 1; w <= words.length; w++) {
          await sleep(node.ms / words.length);
          push(sheet, "node_progress", { node: node.name, fraction: null, message: `${w} tokens` });
          push(sheet, "node_partial", { node: node.name, value: { text: words.slice(0, w).join(" ") } });
        }
      } else await sleep(node.ms);
      const outputs = node.run(inputs);
      const elapsed_ms = since() - start;
      const entry = { id: ++entryIds, run, outcome: "computed", elapsed_ms, finished_ms: Date.now(), key, outputs, logs: sheet.nodeLogs.get(node.name),
        inputs: node.inputs.filter((p) => p.source === "const").map((p) => ({ port: p.name, value: inputs[p.name] })) };
      sheet.results.set(node.name, entry);
      const hist = sheet.history.get(node.name) || [];
      hist.unshift(entry);
      sheet.history.set(node.name, hist.slice(0, 50));
      sheet.live.set(node.name, { elapsed_ms });
      bar.end_ms = since();
      counts.computed++;
      push(sheet, "node_finished", { node: node.name, elapsed_ms });
    } catch (e) {
      logLine(sheet, node.name, `failed: ${e.message}`);
      // Kept in the history like the crate's sheets do: its error and log, no outputs.
      const entry = { id: ++entryIds, run, outcome: "failed", error: e.message, attempts: 1, elapsed_ms: since() - start, finished_ms: Date.now(), key,
        outputs: [], logs: sheet.nodeLogs.get(node.name), inputs: node.inputs.filter((p) => p.source === "const").map((p) => ({ port: p.name, value: inputs[p.name] })) };
      const hist = sheet.history.get(node.name) || [];
      hist.unshift(entry);
      sheet.history.set(node.name, hist.slice(0, 50));
      sheet.live.set(node.name, { error: e.message });
      bar.end_ms = since();
      counts.failed++;
      push(sheet, "node_failed", { node: node.name, error: e.message });
    }
  };
  for (const node of order) done.set(node.name, one(node));
  await Promise.all(done.values());
  const cancelled = sheet.run.cancelled;
  sheet.run = null;
  sheet.updated_ms = Date.now();
  push(sheet, "run_finished", { run, ...counts, cancelled, elapsed_ms: since() });
  push(sheet, "state_changed", { reason: "run" });
}

// ---------------------------------------------------------------- http
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}
const bad = (m) => new HttpError(400, m);
const sheetOf = (name) => {
  const s = sheets.get(name);
  if (!s) throw new HttpError(404, `no sheet named ${JSON.stringify(name)}`);
  return s;
};
const nodeOf = (name) => {
  const n = byName.get(name);
  if (!n) throw new HttpError(404, `no node named ${JSON.stringify(name)}`);
  return n;
};
const validName = (name) => {
  if (typeof name !== "string" || !name.trim() || name.length > 200 || /[\x00-\x1f]/.test(name)) throw bad("a sheet name must be 1 to 200 printable characters");
  return name;
};

async function body(req, raw = false) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const buf = Buffer.concat(chunks);
  if (raw) return buf;
  try {
    return JSON.parse(buf.toString() || "null");
  } catch {
    throw bad("the body is not valid JSON");
  }
}

function send(res, status, data, type = "application/json") {
  const payload = type === "application/json" ? JSON.stringify(data) : data;
  res.writeHead(status, { "content-type": type, "cache-control": "no-cache" });
  res.end(payload);
}

const STATIC = { "/": ["index.html", "text/html; charset=utf-8"], "/assets/inspector.js": ["inspector.js", "text/javascript; charset=utf-8"],
  "/assets/inspector.css": ["inspector.css", "text/css; charset=utf-8"], "/favicon.svg": ["favicon.svg", "image/svg+xml"], "/favicon.ico": ["favicon.svg", "image/svg+xml"] };

async function route(req, res) {
  const url = new URL(req.url, "http://stub");
  const parts = url.pathname.split("/").slice(1).map(decodeURIComponent);
  const method = req.method;
  const host = req.headers.host || "";
  if (host !== `127.0.0.1:${server.address().port}` && host !== `localhost:${server.address().port}`) throw new HttpError(403, `host \`${host}\` is not served here`);
  if (STATIC[url.pathname] && method === "GET") {
    const [file, type] = STATIC[url.pathname];
    return send(res, 200, readFileSync(join(ASSETS, file)), type);
  }
  if (PROXY) return proxy(req, res);
  if (TOKEN && req.headers["x-daggr-token"] !== TOKEN && url.searchParams.get("token") !== TOKEN) throw new HttpError(401, "a valid token is required (see the URL printed at launch)");
  if (parts[0] === "__stub" && parts[1] === "drop") {
    for (const s of sheets.values()) for (const c of s.clients) c.destroy();
    return send(res, 200, { dropped: true });
  }
  if (parts[0] !== "api") throw new HttpError(404, "no such route");
  const [, a, b, c, d, e] = parts;
  if (a === "graph" && method === "GET") return send(res, 200, graph);
  if (a === "export" && method === "GET") {
    if (b === "mermaid") return send(res, 200, `flowchart LR\n${specs.map((n) => `  ${n.name}["${n.name}"]`).join("\n")}\n${edges.map((x) => `  ${x.from} -->|${x.type}| ${x.to}`).join("\n")}\n`, "text/plain; charset=utf-8");
    if (b === "json") return send(res, 200, graph);
    throw new HttpError(404, "no such export");
  }
  if (a === "blobs") {
    if (!b && method === "POST") {
      const bytes = await body(req, true);
      const mime = (req.headers["content-type"] || "application/octet-stream").split(";")[0];
      return send(res, 201, putBlob(bytes, mime, req.headers["x-daggr-filename"] || null));
    }
    if (b && method === "GET") {
      const blob = blobs.get(b);
      if (!blob) throw new HttpError(404, "no such blob");
      res.writeHead(200, { "content-type": url.searchParams.get("mime") || blob.mime, "accept-ranges": "bytes", "content-length": blob.bytes.length });
      return res.end(blob.bytes);
    }
  }
  if (a !== "sheets") throw new HttpError(404, "no such route");
  if (!b) {
    if (method === "GET") return send(res, 200, { sheets: [...sheets.values()].map(({ name, created_ms, updated_ms }) => ({ name, created_ms, updated_ms })), default: "default" });
    if (method === "POST") {
      const { name } = (await body(req)) || {};
      validName(name);
      if (sheets.has(name)) throw new HttpError(409, `a sheet named ${JSON.stringify(name)} exists`);
      sheets.set(name, newSheet(name));
      return send(res, 201, { name });
    }
  }
  const sheet = sheetOf(b);
  const others = () => { for (const s of sheets.values()) if (s !== sheet) push(s, "state_changed", { reason: "sheet" }); };
  if (!c && method === "DELETE") {
    if (sheets.size <= 1) throw new HttpError(409, "the last sheet cannot be deleted");
    sheets.delete(sheet.name);
    for (const cl of sheet.clients) cl.end();
    others();
    return send(res, 200, { deleted: sheet.name });
  }
  if ((c === "rename" || c === "fork") && method === "POST") {
    const { to } = (await body(req)) || {};
    validName(to);
    if (sheets.has(to)) throw new HttpError(409, `a sheet named ${JSON.stringify(to)} exists`);
    if (c === "rename") {
      sheets.delete(sheet.name);
      sheet.name = to;
      sheets.set(to, sheet);
      push(sheet, "state_changed", { reason: "sheet" });
      others();
      return send(res, 200, { name: to });
    }
    const copy = newSheet(to);
    copy.overrides = new Map(sheet.overrides);
    copy.results = new Map(sheet.results);
    copy.history = new Map([...sheet.history].map(([k, v]) => [k, [...v]]));
    copy.viewport = sheet.viewport;
    copy.positions = { ...sheet.positions };
    sheets.set(to, copy);
    others();
    return send(res, 201, { name: to });
  }
  if (c === "state" && method === "GET") return send(res, 200, state(sheet));
  if (c === "nodes" && e === "history" && method === "GET") {
    const node = nodeOf(d);
    const current = sheet.results.get(node.name);
    return send(res, 200, { entries: (sheet.history.get(node.name) || []).map(({ key, logs, ...h }) => ({ ...h, selected: h.id === current?.id, media: media(h.outputs), log_lines: logs.length })) });
  }
  if (c === "nodes" && e === "logs" && method === "GET") {
    const node = nodeOf(d);
    const entry = url.searchParams.get("entry");
    if (entry === null) return send(res, 200, { ...currentLog(sheet, node.name), entry: null, dropped: 0, last_event_id: sheet.nextId - 1 });
    const found = (sheet.history.get(node.name) || []).find((h) => String(h.id) === entry);
    if (!found) throw new HttpError(404, `no history entry ${entry} for ${node.name}`);
    return send(res, 200, { source: "entry", entry: found.id, lines: found.logs, dropped: 0, last_event_id: sheet.nextId - 1 });
  }
  if (c === "positions" && method === "POST") {
    const positions = await body(req);
    if (!positions || typeof positions !== "object" || Array.isArray(positions)) throw bad("positions must be an object of node names");
    for (const [name, p] of Object.entries(positions)) {
      if (!byName.has(name)) throw bad(`no node named \`${name}\` in this pipeline`);
      if (![p?.x, p?.y].every((n) => typeof n === "number" && Math.abs(n) <= 1e6)) throw bad(`the position of \`${name}\` must be finite numbers`);
    }
    sheet.positions = positions;
    return send(res, 200, { ok: true });
  }
  if (c === "positions" && method === "DELETE") {
    sheet.positions = {};
    return send(res, 200, { ok: true });
  }
  if (c === "run" && method === "POST") {
    const { scope, node } = (await body(req)) || {};
    if (!["all", "to", "only", "from"].includes(scope)) throw bad("scope must be all, to, only or from");
    if (scope !== "all") nodeOf(node);
    if (sheet.run) throw new HttpError(409, "a run is in progress on this sheet");
    sheet.run = { cancelled: false };
    execute(sheet, scope, node).catch((err) => {
      sheet.run = null;
      push(sheet, "run_error", { error: err.message });
    });
    return send(res, 202, { run: sheet.runs });
  }
  if (c === "cancel" && method === "POST") {
    const had = !!sheet.run;
    if (sheet.run) sheet.run.cancelled = true;
    return send(res, 200, { cancelled: had });
  }
  if (c === "inputs") {
    if (method === "POST") {
      const { node: n, port: p, value } = (await body(req)) || {};
      const node = nodeOf(n);
      const port = node.inputs.find((x) => x.name === p && x.source === "const");
      if (!port) throw bad(`${n} has no constant input ${JSON.stringify(p)}`);
      if (["integer", "number"].includes(port.widget) && typeof value !== "number") throw bad(`${p} needs a number`);
      if (port.widget === "integer" && !Number.isInteger(value)) throw bad(`${p} needs a whole number`);
      sheet.overrides.set(`${n}.${p}`, value);
      push(sheet, "state_changed", { reason: "input", node: n });
      return send(res, 200, { ok: true });
    }
    if (method === "DELETE" && d && e) {
      nodeOf(d);
      sheet.overrides.delete(`${d}.${e}`);
      push(sheet, "state_changed", { reason: "input", node: d });
      return send(res, 200, { ok: true });
    }
  }
  if ((c === "select" || c === "restore") && method === "POST") {
    const { node: n, id } = (await body(req)) || {};
    const node = nodeOf(n);
    const entry = (sheet.history.get(n) || []).find((h) => h.id === id);
    if (!entry) throw new HttpError(404, `no history entry ${id} for ${n}`);
    if (c === "select" && entry.error) throw new HttpError(409, `history entry ${id} of node \`${n}\` cannot be selected: it is the failed execution of run ${entry.run}, which has no outputs`);
    if (c === "select") {
      sheet.results.set(n, entry);
      sheet.cachedNow.delete(n);
      sheet.live.delete(n);
    } else {
      for (const i of entry.inputs) {
        const port = node.inputs.find((p) => p.name === i.port);
        if (JSON.stringify(i.value) === JSON.stringify(port.default)) sheet.overrides.delete(`${n}.${i.port}`);
        else sheet.overrides.set(`${n}.${i.port}`, i.value);
      }
    }
    push(sheet, "state_changed", { reason: c, node: n });
    return send(res, 200, { ok: true });
  }
  if (c === "viewport" && method === "POST") {
    const v = await body(req);
    if (!v || ![v.x, v.y, v.zoom].every((n) => typeof n === "number" && isFinite(n))) throw bad("viewport needs numbers x, y, zoom");
    sheet.viewport = { x: v.x, y: v.y, zoom: v.zoom };
    return send(res, 200, { ok: true });
  }
  if (c === "events" && method === "GET") {
    const last = req.headers["last-event-id"] ?? url.searchParams.get("last_event_id");
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write("retry: 1000\n\n");
    if (last != null) {
      const since = Number(last);
      if (!Number.isInteger(since)) throw bad("Last-Event-ID must be a number");
      const oldest = sheet.log[0]?.id ?? sheet.nextId;
      if (since + 1 < oldest) res.write(frame({ id: sheet.nextId - 1, event: "resync", data: {} }));
      else for (const ev of sheet.log) if (ev.id > since) res.write(frame(ev));
    }
    sheet.clients.add(res);
    const keepAlive = setInterval(() => res.write(": keep-alive\n\n"), 15000);
    req.on("close", () => {
      clearInterval(keepAlive);
      sheet.clients.delete(res);
    });
    return;
  }
  throw new HttpError(method === "GET" || method === "POST" || method === "DELETE" ? 404 : 405, "no such route");
}

function proxy(req, res) {
  const target = new URL(PROXY);
  const upstream = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
    res.writeHead(up.statusCode, up.headers);
    up.pipe(res);
  });
  upstream.on("error", (e) => (res.headersSent ? res.end() : send(res, 502, { error: `proxy: ${e.message}` })));
  res.on("close", () => upstream.destroy());
  req.pipe(upstream);
}

const server = http.createServer((req, res) => {
  route(req, res).catch((e) => {
    if (res.headersSent) return res.end();
    send(res, e instanceof HttpError ? e.status : 400, { error: e.message });
  });
});
server.listen(PORT, "127.0.0.1", () => {
  const { port } = server.address();
  const what = PROXY ? `page + proxy to ${PROXY}` : `${GRAPH}, ${specs.length} nodes`;
  console.log(`daggr inspector stub (${what}): http://127.0.0.1:${port}/${TOKEN ? `?token=${TOKEN}` : ""}`);
});
