// Wiring: load the graph, the sheets and the state; build the canvas once; apply SSE deltas
// as they come; refetch the state (debounced) after bursts; deep links ?sheet=…&node=….
import { api, ApiError } from "./api";
import { Batches } from "./batches";
import { Canvas } from "./canvas";
import { Cards } from "./cards";
import { $, debounce, el, guard, onFrame, toast } from "./dom";
import { Edges } from "./edges";
import { type Connection, type EventName, LiveEvents } from "./events";
import { exportMermaid, exportSvg } from "./export";
import { FarView } from "./far";
import { ms } from "./format";
import { type GraphIndex, indexGraph, shown } from "./graph";
import { Layout } from "./layout";
import { Minimap } from "./minimap";
import { isOpen } from "./popover";
import { openRunMenu } from "./runmenu";
import { Sheets } from "./sheets";
import { initTheme } from "./theme";
import { Timeline } from "./timeline";
import type { Position, Scope, SheetState, Status } from "./types";

const params = new URLSearchParams(location.search);
let sheet = "";
let running = false;
let minimap: Minimap | null = null;
let farView: FarView | null = null;
/** Per node, the id of the newest status event applied (a state snapshot older than it must not undo it). */
const statusEventId = new Map<string, number>();
const partials = new Map<string, unknown>();
const runCount = { total: 0, finished: 0 };

initTheme($("theme-toggle"), () => {
  minimap?.readColors();
  farView?.readColors();
});

/** A sheet's stored positions as the page's cards take them: a group card sits where its
 * members were put (they are stored under each member's name, which the server knows). */
function shownPositions(idx: GraphIndex, positions: Record<string, Position>): Record<string, Position> {
  const out: Record<string, Position> = {};
  for (const [name, at] of Object.entries(positions)) {
    const key = shown(idx, name);
    if (!out[key] || key === name) out[key] = at;
  }
  return out;
}

function storedPositions(idx: GraphIndex, positions: Record<string, Position>): Record<string, Position> {
  const out: Record<string, Position> = {};
  for (const [name, at] of Object.entries(positions)) {
    const group = idx.groups.get(name);
    if (group) for (const m of group.members) out[m.name] = at;
    else out[name] = at;
  }
  return out;
}

function setUrl(changes: Record<string, string | null>): void {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null) url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  history.replaceState(null, "", url);
}

function showConnection(state: Connection): void {
  const dot = $("live");
  dot.dataset.state = state;
  dot.title = state === "live" ? "Live updates connected" : state === "connecting" ? "Connecting to live updates…" : "Live updates lost: retrying";
}

function setRunStatus(text: string): void {
  onFrame("run-status", () => {
    const box = $("run-status");
    box.textContent = text;
    box.title = text;
  });
}

function setRunning(value: boolean): void {
  running = value;
  ($("run-all") as HTMLButtonElement).disabled = value;
  ($("cancel") as HTMLButtonElement).disabled = !value;
  document.body.classList.toggle("is-running", value);
}

