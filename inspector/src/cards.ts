// Node cards. Every node has a model (its status, its last state, its explanation); only the
// cards near the visible part of the canvas have DOM (`cull`), so a graph of thousands of
// nodes costs what is on screen. A card's DOM is built when it comes near the view and
// fed its model, then only the parts that changed are touched, keyed by node name. Port
// rows have a fixed height so edges can be anchored without measuring.
import { api } from "./api";
import type { Box } from "./canvas";
import { el, guard } from "./dom";
import { firstLine, ms } from "./format";
import type { GraphIndex, GroupInfo } from "./graph";
import { HistoryBar } from "./history";
import { LogView } from "./logs";
import { ChoiceVariants, MapItems, mapItems } from "./parts";
import { partialPreview, richPreview, summarize } from "./previews";
import type { ItemPart, LogLine, NodeSpec, NodeState, OutputState, PortSpec, Progress, Status } from "./types";
import { WhyLoader } from "./why";
import { makeWidget, type Widget } from "./widgets";

/** Card geometry shared with the CSS (inspector.css: .card header, .ports, .port) and the
 * server's layout (src/inspector/layout.rs: card_height). */
export const HEAD = 31; // header height incl. its border
export const PAD = 4; // padding above the first port row
export const ROW = 26; // port row height

/** Rows a text area takes (layout.rs `TEXTAREA_ROWS`). */
const TEXTAREA_ROWS = 3;

/** The rows a port takes: one, or more for a text area (layout.rs `port_rows`). */
export function rowSpan(port: PortSpec): number {
  return port.widget === "textarea" ? TEXTAREA_ROWS : 1;
}

/** The y of a port's anchor (the middle of its row), in world coordinates. */
export function portY(node: NodeSpec, port: string, side: "in" | "out"): number {
  let rows = 0;
  let span = 1;
  let found = false;
  const walk = (ports: PortSpec[]) => {
    for (const p of ports) {
      span = rowSpan(p);
      if (p.name === port) return (found = true);
      rows += span;
    }
    return false;
  };
  if (side === "out") {
    for (const p of node.inputs) rows += rowSpan(p);
    walk(node.outputs);
  } else walk(node.inputs);
  if (!found) [rows, span] = [side === "in" ? 0 : rows, 1];
  return node.y + 1 + HEAD + PAD + rows * ROW + (span * ROW) / 2;
}

export interface CardHooks {
  sheet(): string;
  /** A card's status changed (edges, minimap and run counters follow). */
  statusChanged(name: string, status: Status): void;
  openRunMenu(name: string, anchor: HTMLElement): void;
  select(name: string | null): void;
  /** The open card's height changed (the cards below it make room). */
  openHeight(name: string, height: number | null): void;
  /** Runs a map again for its failed items (its other items are cache hits). */
  rerun(name: string): Promise<void>;
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
  /** None on a group card (its members are inputs: no history or log worth a card). */
  history: HistoryBar | null;
  logs: LogView | null;
  /** A map's item chips, a choice's variants. */
  items: MapItems | null;
  variants: ChoiceVariants | null;
  keys: { inputs?: string; outputs?: string; error?: string; history?: string; why?: string; items?: string; variants?: string };
}

/** What a group card knows of one of its members. */
interface Member {
  status: Status;
  state: NodeState | null;
  error: string | null;
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
  /** A group card: the group and its members (by name, in row order). */
  group: GroupInfo | null;
  members: Map<string, Member>;
  /** A map: its items (live while it runs, else the current result's) and their outputs;
   * while it runs, how many items it had before. */
  items: ItemPart[];
  values: unknown[];
  expected: number | null;
  /** The items came from this page's live events (a map that fails its node has no result,
   * so after a failed run its items are only known from them). */
  itemsLive: boolean;
}

