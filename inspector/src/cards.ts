// Node cards. Every node has a model (its status, its last state, its explanation); only the
// cards near the visible part of the canvas have DOM (`cull`), so a graph of thousands of
// nodes costs what is on screen. A card's DOM is built when it comes near the view and
// fed its model, then only the parts that changed are touched, keyed by node name. Port
// rows have a fixed height so edges can be anchored without measuring.
import { api } from "./api";
import type { Box } from "./canvas";
import { el, guard } from "./dom";
import { firstLine, ms } from "./format";
import type { GraphIndex } from "./graph";
import { HistoryBar } from "./history";
import { LogView } from "./logs";
import { partialPreview, richPreview, summarize } from "./previews";
import type { LogLine, NodeSpec, NodeState, OutputState, Progress, Status } from "./types";
import { WhyLoader } from "./why";
import { makeWidget, type Widget } from "./widgets";

/** Card geometry shared with the CSS (inspector.css: .card header, .ports, .port) and the
 * server's layout (src/inspector/layout.rs: card_height). */
export const HEAD = 31; // header height incl. its border
export const PAD = 4; // padding above the first port row
export const ROW = 26; // port row height

/** The y of a port's anchor, in world coordinates. */
export function portY(node: NodeSpec, port: string, side: "in" | "out"): number {
  const i = side === "in" ? node.inputs.findIndex((p) => p.name === port) : node.inputs.length + node.outputs.findIndex((p) => p.name === port);
  return node.y + 1 + HEAD + PAD + Math.max(0, i) * ROW + ROW / 2;
}

export interface CardHooks {
  sheet(): string;
  /** A card's status changed (edges, minimap and run counters follow). */
  statusChanged(name: string, status: Status): void;
  openRunMenu(name: string, anchor: HTMLElement): void;
  select(name: string | null): void;
  /** The open card's height changed (the cards below it make room). */
  openHeight(name: string, height: number | null): void;
}

/** A card's DOM, while it is mounted. */
interface View {
  root: HTMLElement;
  statusText: HTMLElement;
  bar: HTMLElement;
  widgets: Map<string, { widget: Widget; row: HTMLElement; reset: HTMLButtonElement }>;
  outRows: Map<string, { row: HTMLElement; value: HTMLElement }>;
  preview: HTMLElement;
  errorSlot: HTMLElement;
  partialSlot: HTMLElement;
  richSlot: HTMLElement;
  why: HTMLElement;
  history: HistoryBar;
  logs: LogView;
  keys: { inputs?: string; outputs?: string; error?: string; history?: string; why?: string };
}

/** What the page knows of a node, mounted or not. */
interface Model {
  node: NodeSpec;
  status: Status;
  elapsed: number | null;
  startedAt: number;
  progress: Progress | null;
  error: { text: string; kind: "error" | "skipped" } | null;
  partial: unknown;
  state: NodeState | null;
  planned: boolean;
  view: View | null;
}

const LABELS: Record<Status, string> = {
  pending: "pending",
  running: "running",
  cached: "cached",
  done: "done",
  failed: "failed",
  stale: "stale",
  skipped: "skipped",
};

/** World pixels mounted around the visible area while the view moves, so a small pan shows no empty cards. */
const MOUNT_MARGIN = 300;
/** Cards further than this from the view are unmounted (hysteresis: no churn at the edge). */
const UNMOUNT_MARGIN = 1600;
/** Cards built per frame at most while the view moves (the nearest first): building is
 * what costs, and a frame must stay short; the rest follow in the next frames. */
const BUILDS_PER_FRAME = 6;
/** Once the view rests, a ring this many view sizes wide is built ahead, a batch per frame. */
const REST_RING = 0.5;
const BUILDS_AT_REST = 30;

const intersects = (n: NodeSpec, r: Box, margin: number) =>
  n.x < r.x + r.w + margin && n.x + n.w > r.x - margin && n.y < r.y + r.h + margin && n.y + n.h > r.y - margin;

export class Cards {
  private models = new Map<string, Model>();
  private mounted = new Set<Model>();
  private selected: Model | null = null;
  private ticker = 0;
  private readonly wiredOut: Set<string>;
  private readonly why: WhyLoader;
  private visible: Box | null = null;
  private openObserver: ResizeObserver;

