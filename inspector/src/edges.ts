// Edges: one SVG, one cubic Bézier <path> per edge, built once. A status change only swaps
// the classes of the edges arriving at that node: fresh (downstream up to date), stale
// (downstream stale), active (downstream running), idle (no result yet).
import { onFrame, svg } from "./dom";
import type { GraphIndex } from "./graph";
import { portY } from "./cards";
import type { Status } from "./types";

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
  private dirty = new Map<string, Status>();

  constructor(root: SVGSVGElement, idx: GraphIndex) {
    const { graph } = idx;
    root.setAttribute("width", String(graph.width));
    root.setAttribute("height", String(graph.height));
    root.setAttribute("viewBox", `0 0 ${graph.width} ${graph.height}`);
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
      const path = svg("path", {
        class: "idle",
        d: edgePath(a.x + a.w, portY(a, e.from_port, "out"), b.x, portY(b, e.to_port, "in")),
        "data-from": e.from,
        "data-to": e.to,
      });
      if (!this.into.has(e.to)) this.into.set(e.to, []);
      this.into.get(e.to)!.push(path);
      group.append(path);
    }
    root.replaceChildren(defs, group);
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