/** A group card's status: the most pressing of its members'. */
const GROUP_ORDER: Status[] = ["running", "failed", "stale", "skipped", "pending", "done", "cached"];
function groupStatus(members: Map<string, Member>): Status {
  let best = GROUP_ORDER.length - 1;
  for (const m of members.values()) best = Math.min(best, GROUP_ORDER.indexOf(m.status));
  return GROUP_ORDER[best];
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
      const group = idx.groups.get(node.name) || null;
      const members = new Map<string, Member>((group?.members || []).map((n) => [n.name, { status: "pending", state: null, error: null }]));
      this.models.set(node.name, {
        node, status: "pending", elapsed: null, startedAt: 0, progress: null, error: null, partial: undefined, state: null, planned: false, view: null,
        group, members, items: [], values: [], expected: null, itemsLive: false,
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

  /** The model showing the server's node `name`, and the member it is when that is a group card. */
  private resolve(name: string): { m: Model; member: Member | null } | null {
    const key = this.idx.memberOf.get(name);
    const m = this.models.get(key ?? name);
    if (!m) return null;
    return { m, member: key ? m.members.get(name) || null : null };
  }

  /** A card's status (a group card's: the most pressing of its members'); a grouped input's own. */
  status(name: string): Status {
    const r = this.resolve(name);
    return (r?.member ? r.member.status : r?.m.status) || "pending";
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
    const view = m.group ? this.buildGroup(m, m.group) : this.build(m.node);
    m.view = view;
    this.mounted.add(m);
    view.root.classList.toggle("in-plan", m.planned);
    this.renderStatus(m, true);
    if (m.status === "running") this.renderProgress(m);
    this.renderError(m);
    if (m.partial !== undefined) this.renderPartial(m);
    if (m.state || m.group) this.renderState(m);
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
      if (rowSpan(port) > 1) {
        row.classList.add("tall");
        row.style.height = `${rowSpan(port) * ROW}px`;
      }
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
    const items = node.kind === "map"
      ? new MapItems(node, () => this.hooks.rerun(node.name), (k) => api.runItem(this.hooks.sheet(), node.name, k).then(() => undefined))
      : null;
    const variants = node.kind === "choice" && node.variants?.length
      ? new ChoiceVariants(node, (v) => api.setInput(this.hooks.sheet(), node.name, "variant", v).then(() => undefined))
      : null;
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
      items?.root,
      variants?.root,
      preview,
      logs.root,
      el("footer", { class: "card-foot" }, why, history.root));
    root.style.left = `${node.x}px`;
    root.style.top = `${node.y}px`;
    root.style.width = `${node.w}px`;
    root.style.setProperty("--h", `${node.h}px`);
    return { root, statusText, bar, widgets, outRows, preview, errorSlot, partialSlot, richSlot, why, history, logs, items, variants, keys: {} };
  }

  /** A group of pipeline inputs as one card: a row per member with its editor (edges start
   * at the row), the group's name as the title. Editing a member sets that input only. */
  private buildGroup(m: Model, group: GroupInfo): View {
    const { node } = m;
    const statusText = el("span", { class: "status", text: "pending", role: "status" });
    const bar = el("div");
    const ports = el("div", { class: "ports" });
    const widgets: View["widgets"] = new Map();
    group.members.forEach((member, i) => {
      const row = el("div", { class: "port member", "data-port": member.name, "data-testid": `member-${member.name}` });
      const span = rowSpan(node.outputs[i]);
      if (span > 1) {
        row.classList.add("tall");
        row.style.height = `${span * ROW}px`;
      }
      const port = member.inputs.find((p) => p.source === "const");
      const type = member.outputs[0]?.type || "";
      const id = `in-${member.index}-0`;
      if (port) {
        const widget = makeWidget(member, port, id, (value) => api.setInput(this.hooks.sheet(), member.name, port.name, value).then(() => undefined));
        const reset = el("button", {
          class: "reset icon",
          hidden: true,
          title: "Back to the pipeline default",
          "aria-label": `Reset ${member.name} to its default`,
          "data-testid": `reset-${member.name}-${port.name}`,
          text: "↺",
          onclick: guard(() => api.resetInput(this.hooks.sheet(), member.name, port.name)),
        });
        row.append(el("label", { class: "label", for: id, title: `${member.name}: ${type}`, text: member.name }), widget.root, reset);
        widgets.set(member.name, { widget, row, reset });
      } else {
        row.append(el("span", { class: "label", title: `${member.name}: ${type}`, text: member.name }), el("span", { class: "from", text: type }));
      }
      ports.append(row);
    });
    const why = el("span", { class: "why", "data-testid": `why-${node.name}` });
    const errorSlot = el("div", { class: "slot" });
    const preview = el("div", { class: "preview scroll empty" }, errorSlot);
    const root = el("div", {
      class: "card compact group",
      "data-testid": `node-${node.name}`,
      "data-name": node.name,
      "data-group": group.name,
      "data-status": "pending",
      "data-kind": "group",
      role: "group",
      "aria-label": `input group ${group.name}`,
    },
      el("header", {},
        el("span", { class: "badge k-input", text: "inputs" }),
        el("span", { class: "name", title: `${group.name}: ${group.members.map((n) => n.name).join(", ")}`, text: group.name }),
        statusText),
      el("div", { class: "progress" }, bar),
      ports,
      preview,
      el("footer", { class: "card-foot" }, why));
    root.style.left = `${node.x}px`;
    root.style.top = `${node.y}px`;
    root.style.width = `${node.w}px`;
    root.style.setProperty("--h", `${node.h}px`);
    return {
      root, statusText, bar, widgets, outRows: new Map(), preview, errorSlot, partialSlot: el("div"), richSlot: el("div"), why,
      history: null, logs: null, items: null, variants: null, keys: {},
    };
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
    this.selected?.view?.logs?.reload();
  }

  /** A `node_log` event: the open card shows the line. */
  logLine(name: string, line: LogLine, id: number): void {
    this.models.get(name)?.view?.logs?.live(id, line);
  }

  /** A node's first attempt started: its log starts over. */
  logRestart(name: string, id: number): void {
    this.models.get(name)?.view?.logs?.live(id, null);
  }

  /** An `item_finished` event: a map's item is done (computed, cached or failed). */
  itemFinished(name: string, index: number, outcome: string, error: string | null, total: number | null): void {
    const m = this.models.get(name);
    if (!m || m.node.kind !== "map" || !Number.isInteger(index) || index < 0) return;
    // The event says how many items the map has: a first run shows k/N too.
    if (total !== null && Number.isInteger(total) && total > index) m.expected = total;
    while (m.items.length <= index) m.items.push({ outcome: "running" });
    m.items[index] = { outcome, error };
    if (m.view?.items) {
      m.view.items.finish(index, outcome, error, m.expected);
      m.view.keys.items = undefined;
    }
  }

  setStatus(name: string, status: Status, elapsed?: number | null): void {
    const r = this.resolve(name);
    if (!r) return;
    if (r.member) {
      // A grouped input: the card shows the most pressing of its members' statuses.
      r.member.status = status;
      this.setModelStatus(r.m, groupStatus(r.m.members), null);
      this.renderWhy(r.m);
    } else this.setModelStatus(r.m, status, elapsed);
  }

  private setModelStatus(m: Model, status: Status, elapsed?: number | null): void {
    if (elapsed !== undefined) m.elapsed = elapsed;
    const changed = m.status !== status;
    if (changed) {
      m.status = status;
      if (status === "running") {
        m.startedAt = performance.now();
        m.progress = null;
        if (m.node.kind === "map") {
          // Every item waits again; `item_finished` events fill them in.
          m.expected = m.items.length || null;
          m.itemsLive = true;
          m.items = m.items.map(() => ({ outcome: "running" }));
          m.values = [];
          if (m.view?.items) {
            m.view.items.show(m.items, m.values, true, m.expected);
            m.view.keys.items = undefined;
          }
        }
      } else {
        m.partial = undefined;
        // The map finished: its live items are its outcome (their values come with the state).
        if (m.node.kind === "map" && m.view?.items) {
          m.view.items.show(m.items, m.values);
          m.view.keys.items = undefined;
        }
      }
    }
    this.renderStatus(m, changed);
    if (changed) {
      if (status === "running") this.tick();
      this.renderWhy(m);
      this.hooks.statusChanged(m.node.name, status);
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
    if (!m || m.group) return;
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
    const r = this.resolve(name);
    if (!r) return;
    const m = r.m;
    if (r.member) {
      // A group card shows its members' errors, each under the member's name.
      r.member.error = error;
      const errors = [...m.members].filter(([, s]) => s.error).map(([n, s]) => `${n}: ${s.error}`);
      error = errors.join("\n") || null;
      kind = "error";
    }
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
    const r = this.resolve(ns.name);
    if (!r) return;
    const m = r.m;
    if (!keepStatus) {
      this.setStatus(ns.name, ns.status, ns.elapsed_ms);
      if (ns.status === "running") this.setProgress(ns.name, ns.progress);
      this.setError(ns.name, ns.error || (ns.status === "skipped" ? ns.skipped_because || "upstream did not finish" : null), ns.error ? "error" : "skipped");
    }
    if (r.member) r.member.state = ns;
    else m.state = ns;
    // A running map's chips are live (events), and so are a failed one's (a failed node has
    // no result); otherwise they are the current result's.
    const keepLive = m.status === "running" || (m.status === "failed" && m.itemsLive);
    if (m.node.kind === "map" && !keepLive) {
      ({ items: m.items, values: m.values } = mapItems(m.node, ns));
      m.itemsLive = false;
    }
    this.renderState(m);
  }

  private renderState(m: Model): void {
    if (m.group) return this.renderGroupState(m, m.group);
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
    if (v.items) {
      const running = m.status === "running";
      const items = `${running}\n${JSON.stringify(m.items)}\n${v.keys.outputs}`;
      if (v.keys.items !== items) {
        v.keys.items = items;
        v.items.show(m.items, m.values, running, m.expected);
      }
    }
    if (v.variants) {
      const selected = ns.inputs.find((i) => i.port === "variant")?.value;
      const result = ns.outputs.length > 0;
      const variants = JSON.stringify([selected, ns.parts, result, ns.stale]);
      if (v.keys.variants !== variants) {
        v.keys.variants = variants;
        v.variants.update(selected, ns.parts, result, ns.stale);
      }
    }
    const history = JSON.stringify(ns.history);
    if (v.keys.history !== history) {
      // Another result is current (a new one, or one picked from the history): show its
      // log. While the node runs, live lines keep the log current instead.
      if (v.keys.history !== undefined && m.status !== "running") v.logs?.reload();
      v.keys.history = history;
      v.history?.update(ns.history);
    }
    // Also when only the reason a result is stale changed (the line is keyed: cheap).
    this.renderWhy(m);
  }

  /** A group card: each member's value in its editor, its reset when overridden. */
  private renderGroupState(m: Model, group: GroupInfo): void {
    const v = m.view;
    if (!v) return;
    const states = group.members.map((n) => m.members.get(n.name)?.state?.inputs || null);
    const key = JSON.stringify(states);
    if (v.keys.inputs === key) return;
    v.keys.inputs = key;
    group.members.forEach((n, i) => {
      const w = v.widgets.get(n.name);
      const input = states[i]?.[0];
      if (!w || !input) return;
      w.widget.set(input.value);
      w.row.classList.toggle("overridden", input.overridden);
      w.reset.hidden = !input.overridden;
    });
    this.renderWhy(m);
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
    if (m.group) {
      // A group card: how many inputs, how many edited, which are stale.
      const members = [...m.members.values()];
      const edited = members.filter((s) => s.state?.inputs[0]?.overridden).length;
      const stale = [...m.members].filter(([, s]) => s.status === "stale").map(([n]) => n);
      text = `${members.length} inputs${edited ? ` · ${edited} edited` : ""}${stale.length ? ` · changed: ${stale.join(", ")}` : ""}`;
      kind = "group";
    } else if (m.status === "running") text = "running…";
    else if (m.status === "failed") text = m.error ? `failed: ${firstLine(m.error.text)}` : "failed";
    else if (m.status === "skipped") text = m.error ? `skipped: ${firstLine(m.error.text)}` : "skipped";
    else if (m.status === "stale") text = `stale: ${m.state?.stale_because || "an input changed since this result"}`;
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
      previous.view.logs?.close();
      this.openObserver.unobserve(previous.view.root);
    }
    this.selected = next;
    if (previous) this.hooks.openHeight(previous.node.name, null);
    if (next) {
      if (!next.view) this.container.append(this.mount(next));
      const v = next.view!;
      v.root.classList.add("highlight", "open");
      v.logs?.open();
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