  constructor(private readonly container: HTMLElement, private readonly idx: GraphIndex, private readonly hooks: CardHooks) {
    this.wiredOut = new Set(idx.graph.edges.map((e) => `${e.from}\n${e.from_port}`));
    this.why = new WhyLoader(hooks.sheet);
    for (const node of idx.graph.nodes) {
      this.models.set(node.name, {
        node, status: "pending", elapsed: null, startedAt: 0, progress: null, error: null, partial: undefined, state: null, planned: false, view: null,
      });
    }
    container.replaceChildren();
    container.addEventListener("click", (e) => {
      const card = (e.target as Element).closest<HTMLElement>(".card");
      if (card && !(e.target as Element).closest(".play")) hooks.select(card.dataset.name!);
    });
    this.openObserver = new ResizeObserver(() => {
      const open = this.selected?.view?.root;
      if (open) hooks.openHeight(this.selected!.node.name, open.offsetHeight);
    });
  }

  has(name: string): boolean {
    return this.models.has(name);
  }

  status(name: string): Status {
    return this.models.get(name)?.status || "pending";
  }

  /** The card's element, if it is mounted. */
  element(name: string): HTMLElement | undefined {
    return this.models.get(name)?.view?.root;
  }

  /** Mounts the cards near `visible` (world coordinates) and unmounts those far from it;
   * `null` (the far zoom, drawn on a canvas) unmounts all but the selected one. While the
   * view moves a few cards are built per call, nearest first; `resting`: the view has
   * stopped, so a wider ring is built ahead. Returns whether cards are left to build (call
   * again next frame). */
  cull(visible: Box | null, resting = false): boolean {
    this.visible = visible;
    this.why.hold(!resting);
    for (const m of this.mounted) {
      if (m === this.selected || m.view!.root.contains(document.activeElement)) continue;
      if (!visible || !intersects(m.node, visible, UNMOUNT_MARGIN)) this.unmount(m);
    }
    if (!visible) return false;
    const margin = resting ? Math.max(MOUNT_MARGIN, REST_RING * Math.max(visible.w, visible.h)) : MOUNT_MARGIN;
    const [cx, cy] = [visible.x + visible.w / 2, visible.y + visible.h / 2];
    const wanted: [number, Model][] = [];
    for (const m of this.models.values()) {
      if (!m.view && intersects(m.node, visible, margin)) wanted.push([Math.hypot(m.node.x + m.node.w / 2 - cx, m.node.y + m.node.h / 2 - cy), m]);
    }
    wanted.sort((a, b) => a[0] - b[0]);
    const fragment = document.createDocumentFragment();
    for (const [, m] of wanted.slice(0, resting ? BUILDS_AT_REST : BUILDS_PER_FRAME)) fragment.append(this.mount(m));
    if (fragment.firstChild) this.container.append(fragment);
    return wanted.length > (resting ? BUILDS_AT_REST : BUILDS_PER_FRAME);
  }

  /** The number of cards with DOM (for tests and measurements). */
  get mountedCount(): number {
    return this.mounted.size;
  }

  private mount(m: Model): HTMLElement {
    const view = this.build(m.node);
    m.view = view;
    this.mounted.add(m);
    view.root.classList.toggle("in-plan", m.planned);
    this.renderStatus(m, true);
    if (m.status === "running") this.renderProgress(m);
    this.renderError(m);
    if (m.partial !== undefined) this.renderPartial(m);
    if (m.state) this.renderState(m);
    this.renderWhy(m);
    return view.root;
  }

  private unmount(m: Model): void {
    m.view?.root.remove();
    m.view = null;
    this.mounted.delete(m);
  }

