// Node cards: built once per graph, then only the parts that changed are touched, keyed by
// node name. Port rows have a fixed height so edges can be anchored without measuring.
import { api } from "./api";
import { el, guard } from "./dom";
import { ms } from "./format";
import type { GraphIndex } from "./graph";
import { HistoryBar } from "./history";
import { LogView } from "./logs";
import { partialPreview, richPreview, summarize } from "./previews";
import type { LogLine, NodeSpec, NodeState, OutputState, Progress, Status } from "./types";
import { makeWidget, type Widget } from "./widgets";

/** Card geometry shared with the CSS (inspector.css: .card header, .ports, .port). */
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
}

interface Card {
  node: NodeSpec;
  root: HTMLElement;
  statusText: HTMLElement;
  bar: HTMLElement;
  widgets: Map<string, { widget: Widget; row: HTMLElement; reset: HTMLButtonElement }>;
  outRows: Map<string, { row: HTMLElement; value: HTMLElement }>;
  preview: HTMLElement;
  errorSlot: HTMLElement;
  partialSlot: HTMLElement;
  richSlot: HTMLElement;
  history: HistoryBar;
  logs: LogView;
  status: Status;
  elapsed: number | null;
  startedAt: number;
  progress: Progress | null;
  keys: { inputs?: string; outputs?: string; error?: string; history?: string };
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

export class Cards {
  private cards = new Map<string, Card>();
  private planned: Card[] = [];
  private selected: Card | null = null;
  private ticker = 0;
  private readonly wiredOut: Set<string>;

  constructor(private readonly container: HTMLElement, private readonly idx: GraphIndex, private readonly hooks: CardHooks) {
    this.wiredOut = new Set(idx.graph.edges.map((e) => `${e.from}\n${e.from_port}`));
    const fragment = document.createDocumentFragment();
    for (const node of idx.graph.nodes) fragment.append(this.build(node));
    container.replaceChildren(fragment);
    container.addEventListener("click", (e) => {
      const card = (e.target as Element).closest<HTMLElement>(".card");
      if (card && !(e.target as Element).closest(".play")) hooks.select(card.dataset.name!);
    });
  }

  has(name: string): boolean {
    return this.cards.has(name);
  }

  status(name: string): Status {
    return this.cards.get(name)?.status || "pending";
  }

  element(name: string): HTMLElement | undefined {
    return this.cards.get(name)?.root;
  }

