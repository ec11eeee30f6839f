// Edges: one SVG, one cubic Bézier <path> per edge, built once. A status change only swaps
// the classes of the edges arriving at that node: fresh (downstream up to date), stale
// (downstream stale), active (downstream running), idle (no result yet). A moved node
// redraws only the edges at its ends.
import { onFrame, svg } from "./dom";
import type { GraphIndex } from "./graph";
import { portY } from "./cards";
import type { EdgeSpec, Status } from "./types";

const STATE_CLASS: Record<Status, string> = {
  pending: "idle",
  skipped: "idle",
  failed: "idle",
  running: "active",
  stale: "stale",
  cached: "fresh",
  done: "fresh",
};

export function edgePath(x1: number, y1: number, x2: number, y2: number): string {
  const dx = Math.max(36, Math.abs(x2 - x1) / 2);
  return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
}

export class Edges {
  private into = new Map<string, SVGPathElement[]>();
  /** Per node, the edges that start or end at it. */
  private ends = new Map<string, { path: SVGPathElement; edge: EdgeSpec }[]>();
  private dirty = new Map<string, Status>();

  constructor(private readonly root: SVGSVGElement, private readonly idx: GraphIndex) {
    const { graph } = idx;
    this.resize();
    // Port dots: a marker at both ends of every edge (half of it shows beside the card).
    const defs = svg("defs");
    const marker = svg("marker", { id: "port-dot", viewBox: "0 0 10 10", refX: 5, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse" });
    marker.append(svg("circle", { cx: 5, cy: 5, r: 3.5, class: "port-dot" }));
    defs.append(marker);
    const group = svg("g");
    for (const e of graph.edges) {
      const a = idx.byName.get(e.from);
      const b = idx.byName.get(e.to);
      if (!a || !b) continue;
      const path = svg("path", { class: "idle", d: this.pathOf(e), "data-from": e.from, "data-to": e.to });
      if (!this.into.has(e.to)) this.into.set(e.to, []);
      this.into.get(e.to)!.push(path);
      for (const end of [e.from, e.to]) {
        if (!this.ends.has(end)) this.ends.set(end, []);
        this.ends.get(end)!.push({ path, edge: e });
      }
      group.append(path);
    }
    root.replaceChildren(defs, group);
  }

  private pathOf(e: EdgeSpec): string {
    const a = this.idx.byName.get(e.from)!;
    const b = this.idx.byName.get(e.to)!;
    return edgePath(a.x + a.w, portY(a, e.from_port, "out"), b.x, portY(b, e.to_port, "in"));
  }

  /** The canvas size changed (a node was moved past it). */
  resize(): void {
    const { width, height } = this.idx.graph;
    this.root.setAttribute("width", String(width));
    this.root.setAttribute("height", String(height));
    this.root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  }

  /** Redraws the edges at these nodes (they moved). */
  moveNodes(names: Iterable<string>): void {
    for (const name of names) for (const { path, edge } of this.ends.get(name) || []) path.setAttribute("d", this.pathOf(edge));
  }

  /** Restyles the edges into `node` at the next frame. */
  setStatus(node: string, status: Status): void {
    if (!this.into.has(node)) return;
    this.dirty.set(node, status);
    onFrame("edges", () => {
      for (const [name, s] of this.dirty) {
        const cls = STATE_CLASS[s];
        for (const p of this.into.get(name)!) if (p.getAttribute("class") !== cls) p.setAttribute("class", cls);
      }
      this.dirty.clear();
    });
  }
}