  private build(node: NodeSpec): View {
    const statusText = el("span", { class: "status", text: "pending", role: "status" });
    const play = el("button", {
      class: "play",
      "aria-haspopup": "menu",
      "aria-expanded": "false",
      "aria-label": `Run options for ${node.name}`,
      title: "Run…",
      "data-testid": `play-${node.name}`,
      text: "▶",
    });
    play.addEventListener("click", (e) => {
      e.stopPropagation();
      this.hooks.openRunMenu(node.name, play);
    });
    const bar = el("div");
    const ports = el("div", { class: "ports" });
    const widgets: View["widgets"] = new Map();
    const wiredIn = new Map(this.idx.into.get(node.name)!.map((e) => [e.to_port, e]));
    node.inputs.forEach((port, i) => {
      const id = `in-${node.index}-${i}`;
      const row = el("div", { class: "port in", "data-port": port.name });
      const edge = wiredIn.get(port.name);
      if (edge) row.classList.add("wired");
      if (port.source === "const") {
        const widget = makeWidget(node, port, id, (value) => api.setInput(this.hooks.sheet(), node.name, port.name, value).then(() => undefined));
        const reset = el("button", {
          class: "reset icon",
          hidden: true,
          title: "Back to the pipeline default",
          "aria-label": `Reset ${node.name}.${port.name} to its default`,
          "data-testid": `reset-${node.name}-${port.name}`,
          text: "↺",
          onclick: guard(() => api.resetInput(this.hooks.sheet(), node.name, port.name)),
        });
        row.append(el("label", { class: "label", for: id, title: `${port.name}: ${port.type}`, text: port.name }), widget.root, reset);
        widgets.set(port.name, { widget, row, reset });
      } else {
        const from = edge ? `← ${edge.from}${edge.from_port !== "output" && edge.from_port !== "value" ? `.${edge.from_port}` : ""}` : port.source?.startsWith("generated:") ? `⚙ ${port.source.slice(10)}` : `← ${port.source || "edge"}`;
        row.append(el("span", { class: "label", title: `${port.name}: ${port.type}`, text: port.name }), el("span", { class: "from", title: `${port.type}`, text: from }));
      }
      ports.append(row);
    });
    const outRows: View["outRows"] = new Map();
    for (const port of node.outputs) {
      const value = el("span", { class: "value empty", "data-testid": `output-${port.name}`, text: port.type });
      const row = el("div", { class: this.wiredOut.has(`${node.name}\n${port.name}`) ? "port out wired" : "port out", "data-port": port.name },
        el("span", { class: "label", title: `${port.name}: ${port.type}`, text: port.name }), value);
      outRows.set(port.name, { row, value });
      ports.append(row);
    }
    const errorSlot = el("div", { class: "slot" });
    const partialSlot = el("div", { class: "slot" });
    const richSlot = el("div", { class: "slot rich-slot" });
    const preview = el("div", { class: "preview scroll empty" }, errorSlot, partialSlot, richSlot);
    const editable = node.inputs.some((p) => p.source === "const");
    const logs = new LogView(node.name, () => this.hooks.sheet(), () => this.status(node.name));
    // A failed run picked from the history: its log shows in this card, opened if need be.
    const history = new HistoryBar(node.name, () => this.hooks.sheet(), editable, (entry) => {
      this.hooks.select(node.name);
      logs.showEntry(entry);
    });
    const why = el("span", { class: "why", "data-testid": `why-${node.name}` });
    const root = el("div", {
      class: node.preview === false ? "card compact" : "card",
      "data-testid": `node-${node.name}`,
      "data-name": node.name,
      "data-status": "pending",
      "data-kind": node.kind,
      role: "group",
      "aria-label": `${node.kind} node ${node.name}`,
    },
      el("header", {},
        el("span", { class: `badge k-${node.kind}`, text: node.kind }),
        el("span", { class: "name", title: node.name, text: node.name }),
        statusText,
        play),
      el("div", { class: "progress" }, bar),
      ports,
      preview,
      logs.root,
      el("footer", { class: "card-foot" }, why, history.root));
    root.style.left = `${node.x}px`;
    root.style.top = `${node.y}px`;
    root.style.width = `${node.w}px`;
    root.style.setProperty("--h", `${node.h}px`);
    return { root, statusText, bar, widgets, outRows, preview, errorSlot, partialSlot, richSlot, why, history, logs, keys: {} };
  }

  /** Forget what was rendered (another sheet is shown next). */
  reset(): void {
    this.why.clear();
    for (const m of this.models.values()) {
      m.state = null;
      m.partial = undefined;
      if (m.view) {
        m.view.keys = {};
        m.view.partialSlot.replaceChildren();
      }
    }
    this.selected?.view?.logs.reload();
  }

  /** A `node_log` event: the open card shows the line. */
  logLine(name: string, line: LogLine, id: number): void {
    this.models.get(name)?.view?.logs.live(id, line);
  }

  /** A node's first attempt started: its log starts over. */
  logRestart(name: string, id: number): void {
    this.models.get(name)?.view?.logs.live(id, null);
  }

  setStatus(name: string, status: Status, elapsed?: number | null): void {
    const m = this.models.get(name);
    if (!m) return;
    if (elapsed !== undefined) m.elapsed = elapsed;
    const changed = m.status !== status;
    if (changed) {
      m.status = status;
      if (status === "running") {
        m.startedAt = performance.now();
        m.progress = null;
      } else m.partial = undefined;
    }
    this.renderStatus(m, changed);
    if (changed) {
      if (status === "running") this.tick();
      this.renderWhy(m);
      this.hooks.statusChanged(name, status);
    }
  }

  private renderStatus(m: Model, changed: boolean): void {
    const v = m.view;
    if (!v) return;
    if (changed) {
      v.root.dataset.status = m.status;
      v.root.classList.toggle("indeterminate", m.status === "running" && m.progress?.fraction == null);
      v.bar.style.width = "";
      if (m.status !== "running") v.partialSlot.replaceChildren();
      this.updatePreviewVisibility(v);
    }
    this.writeStatusText(m, v);
  }

