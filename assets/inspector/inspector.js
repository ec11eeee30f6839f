// daggr inspector page: plain JavaScript, no build step, no framework.
// Cards are positioned HTML built once; edges are one SVG layer; pan and zoom are one CSS
// transform; live updates come over SSE and only touch the cards that changed.
(() => {
  "use strict";

  // ---------- api ----------
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const headers = token ? { "x-daggr-token": token } : {};
  const enc = encodeURIComponent;

  async function api(path, options = {}) {
    const init = { ...options, headers: { ...headers, ...(options.headers || {}) } };
    if (options.json !== undefined) {
      init.method = init.method || "POST";
      init.body = JSON.stringify(options.json);
      init.headers["content-type"] = "application/json";
    }
    const response = await fetch(path, init);
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
    return body;
  }
  const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "token=" + enc(token) : url);

  // ---------- state ----------
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  };
  let graph = null;
  let sheet = params.get("sheet") || null;
  let defaultSheet = "default";
  const cards = new Map(); // name -> { root, status, progress, body, error, history, ports }
  const last = new Map(); // name -> last rendered node state JSON (to skip unchanged cards)
  let view = { x: 20, y: 20, zoom: 1 };
  let events = null;
  let running = false;

  function toast(message) {
    const t = $("toast");
    t.textContent = message;
    t.classList.add("show");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.remove("show"), 4000);
  }
  const guard = (fn) => async (...args) => {
    try { await fn(...args); } catch (e) { toast(e.message); }
  };

  // ---------- theme ----------
  function applyTheme() {
    const saved = localStorage.getItem("daggr-theme");
    const dark = saved ? saved === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
    document.documentElement.dataset.theme = dark ? "dark" : "light";
    drawMinimap();
  }
  $("theme-toggle").onclick = () => {
    const dark = document.documentElement.dataset.theme !== "dark";
    localStorage.setItem("daggr-theme", dark ? "dark" : "light");
    applyTheme();
  };
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);

  // ---------- graph helpers ----------
  const nodeByName = (name) => graph.nodes.find((n) => n.name === name);
  function reach(name, forward) {
    const seen = new Set([name]);
    const stack = [name];
    while (stack.length) {
      const at = stack.pop();
      for (const e of graph.edges) {
        const [from, to] = forward ? [e.from, e.to] : [e.to, e.from];
        if (from === at && !seen.has(to)) { seen.add(to); stack.push(to); }
      }
    }
    return [...seen];
  }
  const hint = (names) => (names.length > 8 ? `${names.slice(0, 8).join(", ")} … (${names.length} nodes)` : names.join(", "));

  // ---------- canvas ----------
  const viewport = $("viewport");
  const world = $("world");
  function applyView() {
    world.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.zoom})`;
    scheduleMinimap();
    saveViewport();
  }
  const saveViewport = debounce(() => {
    if (sheet) api(`/api/sheets/${enc(sheet)}/viewport`, { json: view }).catch(() => {});
  }, 600);
  function zoomAt(factor, cx, cy) {
    const zoom = Math.min(3, Math.max(0.05, view.zoom * factor));
    const k = zoom / view.zoom;
    view = { x: cx - (cx - view.x) * k, y: cy - (cy - view.y) * k, zoom };
    applyView();
  }
  function fit() {
    if (!graph) return;
    const r = viewport.getBoundingClientRect();
    const zoom = Math.min(1.5, Math.max(0.05, Math.min((r.width - 40) / graph.width, (r.height - 40) / graph.height)));
    view = { zoom, x: (r.width - graph.width * zoom) / 2, y: Math.max(10, (r.height - graph.height * zoom) / 2) };
    applyView();
  }
  function centerOn(name) {
    const n = nodeByName(name);
    if (!n) return;
    const r = viewport.getBoundingClientRect();
    view = { ...view, x: r.width / 2 - (n.x + n.w / 2) * view.zoom, y: r.height / 2 - (n.y + n.h / 2) * view.zoom };
    applyView();
  }
  viewport.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = viewport.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  let drag = null;
  viewport.addEventListener("pointerdown", (e) => {
    if (e.target.closest(".card") || e.target === $("minimap")) return;
    drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
    viewport.classList.add("panning");
    viewport.setPointerCapture(e.pointerId);
  });
  viewport.addEventListener("pointermove", (e) => {
    if (!drag) return;
    view = { ...view, x: drag.vx + e.clientX - drag.x, y: drag.vy + e.clientY - drag.y };
    applyView();
  });
  viewport.addEventListener("pointerup", () => { drag = null; viewport.classList.remove("panning"); });
  $("fit").onclick = fit;
  $("zoom-in").onclick = () => zoomAt(1.25, viewport.clientWidth / 2, viewport.clientHeight / 2);
  $("zoom-out").onclick = () => zoomAt(0.8, viewport.clientWidth / 2, viewport.clientHeight / 2);
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select")) return;
    if (e.key === "f") fit();
    else if (e.key === "+" || e.key === "=") $("zoom-in").click();
    else if (e.key === "-") $("zoom-out").click();
    else if (e.key === "Enter") $("run-all").click();
    else if (e.key === "Escape") $("cancel").click();
  });

  // ---------- minimap ----------
  let minimapQueued = false;
  function scheduleMinimap() {
    if (minimapQueued) return;
    minimapQueued = true;
    requestAnimationFrame(() => { minimapQueued = false; drawMinimap(); });
  }
  function drawMinimap() {
    const canvas = $("minimap");
    if (!graph || !canvas) return;
    const ctx = canvas.getContext("2d");
    const s = Math.min(canvas.width / graph.width, canvas.height / graph.height);
    const css = getComputedStyle(document.documentElement);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const n of graph.nodes) {
      const status = (cards.get(n.name) || {}).statusName || "pending";
      ctx.fillStyle = css.getPropertyValue(`--${status}`).trim() || "#999";
      ctx.fillRect(n.x * s, n.y * s, Math.max(2, n.w * s), Math.max(2, n.h * s));
    }
    const r = viewport.getBoundingClientRect();
    ctx.strokeStyle = css.getPropertyValue("--accent").trim();
    ctx.lineWidth = 1.5;
    ctx.strokeRect((-view.x / view.zoom) * s, (-view.y / view.zoom) * s, (r.width / view.zoom) * s, (r.height / view.zoom) * s);
    canvas.dataset.scale = s;
  }
  $("minimap").addEventListener("pointerdown", (e) => {
    e.stopPropagation();
    const s = Number($("minimap").dataset.scale || 1);
    const r = viewport.getBoundingClientRect();
    view = { ...view, x: r.width / 2 - (e.offsetX / s) * view.zoom, y: r.height / 2 - (e.offsetY / s) * view.zoom };
    applyView();
  });

  // ---------- previews ----------
  function jsonTree(value, key) {
    if (value === null || typeof value !== "object") {
      return el("div", {}, key !== undefined ? el("span", { class: "k", text: `${key}: ` }) : null, JSON.stringify(value));
    }
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const label = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
    const details = el("details", { open: entries.length <= 6 ? true : null },
      el("summary", {}, key !== undefined ? el("span", { class: "k", text: `${key} ` }) : null, label));
    for (const [k, v] of entries.slice(0, 200)) details.append(jsonTree(v, k));
    if (entries.length > 200) details.append(el("div", { text: `… ${entries.length - 200} more` }));
    return details;
  }
  function mediaElement(m) {
    const url = withToken(m.url);
    if (m.kind === "image") return el("img", { src: url, alt: m.name || "image output", loading: "lazy" });
    if (m.kind === "audio") return el("audio", { src: url, controls: true, preload: "metadata" });
    if (m.kind === "video") return el("video", { src: url, controls: true, preload: "metadata" });
    return el("a", { href: url, download: m.name || "download", text: `⤓ ${m.name || m.mime}` });
  }
  function preview(output) {
    const box = el("div", { class: "value", "data-testid": `output-${output.port}` });
    const media = output.media || [];
    if (media.length === 1) box.append(mediaElement(media[0]));
    else if (media.length > 1) box.append(el("div", { class: "gallery" }, ...media.map(mediaElement)));
    else if (typeof output.value === "string") box.append(el("pre", { text: output.value }));
    else if (output.value === null || typeof output.value !== "object") box.append(el("pre", { text: JSON.stringify(output.value) }));
    else box.append(el("div", { class: "json" }, jsonTree(output.value)));
    return box;
  }

  // ---------- widgets ----------
  async function setInput(node, port, value) {
    await api(`/api/sheets/${enc(sheet)}/inputs`, { json: { node, port, value } });
  }
  function widget(node, port, current) {
    const commit = (parse) => guard(async (e) => { await setInput(node.name, port.name, parse(e.target)); });
    const id = `in-${node.name}-${port.name}`;
    const testid = `input-${node.name}-${port.name}`;
    switch (port.widget) {
      case "bool":
        return el("input", { id, type: "checkbox", "data-testid": testid, checked: current ? true : null, onchange: commit((t) => t.checked) });
      case "number":
      case "integer":
        return el("input", { id, type: "number", step: port.widget === "integer" ? "1" : "any", value: current, "data-testid": testid,
          onchange: commit((t) => Number(t.value)) });
      case "text":
        return el("textarea", { id, "data-testid": testid, text: current ?? "", onchange: commit((t) => t.value) });
      case "image": case "audio": case "video": case "file": {
        const accept = port.widget === "file" ? null : `${port.widget}/*`;
        return el("input", { id, type: "file", accept, "data-testid": testid, onchange: guard(async (e) => {
          const file = e.target.files[0];
          if (!file) return;
          const reference = await api("/api/blobs", { method: "POST", body: file,
            headers: { "content-type": file.type || "application/octet-stream", "x-daggr-filename": file.name } });
          await setInput(node.name, port.name, reference);
        }) });
      }
      default:
        return el("textarea", { id, "data-testid": testid, text: JSON.stringify(current), onchange: commit((t) => JSON.parse(t.value)) });
    }
  }

  // ---------- cards ----------
  function runMenu(node) {
    const upstream = reach(node.name, false);
    const downstream = reach(node.name, true);
    const item = (label, scope, names) => el("button", {
      "data-testid": `run-${scope}-${node.name}`, title: `Runs: ${hint(names)}`, text: label,
      onclick: guard(async (e) => { e.currentTarget.parentElement.remove(); await run(scope, node.name); }),
    });
    return el("div", { class: "menu", role: "menu" },
      item("Run this node", "only", [node.name]),
      item("Run to here", "to", upstream),
      item("Run from here", "from", downstream));
  }
  function buildCard(node) {
    const status = el("span", { class: "status", text: "pending" });
    const progress = el("div", { class: "progress" }, el("div"));
    const body = el("div", { class: "body" });
    const play = el("button", { class: "play", title: "Run…", "aria-label": `Run ${node.name}`, "data-testid": `play-${node.name}`, text: "▶" });
    const root = el("div", { class: "card", "data-testid": `node-${node.name}`, "data-status": "pending",
      style: `left:${node.x}px;top:${node.y}px;width:${node.w}px;min-height:${node.h}px` },
      el("header", {}, el("span", { class: "badge", text: node.kind }), el("span", { class: "name", title: node.name, text: node.name }), status, play),
      progress, body);
    play.onclick = (e) => {
      e.stopPropagation();
      const open = root.querySelector(".menu");
      document.querySelectorAll(".menu").forEach((m) => m.remove());
      if (!open) root.append(runMenu(node));
    };
    const card = { root, status, progress, body, statusName: "pending" };
    cards.set(node.name, card);
    return root;
  }
  document.addEventListener("click", (e) => { if (!e.target.closest(".menu, .play")) document.querySelectorAll(".menu").forEach((m) => m.remove()); });

  function setStatus(name, statusName, text) {
    const card = cards.get(name);
    if (!card) return;
    card.statusName = statusName;
    card.root.dataset.status = statusName;
    card.status.textContent = text || statusName;
    scheduleEdges();
    scheduleMinimap();
  }

  function renderCard(node, s) {
    const card = cards.get(node.name);
    const key = JSON.stringify(s);
    if (last.get(node.name) === key) return;
    last.set(node.name, key);
    const elapsed = s.elapsed_ms != null ? ` · ${s.elapsed_ms < 1 ? "<1" : Math.round(s.elapsed_ms)} ms` : "";
    setStatus(node.name, s.status, s.status + elapsed);
    const bar = card.progress.firstChild;
    bar.style.width = s.progress && s.progress.fraction != null ? `${Math.round(s.progress.fraction * 100)}%` : s.status === "running" ? "100%" : "0";
    const active = document.activeElement;
    if (active && card.body.contains(active) && active.matches("input, textarea")) return; // do not clobber an edit
    const rows = [];
    const inputs = new Map(s.inputs.map((i) => [i.port, i]));
    for (const port of node.inputs) {
      const label = el("label", { class: "label", for: `in-${node.name}-${port.name}`, title: `${port.name}: ${port.type}`, text: port.name });
      if (port.source === "edge") rows.push(el("div", { class: "port" }, label, el("span", { class: "edge-in", text: `← ${port.type}` })));
      else if (port.source && port.source.startsWith("generated")) rows.push(el("div", { class: "port" }, label, el("span", { class: "edge-in", text: port.source })));
      else {
        const i = inputs.get(port.name);
        rows.push(el("div", { class: "port" }, label, widget(node, port, i ? i.value : null),
          i && i.overridden ? el("button", { class: "override", title: "Back to the default", text: "↺",
            onclick: guard(() => api(`/api/sheets/${enc(sheet)}/inputs/${enc(node.name)}/${enc(port.name)}`, { method: "DELETE" })) }) : null));
      }
    }
    for (const out of s.outputs) {
      rows.push(el("div", { class: "port" }, el("span", { class: "label out", title: `${out.port}: ${out.type}`, text: out.port }), preview(out)));
    }
    if (s.error) rows.push(el("div", { class: "error", "data-testid": `error-${node.name}`, text: s.error }));
    if (s.progress && s.progress.message) rows.push(el("div", { class: "status", text: s.progress.message }));
    if (s.history && s.history.count > 0) rows.push(historyBar(node.name, s.history));
    card.body.replaceChildren(...rows);
  }

  function historyBar(name, h) {
    const step = (delta) => guard(async () => {
      const { entries } = await api(`/api/sheets/${enc(sheet)}/nodes/${enc(name)}/history`);
      const at = entries.findIndex((e) => e.selected);
      const next = entries[Math.min(entries.length - 1, Math.max(0, (at < 0 ? 0 : at) + delta))];
      if (next && !next.selected) await api(`/api/sheets/${enc(sheet)}/select`, { json: { node: name, id: next.id } });
    });
    const restore = guard(async () => {
      if (h.selected_id != null) await api(`/api/sheets/${enc(sheet)}/restore`, { json: { node: name, id: h.selected_id } });
    });
    return el("div", { class: "history", "data-testid": `history-${name}` },
      el("button", { title: "Older result", "aria-label": "Older result", text: "‹", onclick: step(1) }),
      el("span", { text: `${h.position}/${h.count}` }),
      el("button", { title: "Newer result", "aria-label": "Newer result", text: "›", onclick: step(-1) }),
      el("button", { title: "Restore the inputs that produced this result", text: "restore inputs", onclick: restore }));
  }

  // ---------- edges ----------
  let edgesQueued = false;
  function scheduleEdges() {
    if (edgesQueued) return;
    edgesQueued = true;
    requestAnimationFrame(() => { edgesQueued = false; drawEdges(); });
  }
  function portY(node, port, output) {
    const i = output ? node.inputs.length + node.outputs.findIndex((p) => p.name === port) : node.inputs.findIndex((p) => p.name === port);
    return node.y + 44 + Math.max(0, i) * 28;
  }
  function drawEdges() {
    if (!graph) return;
    const svg = $("edges");
    svg.setAttribute("width", graph.width);
    svg.setAttribute("height", graph.height);
    const paths = graph.edges.map((e) => {
      const a = nodeByName(e.from), b = nodeByName(e.to);
      const x1 = a.x + a.w, y1 = portY(a, e.from_port, true), x2 = b.x, y2 = portY(b, e.to_port, false);
      const dx = Math.max(40, (x2 - x1) / 2);
      const status = (cards.get(e.to) || {}).statusName;
      const cls = status === "stale" ? "stale" : status === "pending" ? "pending" : "";
      return `<path class="${cls}" data-from="${e.from}" data-to="${e.to}" d="M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}"><title>${e.type}</title></path>`;
    });
    svg.innerHTML = paths.join("");
  }

  // ---------- state and events ----------
  let refreshTimer = null;
  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(guard(refresh), 60);
  }
  async function refresh() {
    if (!sheet) return;
    const s = await api(`/api/sheets/${enc(sheet)}/state`);
    running = s.running;
    $("run-status").textContent = running ? "running…" : $("run-status").dataset.last || "";
    for (const n of s.nodes) {
      const node = nodeByName(n.name);
      if (node) renderCard(node, n);
    }
    renderTimeline(s.timeline);
    return s;
  }
  function connect() {
    if (events) events.close();
    events = new EventSource(withToken(`/api/sheets/${enc(sheet)}/events`));
    const on = (name, fn) => events.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    on("run_started", (d) => { running = true; $("run-status").textContent = `running… (${d.nodes} nodes)`; });
    on("node_started", (d) => setStatus(d.node, "running", "running"));
    on("node_progress", (d) => {
      const card = cards.get(d.node);
      if (card && d.fraction != null) card.progress.firstChild.style.width = `${Math.round(d.fraction * 100)}%`;
      if (card && d.message) card.status.textContent = d.message.slice(0, 40);
    });
    on("node_cached", (d) => { setStatus(d.node, "cached", "cached"); refreshSoon(); });
    on("node_finished", (d) => { setStatus(d.node, "done", `done · ${Math.round(d.elapsed_ms)} ms`); refreshSoon(); });
    on("node_failed", (d) => { setStatus(d.node, "failed", "failed"); refreshSoon(); });
    on("node_skipped", (d) => setStatus(d.node, "skipped", "skipped"));
    on("run_finished", (d) => {
      running = false;
      const text = `${d.cancelled ? "cancelled" : "done"}: ${d.computed} computed, ${d.cached} cached` +
        (d.failed ? `, ${d.failed} failed` : "") + ` in ${Math.round(d.elapsed_ms)} ms`;
      $("run-status").dataset.last = text;
      $("run-status").textContent = text;
      refreshSoon();
    });
    for (const name of ["state_changed", "resync", "node_partial", "run_error"]) on(name, () => refreshSoon());
    events.onopen = () => refreshSoon(); // after a reconnect, catch up
  }
  async function run(scope, node) {
    await api(`/api/sheets/${enc(sheet)}/run`, { json: { scope, node } });
  }
  $("run-all").onclick = guard(() => run("all"));
  $("cancel").onclick = guard(() => api(`/api/sheets/${enc(sheet)}/cancel`, { method: "POST" }));

  // ---------- timeline ----------
  let timelineData = [];
  function renderTimeline(bars) {
    timelineData = bars || [];
    const box = $("timeline");
    if (box.hidden) return;
    const end = Math.max(1, ...timelineData.map((b) => b.end_ms ?? b.start_ms));
    box.replaceChildren(el("div", { class: "status", text: timelineData.length ? `last run: ${Math.round(end)} ms` : "no run yet" }),
      ...timelineData.map((b) => el("div", { class: "bar-row" }, el("span", { class: "n", text: b.node }),
        el("span", { class: "track" }, el("span", { class: b.cached ? "bar cached" : "bar",
          title: `${b.node}: ${b.cached ? "cached" : Math.round((b.end_ms ?? end) - b.start_ms) + " ms"}`,
          style: `left:${(b.start_ms / end) * 100}%;width:${(((b.end_ms ?? end) - b.start_ms) / end) * 100}%` })))));
  }
  $("timeline-toggle").onclick = () => { $("timeline").hidden = !$("timeline").hidden; renderTimeline(timelineData); };

  // ---------- export ----------
  function download(name, text, type) {
    const a = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
    document.body.append(a);
    a.click();
    a.remove();
  }
  const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  function svgExport() {
    const css = getComputedStyle(document.documentElement);
    const color = (v) => css.getPropertyValue(v).trim();
    const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${graph.width}" height="${graph.height}" viewBox="0 0 ${graph.width} ${graph.height}" font-family="sans-serif" font-size="13">`,
      `<rect width="100%" height="100%" fill="${color("--bg")}"/>`];
    for (const p of $("edges").querySelectorAll("path")) {
      parts.push(`<path d="${p.getAttribute("d")}" fill="none" stroke="${p.classList.contains("stale") ? color("--edge-stale") : color("--edge-fresh")}" stroke-width="2"/>`);
    }
    for (const n of graph.nodes) {
      const status = (cards.get(n.name) || {}).statusName || "pending";
      parts.push(`<g><rect x="${n.x}" y="${n.y}" width="${n.w}" height="${n.h}" rx="8" fill="${color("--panel")}" stroke="${color("--border")}"/>`,
        `<rect x="${n.x}" y="${n.y}" width="5" height="${n.h}" fill="${color(`--${status}`)}"/>`,
        `<text x="${n.x + 12}" y="${n.y + 20}" fill="${color("--text")}" font-weight="bold">${esc(n.name)}</text>`,
        `<text x="${n.x + 12}" y="${n.y + 38}" fill="${color("--muted")}">${esc(n.kind)} · ${esc(status)}</text>`);
      n.outputs.forEach((o, i) => parts.push(`<text x="${n.x + 12}" y="${n.y + 58 + 16 * i}" fill="${color("--muted")}">→ ${esc(o.name)}: ${esc(o.type)}</text>`));
      parts.push("</g>");
    }
    parts.push("</svg>");
    download(`${graph.name}.svg`, parts.join("\n"), "image/svg+xml");
  }
  $("export-svg").onclick = guard(async () => svgExport());
  $("export-mermaid").onclick = guard(async () => download(`${graph.name}.mmd`, await api("/api/export/mermaid"), "text/plain"));

  // ---------- sheets ----------
  async function loadSheets() {
    const list = await api("/api/sheets");
    defaultSheet = list.default;
    const select = $("sheet-select");
    select.replaceChildren(...list.sheets.map((s) => el("option", { value: s.name, text: s.name })));
    if (!sheet || !list.sheets.some((s) => s.name === sheet)) sheet = list.sheets.some((s) => s.name === defaultSheet) ? defaultSheet : (list.sheets[0] || {}).name;
    select.value = sheet;
  }
  async function switchSheet(name) {
    sheet = name;
    last.clear();
    const url = new URL(location.href);
    url.searchParams.set("sheet", name);
    history.replaceState(null, "", url);
    await loadSheets();
    connect();
    const s = await refresh();
    if (s && s.viewport) { view = s.viewport; applyView(); }
  }
  $("sheet-select").onchange = guard((e) => switchSheet(e.target.value));
  $("sheet-new").onclick = guard(async () => {
    const name = prompt("New sheet name");
    if (name) { await api("/api/sheets", { json: { name } }); await switchSheet(name); }
  });
  $("sheet-fork").onclick = guard(async () => {
    const to = prompt("Name of the copy", `${sheet} copy`);
    if (to) { await api(`/api/sheets/${enc(sheet)}/fork`, { json: { to } }); await switchSheet(to); }
  });
  $("sheet-rename").onclick = guard(async () => {
    const to = prompt("Rename sheet to", sheet);
    if (to && to !== sheet) { await api(`/api/sheets/${enc(sheet)}/rename`, { json: { to } }); await switchSheet(to); }
  });
  $("sheet-delete").onclick = guard(async () => {
    if (!confirm(`Delete sheet "${sheet}" and its history?`)) return;
    await api(`/api/sheets/${enc(sheet)}`, { method: "DELETE" });
    sheet = null;
    await loadSheets();
    if (sheet) await switchSheet(sheet);
  });

  // ---------- start ----------
  function debounce(fn, ms) {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  }
  async function start() {
    applyTheme();
    graph = await api("/api/graph");
    document.title = `${graph.name} · daggr`;
    $("title").textContent = graph.name;
    const fragment = document.createDocumentFragment();
    for (const node of graph.nodes) fragment.append(buildCard(node));
    $("cards").append(fragment);
    drawEdges();
    await loadSheets();
    connect();
    const s = await refresh();
    const focus = params.get("node");
    if (s && s.viewport && !focus) { view = s.viewport; applyView(); } else fit();
    if (focus && cards.has(focus)) {
      cards.get(focus).root.classList.add("highlight");
      if (view.zoom < 0.6) { view.zoom = 1; }
      centerOn(focus);
    }
    document.body.dataset.ready = "true";
  }
  start().catch((e) => toast(`cannot load the pipeline: ${e.message}`));
})();