  private build(node: NodeSpec): HTMLElement {
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
    const widgets: Card["widgets"] = new Map();
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
    const outRows: Card["outRows"] = new Map();
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
    const root = el("div", {
      class: "card",
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
      history.root);
    root.style.left = `${node.x}px`;
    root.style.top = `${node.y}px`;
    root.style.width = `${node.w}px`;
    root.style.setProperty("--h", `${node.h}px`);
    this.cards.set(node.name, {
      node, root, statusText, bar, widgets, outRows, preview, errorSlot, partialSlot, richSlot, history, logs,
      status: "pending", elapsed: null, startedAt: 0, progress: null, keys: {},
    });
    return root;
  }

  /** Forget what was rendered (another sheet is shown next). */
  reset(): void {
    for (const card of this.cards.values()) {
      card.keys = {};
      card.partialSlot.replaceChildren();
    }
    this.selected?.logs.reload();
  }

  /** A `node_log` event: the open card shows the line. */
  logLine(name: string, line: LogLine, id: number): void {
    this.cards.get(name)?.logs.live(id, line);
  }

  /** A node's first attempt started: its log starts over. */
  logRestart(name: string, id: number): void {
    this.cards.get(name)?.logs.live(id, null);
  }

  setStatus(name: string, status: Status, elapsed?: number | null): void {
    const card = this.cards.get(name);
    if (!card) return;
    if (elapsed !== undefined) card.elapsed = elapsed;
    const changed = card.status !== status;
    if (changed) {
      card.status = status;
      card.root.dataset.status = status;
      if (status === "running") {
        card.startedAt = performance.now();
        card.progress = null;
        card.bar.style.width = "";
        card.root.classList.add("indeterminate");
        this.tick();
      } else {
        card.root.classList.remove("indeterminate");
        card.bar.style.width = "";
      }
      if (status !== "running") card.partialSlot.replaceChildren();
      this.updatePreviewVisibility(card);
      this.hooks.statusChanged(name, status);
    }
    this.writeStatusText(card);
  }

  /** Compact: a coloured dot plus the elapsed time when done, the status word otherwise. */
  private writeStatusText(card: Card): void {
    let text: string = LABELS[card.status];
    let title = text;
    if (card.status === "running") {
      const p = card.progress;
      const pct = p?.fraction != null ? `${Math.round(p.fraction * 100)}% · ` : "";
      text = `${pct}${ms(performance.now() - card.startedAt)}`;
      title = `running${p?.message ? `: ${p.message}` : ""}`;
    } else if (card.elapsed != null && (card.status === "done" || card.status === "failed")) {
      text = ms(card.elapsed);
      title = `${card.status} in ${text}`;
    } else if (card.elapsed != null && card.status === "stale") {
      title = `stale (took ${ms(card.elapsed)})`;
    }
    card.statusText.textContent = text;
    card.statusText.title = title;
    card.root.setAttribute("aria-label", `${card.node.kind} node ${card.node.name}: ${title}`);
  }

  /** Refreshes the elapsed time of running cards twice a second while any runs. */
  private tick(): void {
    if (this.ticker) return;
    this.ticker = window.setInterval(() => {
      let any = false;
      for (const card of this.cards.values()) {
        if (card.status === "running") {
          any = true;
          this.writeStatusText(card);
        }
      }
      if (!any) {
        clearInterval(this.ticker);
        this.ticker = 0;
      }
    }, 500);
  }

  setProgress(name: string, progress: Progress | null): void {
    const card = this.cards.get(name);
    if (!card) return;
    card.progress = progress;
    const f = progress?.fraction;
    card.root.classList.toggle("indeterminate", card.status === "running" && f == null);
    card.bar.style.width = f != null ? `${Math.round(Math.max(0, Math.min(1, f)) * 100)}%` : "";
    this.writeStatusText(card);
  }

  setPartial(name: string, value: unknown): void {
    const card = this.cards.get(name);
    if (!card || card.status !== "running") return;
    card.partialSlot.replaceChildren(partialPreview(value));
    this.updatePreviewVisibility(card);
  }

  setError(name: string, error: string | null, kind: "error" | "skipped" = "error"): void {
    const card = this.cards.get(name);
    if (!card) return;
    const key = error ? `${kind}:${error}` : "";
    if (card.keys.error === key) return;
    card.keys.error = key;
    card.errorSlot.replaceChildren(
      error ? el("div", { class: kind === "error" ? "error" : "skipped-because", role: kind === "error" ? "alert" : null, "data-testid": `error-${name}`, text: kind === "error" ? error : `skipped: ${error}` }) : "",
    );
    this.updatePreviewVisibility(card);
  }

  /** Applies the node's part of a state snapshot. `keepStatus`: a newer event already set it. */
  apply(ns: NodeState, keepStatus: boolean): void {
    const card = this.cards.get(ns.name);
    if (!card) return;
    if (!keepStatus) {
      this.setStatus(ns.name, ns.status, ns.elapsed_ms);
      if (ns.status === "running") this.setProgress(ns.name, ns.progress);
      this.setError(ns.name, ns.error || (ns.status === "skipped" ? ns.skipped_because || "upstream did not finish" : null), ns.error ? "error" : "skipped");
    }
    const inputs = JSON.stringify(ns.inputs);
    if (card.keys.inputs !== inputs) {
      card.keys.inputs = inputs;
      for (const i of ns.inputs) {
        const w = card.widgets.get(i.port);
        if (!w) continue;
        w.widget.set(i.value);
        w.row.classList.toggle("overridden", i.overridden);
        w.reset.hidden = !i.overridden;
      }
    }
    const outputs = JSON.stringify(ns.outputs);
    if (card.keys.outputs !== outputs) {
      card.keys.outputs = outputs;
      this.renderOutputs(card, ns.outputs);
    }
    const history = JSON.stringify(ns.history);
    if (card.keys.history !== history) {
      // Another result is current (a new one, or one picked from the history): show its
      // log. While the node runs, live lines keep the log current instead.
      if (card.keys.history !== undefined && card.status !== "running") card.logs.reload();
      card.keys.history = history;
      card.history.update(ns.history);
    }
  }

  private renderOutputs(card: Card, outputs: OutputState[]): void {
    const byPort = new Map(outputs.map((o) => [o.port, o]));
    const rich: HTMLElement[] = [];
    for (const [port, { value }] of card.outRows) {
      const out = byPort.get(port);
      if (!out) {
        value.textContent = card.node.outputs.find((p) => p.name === port)?.type || "";
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
    card.richSlot.replaceChildren(...rich);
    card.partialSlot.replaceChildren();
    this.updatePreviewVisibility(card);
  }

  private updatePreviewVisibility(card: Card): void {
    const empty = !card.errorSlot.firstChild && !card.partialSlot.firstChild && !card.richSlot.firstChild;
    card.preview.classList.toggle("empty", empty);
  }

  /** Marks the cards a run would touch (hover hint of the run menu); `null` clears. */
  markPlan(names: string[] | null): void {
    for (const c of this.planned) c.root.classList.remove("in-plan");
    this.planned = [];
    this.container.classList.toggle("planning", !!names);
    if (!names) return;
    for (const n of names) {
      const c = this.cards.get(n);
      if (c) {
        c.root.classList.add("in-plan");
        this.planned.push(c);
      }
    }
  }

  /** The selected card is outlined and shows all its content. */
  select(name: string | null): void {
    const next = (name && this.cards.get(name)) || null;
    if (next === this.selected) return;
    if (this.selected) {
      this.selected.root.classList.remove("highlight", "open");
      this.selected.logs.close();
    }
    this.selected = next;
    if (next) {
      next.root.classList.add("highlight", "open");
      next.logs.open();
    }
  }

  /** Moves the cards to their nodes' current positions. */
  place(names: Iterable<string>): void {
    for (const name of names) {
      const card = this.cards.get(name);
      if (!card) continue;
      card.root.style.left = `${card.node.x}px`;
      card.root.style.top = `${card.node.y}px`;
    }
  }
}