  /** Compact: a coloured dot plus the elapsed time when done, the status word otherwise. */
  private writeStatusText(m: Model, v: View): void {
    let text: string = LABELS[m.status];
    let title = text;
    if (m.status === "running") {
      const p = m.progress;
      const pct = p?.fraction != null ? `${Math.round(p.fraction * 100)}% · ` : "";
      text = `${pct}${ms(performance.now() - m.startedAt)}`;
      title = `running${p?.message ? `: ${p.message}` : ""}`;
    } else if (m.elapsed != null && (m.status === "done" || m.status === "failed")) {
      text = ms(m.elapsed);
      title = `${m.status} in ${text}`;
    } else if (m.elapsed != null && m.status === "stale") {
      title = `stale (took ${ms(m.elapsed)})`;
    }
    v.statusText.textContent = text;
    v.statusText.title = title;
    v.root.setAttribute("aria-label", `${m.node.kind} node ${m.node.name}: ${title}`);
  }

  /** Refreshes the elapsed time of running cards twice a second while any runs. */
  private tick(): void {
    if (this.ticker) return;
    this.ticker = window.setInterval(() => {
      let any = false;
      for (const m of this.models.values()) {
        if (m.status !== "running") continue;
        any = true;
        if (m.view) this.writeStatusText(m, m.view);
      }
      if (!any) {
        clearInterval(this.ticker);
        this.ticker = 0;
      }
    }, 500);
  }

  setProgress(name: string, progress: Progress | null): void {
    const m = this.models.get(name);
    if (!m) return;
    m.progress = progress;
    this.renderProgress(m);
  }

  private renderProgress(m: Model): void {
    const v = m.view;
    if (!v) return;
    const f = m.progress?.fraction;
    v.root.classList.toggle("indeterminate", m.status === "running" && f == null);
    v.bar.style.width = f != null ? `${Math.round(Math.max(0, Math.min(1, f)) * 100)}%` : "";
    this.writeStatusText(m, v);
  }

  setPartial(name: string, value: unknown): void {
    const m = this.models.get(name);
    if (!m || m.status !== "running") return;
    m.partial = value;
    this.renderPartial(m);
  }

  private renderPartial(m: Model): void {
    if (!m.view) return;
    m.view.partialSlot.replaceChildren(partialPreview(m.partial));
    this.updatePreviewVisibility(m.view);
  }

  setError(name: string, error: string | null, kind: "error" | "skipped" = "error"): void {
    const m = this.models.get(name);
    if (!m) return;
    m.error = error ? { text: error, kind } : null;
    this.renderError(m);
    this.renderWhy(m);
  }

  private renderError(m: Model): void {
    const v = m.view;
    if (!v) return;
    const e = m.error;
    const key = e ? `${e.kind}:${e.text}` : "";
    if (v.keys.error === key) return;
    v.keys.error = key;
    v.errorSlot.replaceChildren(
      e ? el("div", { class: e.kind === "error" ? "error" : "skipped-because", role: e.kind === "error" ? "alert" : null, "data-testid": `error-${m.node.name}`, text: e.kind === "error" ? e.text : `skipped: ${e.text}` }) : "",
    );
    this.updatePreviewVisibility(v);
  }

  /** Applies the node's part of a state snapshot. `keepStatus`: a newer event already set it. */
  apply(ns: NodeState, keepStatus: boolean): void {
    const m = this.models.get(ns.name);
    if (!m) return;
    if (!keepStatus) {
      this.setStatus(ns.name, ns.status, ns.elapsed_ms);
      if (ns.status === "running") this.setProgress(ns.name, ns.progress);
      this.setError(ns.name, ns.error || (ns.status === "skipped" ? ns.skipped_because || "upstream did not finish" : null), ns.error ? "error" : "skipped");
    }
    m.state = ns;
    this.renderState(m);
  }

  private renderState(m: Model): void {
    const v = m.view;
    const ns = m.state;
    if (!v || !ns) return;
    const inputs = JSON.stringify(ns.inputs);
    if (v.keys.inputs !== inputs) {
      v.keys.inputs = inputs;
      for (const i of ns.inputs) {
        const w = v.widgets.get(i.port);
        if (!w) continue;
        w.widget.set(i.value);
        w.row.classList.toggle("overridden", i.overridden);
        w.reset.hidden = !i.overridden;
      }
    }
    const outputs = JSON.stringify(ns.outputs);
    if (v.keys.outputs !== outputs) {
      v.keys.outputs = outputs;
      this.renderOutputs(m, v, ns.outputs);
    }
    const history = JSON.stringify(ns.history);
    if (v.keys.history !== history) {
      // Another result is current (a new one, or one picked from the history): show its
      // log. While the node runs, live lines keep the log current instead.
      if (v.keys.history !== undefined && m.status !== "running") v.logs.reload();
      v.keys.history = history;
      v.history.update(ns.history);
      this.renderWhy(m);
    }
  }