async function start(): Promise<void> {
  // The sheet list and the first sheet's state load while the graph (the largest answer) does.
  const graphLoad = api.graph();
  const listLoad = api.sheets();
  const wantedSheet = params.get("sheet");
  const firstState = listLoad.then((list) => {
    const name = wantedSheet && list.sheets.some((s) => s.name === wantedSheet) ? wantedSheet : list.default;
    return api.state(name).then((state) => ({ name, state }));
  });
  firstState.catch(() => {}); // a failure shows when it is awaited
  // The graph as shown: each group of inputs is one node (graph.ts).
  const idx = indexGraph(await graphLoad);
  const graph = idx.graph;
  // Where a big graph's load time goes (tests/browser/many.mjs reports these marks).
  performance.mark("daggr:graph");
  document.title = `${graph.name} · daggr`;
  $("title").textContent = graph.name;

  const viewport = $("viewport");
  const canvas = new Canvas(viewport, $("world"), () => graph);
  const layout: Layout = new Layout(idx, {
    moved(names) {
      cards.place(names);
      edges.moveNodes(names);
      edges.resize();
      minimap?.schedule();
      farView?.invalidate();
    },
    dropped: () => saveLayout(),
  });
  const edges = new Edges($("edges") as unknown as SVGSVGElement, idx, layout);
  let selected: string | null = null;
  const cards: Cards = new Cards($("cards"), idx, {
    sheet: () => sheet,
    statusChanged(name, status) {
      edges.setStatus(name, status);
      minimap?.schedule();
      farView?.invalidate();
    },
    openRunMenu: (name, anchor) =>
      openRunMenu(anchor, name, idx, { running, run, mark: (names) => cards.markPlan(names) }),
    select: (name) => select(name, false),
    openHeight(name, height) {
      if (layout.makeRoom(name, height)) edges.reroute();
    },
    rerun: (name) => run("only", name),
  });
  minimap = new Minimap($("minimap") as HTMLCanvasElement, idx, canvas, (n) => cards.status(n));
  farView = new FarView($("far") as HTMLCanvasElement, idx, canvas, edges, (n) => cards.status(n), () => selected);
  // What has DOM follows the view: cards and edge paths near it, or the far canvas. Cards
  // are built a few per frame while the view moves, and further ahead once it rests.
  let resting = true;
  const cull = () =>
    onFrame("cull", () => {
      const far = canvas.far;
      farView!.setActive(far);
      const visible = far ? null : canvas.visibleWorld();
      const more = cards.cull(visible, resting);
      edges.cull(visible);
      farView!.schedule();
      document.body.dataset.cards = String(cards.mountedCount);
      if (more) cull();
    });
  const rest = debounce(() => {
    resting = true;
    cull();
  }, 200);
  canvas.onChange(() => {
    resting = false;
    cull();
    rest();
  });
  layout.bindDrag($("cards"), canvas);
  const resetLayout = $("reset-layout") as HTMLButtonElement;
  // Shown only when a card was dragged: the toolbar has no room to spare.
  const showLayout = () => (resetLayout.hidden = !Object.keys(layout.manual).length);
  function saveLayout(): void {
    showLayout();
    void api.savePositions(sheet, storedPositions(idx, layout.manual)).catch((e) => toast(`The node positions were not saved: ${e instanceof Error ? e.message : String(e)}`));
  }
  const timeline = new Timeline($("timeline"), $("timeline-toggle"), (n) => cards.status(n), (n) => select(n, true));
  const batches = new Batches($("batches"), $("batches-toggle"));

  function select(name: string | null, center: boolean): void {
    // A grouped input (a timeline row, a deep link) is shown by its group's card.
    name = name && shown(idx, name);
    selected = name;
    cards.select(name);
    farView?.invalidate();
    setUrl({ node: name });
    const node = name ? idx.byName.get(name) : undefined;
    if (node && center) canvas.centerOn(node);
  }

  async function run(scope: Scope, node?: string): Promise<void> {
    await api.run(sheet, scope, node);
    setRunning(true);
    setRunStatus(scope === "all" ? "starting…" : `starting (${scope === "only" ? "this node" : `${scope} ${node}`})…`);
  }

  // ---- state ----
  function applyState(s: SheetState): void {
    setRunning(s.running);
    if (s.running && !runCount.total) setRunStatus("running…");
    for (const ns of s.nodes) cards.apply(ns, (statusEventId.get(ns.name) ?? -1) > s.last_event_id);
    timeline.update(s.timeline, s.running);
    minimap?.schedule();
  }

  let inFlight = false;
  let again = false;
  async function refresh(): Promise<void> {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    const forSheet = sheet;
    try {
      const s = await api.state(forSheet);
      if (forSheet === sheet) applyState(s);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404 && forSheet === sheet) {
        toast(`Sheet "${forSheet}" is gone`);
        await sheets.reload();
        await switchSheet(sheets.defaultName);
        return;
      } else toast(e instanceof Error ? e.message : String(e));
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        refreshSoon();
      }
    }
  }
  const refreshSoon = debounce(() => void refresh(), 80, 400);

  // ---- live events: queued, applied once per frame ----
  let queue: [EventName, any, number][] = [];
  function onEvent(name: EventName, data: any, id: number): void {
    queue.push([name, data, id]);
    onFrame("events", () => {
      const batch = queue;
      queue = [];
      for (const [n, d, i] of batch) applyEvent(n, d, i);
    });
  }
  const nodeStatus = (node: string, status: Status, id: number, elapsed?: number | null) => {
    statusEventId.set(node, id);
    cards.setStatus(node, status, elapsed);
  };
  const finishedOne = () => {
    runCount.finished++;
    if (running && runCount.total) setRunStatus(`running · ${runCount.finished}/${runCount.total}`);
  };
  function applyEvent(name: EventName, d: any, id: number): void {
    switch (name) {
      case "run_started":
        setRunning(true);
        runCount.total = d.nodes || 0;
        runCount.finished = 0;
        setRunStatus(`running · 0/${runCount.total}`);
        break;
      case "node_started":
        nodeStatus(d.node, "running", id);
        cards.setError(d.node, null);
        if ((d.attempt ?? 1) === 1) cards.logRestart(d.node, id);
        break;
      case "node_log":
        cards.logLine(d.node, { unix_ms: Number(d.unix_ms) || Date.now(), line: String(d.line ?? "") }, id);
        break;
      case "node_progress":
        cards.setProgress(d.node, { fraction: d.fraction ?? null, message: d.message });
        break;
      case "node_partial":
        partials.set(d.node, d.value);
        onFrame("partials", () => {
          for (const [n, v] of partials) cards.setPartial(n, v);
          partials.clear();
        });
        break;
      case "item_finished":
        cards.itemFinished(
          d.node, Number(d.item), String(d.outcome ?? ""), d.error == null ? null : String(d.error),
          d.total == null ? null : Number(d.total),
        );
        break;
      case "node_cached":
        nodeStatus(d.node, "cached", id, null);
        cards.setError(d.node, null);
        finishedOne();
        refreshSoon();
        break;
      case "node_finished":
        nodeStatus(d.node, "done", id, d.elapsed_ms);
        finishedOne();
        refreshSoon();
        break;
      case "node_failed":
        nodeStatus(d.node, "failed", id);
        cards.setError(d.node, String(d.error ?? "failed"));
        finishedOne();
        refreshSoon();
        break;
      case "node_skipped":
        nodeStatus(d.node, "skipped", id);
        cards.setError(d.node, String(d.because ?? "upstream did not finish"), "skipped");
        finishedOne();
        break;
      case "run_finished": {
        setRunning(false);
        runCount.total = 0;
        const parts = [`${d.computed ?? 0} computed`];
        if (d.cached) parts.push(`${d.cached} cached`);
        if (d.failed) parts.push(`${d.failed} failed`);
        if (d.skipped) parts.push(`${d.skipped} skipped`);
        setRunStatus(`${d.cancelled ? "Cancelled" : "Done"} in ${ms(d.elapsed_ms)}: ${parts.join(", ")}`);
        refreshSoon();
        break;
      }
      case "run_error":
        toast(`Run failed: ${d.error ?? "unknown error"}`);
        refreshSoon();
        break;
      case "state_changed":
        if (d.reason === "sheet") void sheets.reload().catch(() => {});
        refreshSoon();
        break;
      case "resync":
        refreshSoon();
        break;
    }
  }
  const live = new LiveEvents(onEvent, showConnection, refreshSoon);

  // ---- sheets ----
  const sheets = new Sheets($("sheet-select") as HTMLSelectElement, () => sheet, async (name) => void (await switchSheet(name)));
  async function switchSheet(name: string, first = false, prefetched?: SheetState): Promise<SheetState | null> {
    sheet = name;
    live.close();
    statusEventId.clear();
    runCount.total = 0;
    cards.reset();
    setRunStatus("");
    setUrl({ sheet: name });
    sheets.render();
    const [s] = await Promise.all([prefetched ?? api.state(name), first ? null : sheets.reload()]);
    if (sheet !== name) return null;
    applyState(s);
    layout.apply(shownPositions(idx, s.positions || {}));
    showLayout();
    if (!first && s.viewport) canvas.set(s.viewport);
    live.connect(name);
    return s;
  }

  const saveViewport = debounce(() => sheet && void api.saveViewport(sheet, canvas.view).catch(() => {}), 800);
  canvas.onChange((_v, byUser) => {
    if (!byUser) return;
    saveViewport();
    document.body.classList.add("moved"); // the "drag to pan" hint has done its job
  });

  // ---- toolbar ----
  const click = (id: string, fn: () => unknown) => $(id).addEventListener("click", guard(fn));
  click("run-all", () => run("all"));
  click("cancel", async () => {
    const { cancelled } = await api.cancel(sheet);
    if (!cancelled) toast("Nothing to cancel", "info");
  });
  click("fit", () => canvas.fit());
  click("reset-layout", async () => {
    layout.reset();
    showLayout();
    await api.resetPositions(sheet);
  });
  click("zoom-in", () => canvas.zoomStep(1.25));
  click("zoom-out", () => canvas.zoomStep(0.8));
  click("export-svg", () => exportSvg(idx, edges, $("edges") as unknown as SVGSVGElement, (n) => cards.element(n), (n) => cards.status(n)));
  click("export-mermaid", () => exportMermaid(graph.name));
  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || isOpen()) return;
    if ((e.target as HTMLElement).closest("input, textarea, select, button, a, [contenteditable], dialog")) return;
    if (e.key === "Enter" && !running) void guard(() => run("all"))();
    else if (e.key === "Escape" && running) $("cancel").click();
    else if (e.key === "t") timeline.toggle();
    else if (e.key === "b") batches.toggle();
    else return;
    e.preventDefault();
  });
  // A click on the empty canvas (not the end of a drag) clears the selection.
  let down = { x: 0, y: 0 };
  viewport.addEventListener("pointerdown", (e) => (down = { x: e.clientX, y: e.clientY }));
  viewport.addEventListener("click", (e) => {
    const t = e.target as Element;
    if (t.closest(".card, #minimap") || Math.hypot(e.clientX - down.x, e.clientY - down.y) > 4) return;
    // On the far canvas a click on a tile zooms to that node.
    const hit = canvas.far ? farView?.hit(e.clientX, e.clientY) : null;
    select(hit ? hit.name : null, !!hit);
  });

  // ---- first load ----
  performance.mark("daggr:built");
  sheets.show(await listLoad);
  if (wantedSheet && !sheets.has(wantedSheet)) toast(`No sheet "${wantedSheet}": showing "${sheets.defaultName}"`);
  const first = await firstState;
  performance.mark("daggr:state-loaded");
  const state = await switchSheet(first.name, true, first.state);
  performance.mark("daggr:state-applied");
  const focus = params.get("node") && shown(idx, params.get("node")!);
  if (focus && idx.byName.has(focus)) select(focus, true);
  else {
    if (focus) toast(`No node "${focus}" in this pipeline`);
    if (state?.viewport) canvas.set(state.viewport);
    else canvas.overview();
  }
  document.body.dataset.ready = "true";
}

function fatal(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  $("viewport").append(
    el("div", { class: "fatal", role: "alert" },
      el("strong", { text: "Cannot load the pipeline" }),
      el("p", { text: message }),
      el("button", { class: "primary", text: "Retry", onclick: () => location.reload() })),
  );
}

start().catch(fatal);