  private renderOutputs(m: Model, v: View, outputs: OutputState[]): void {
    const byPort = new Map(outputs.map((o) => [o.port, o]));
    const rich: HTMLElement[] = [];
    for (const [port, { value }] of v.outRows) {
      const out = byPort.get(port);
      if (!out) {
        value.textContent = m.node.outputs.find((p) => p.name === port)?.type || "";
        value.className = "value empty";
        value.title = "no result yet";
        continue;
      }
      const s = summarize(out);
      value.textContent = s.text;
      value.title = s.title;
      value.className = s.rich ? "value has-rich" : "value";
      if (s.rich) {
        const r = richPreview(out);
        if (r) rich.push(r);
      }
    }
    v.richSlot.replaceChildren(...rich);
    v.partialSlot.replaceChildren();
    this.updatePreviewVisibility(v);
  }

  /** The footer line: why the current result was computed or reused, or what the status
   * means when there is no result to explain. */
  private renderWhy(m: Model): void {
    const v = m.view;
    if (!v) return;
    const resultId = m.state?.history.selected_id ?? null;
    let text = "";
    let kind = m.status as string;
    if (m.status === "running") text = "running…";
    else if (m.status === "failed") text = m.error ? `failed: ${firstLine(m.error.text)}` : "failed";
    else if (m.status === "skipped") text = m.error ? `skipped: ${firstLine(m.error.text)}` : "skipped";
    else if (m.status === "stale") text = "stale: an input changed since this result";
    else if (m.status === "pending") text = resultId == null ? "not run yet" : "";
    else if (resultId != null) {
      const hit = m.status === "cached";
      const why = this.why.cached(m.node.name, resultId, hit);
      if (why) {
        text = why.summary;
        kind = why.outcome?.startsWith("cached") ? "cached" : "computed";
      } else {
        text = m.status === "cached" ? "cached" : "computed";
        this.why.load(m.node.name, resultId, hit, () => this.renderWhy(m));
      }
    } else if (m.status === "cached" || m.status === "done") text = m.status === "cached" ? "cached" : "";
    const key = `${kind}\n${text}`;
    if (v.keys.why === key) return;
    v.keys.why = key;
    v.why.textContent = text;
    v.why.title = text;
    v.why.dataset.kind = kind;
  }

  private updatePreviewVisibility(v: View): void {
    const empty = !v.errorSlot.firstChild && !v.partialSlot.firstChild && !v.richSlot.firstChild;
    v.preview.classList.toggle("empty", empty);
  }

  /** Marks the cards a run would touch (hover hint of the run menu); `null` clears. */
  markPlan(names: string[] | null): void {
    const plan = new Set(names || []);
    this.container.classList.toggle("planning", !!names);
    for (const m of this.models.values()) {
      const planned = plan.has(m.node.name);
      if (m.planned === planned) continue;
      m.planned = planned;
      m.view?.root.classList.toggle("in-plan", planned);
    }
  }

  /** The selected card is outlined and shows all its content (and stays mounted). */
  select(name: string | null): void {
    const next = (name && this.models.get(name)) || null;
    if (next === this.selected) return;
    const previous = this.selected;
    if (previous?.view) {
      previous.view.root.classList.remove("highlight", "open");
      previous.view.logs.close();
      this.openObserver.unobserve(previous.view.root);
    }
    this.selected = next;
    if (previous) this.hooks.openHeight(previous.node.name, null);
    if (next) {
      if (!next.view) this.container.append(this.mount(next));
      const v = next.view!;
      v.root.classList.add("highlight", "open");
      v.logs.open();
      this.openObserver.observe(v.root);
    }
    if (previous && previous.view && this.visible && !intersects(previous.node, this.visible, UNMOUNT_MARGIN)) this.unmount(previous);
  }

  /** Moves the cards to their nodes' current positions. */
  place(names: Iterable<string>): void {
    for (const name of names) {
      const m = this.models.get(name);
      if (!m?.view) continue;
      m.view.root.style.left = `${m.node.x}px`;
      m.view.root.style.top = `${m.node.y}px`;
    }
  }
}
