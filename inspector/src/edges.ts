// Edges: one cubic Bézier per gap between columns, straight across the columns an edge
// crosses (the server's layout gives such an edge a slot beside the cards there: its
// `route`), so no edge passes under a card. Geometry is kept for every edge; only the edges
// near the view have an SVG <path> (`cull`), and the far zoom draws them on a canvas from the
// same path data (`forEachVisible`). A status change only swaps the class of the edges
// arriving at that node: fresh (downstream up to date), stale (downstream stale), active
// (downstream running), idle (no result yet). A moved node redraws only the edges at its ends;
// an edge with a dragged end gets a route of its own (`detour`): through the free space of
// each column of cards between its ends, so it does not cut through cards either. So does
// an edge a card was dropped on (its own route would pass under the card): each move
// reshapes the edges the moved card's box meets, and those it had pushed aside.
import type { Box } from "./canvas";
import { portY } from "./cards";
import { onFrame, svg } from "./dom";
import type { GraphIndex } from "./graph";
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

/** World pixels around the view whose edges get an SVG path. */
const MARGIN = 400;
/** Room kept between a detoured edge and the cards it passes (world pixels). */
const DETOUR_GAP = 14;

/** The y nearest `wish` that is not inside any of `boxes` (with `DETOUR_GAP` around them):
 * `wish` itself, or just above or below the cards in the way. */
function freeY(boxes: Box[], wish: number): number {
  const spans = boxes.map((b) => [b.y - DETOUR_GAP, b.y + b.h + DETOUR_GAP]).sort((a, b) => a[0] - b[0]);
  // Merge the spans; the free places are outside them.
  const merged: number[][] = [];
  for (const s of spans) {
    const last = merged[merged.length - 1];
    if (last && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]);
    else merged.push([s[0], s[1]]);
  }
  const inside = merged.find(([a, b]) => wish > a && wish < b);
  if (!inside) return wish;
  const [above, below] = inside;
  return wish - above <= below - wish && above > 0 ? above : below;
}

/** Where the route of an edge may be used, and how far the open card pushed a point down. */
export interface RouteRules {
  /** Whether the node sits where the server's layout put it (its routes are valid). */
  laidOut(name: string): boolean;
  /** How far a point of the canvas is moved down by the open card making room. */
  shiftAt(x: number, y: number): number;
  /** The nodes placed by hand (the ones that may sit on an edge's route). */
  placedByHand(): string[];
}

/** A path from (x1, y1) to (x2, y2) through `via` (flat x, y pairs: where the edge enters
 * and leaves each column it crosses): curves in the gaps, straight lines across columns. */
export function edgePath(x1: number, y1: number, x2: number, y2: number, via: number[] = []): string {
  const points = [x1, y1, ...via, x2, y2];
  let d = `M${x1},${y1}`;
  for (let i = 2; i < points.length; i += 2) {
    const [ax, ay, bx, by] = [points[i - 2], points[i - 1], points[i], points[i + 1]];
    // Odd pairs go across a column (enter -> leave), even ones through a gap.
    if (i % 4 === 0 && via.length) d += ` L${bx},${by}`;
    else {
      const dx = Math.max(36, Math.abs(bx - ax) / 2);
      d += ` C${ax + dx},${ay} ${bx - dx},${by} ${bx},${by}`;
    }
  }
  return d;
}

/** Points along the path `edgePath` draws (`steps` per piece), to tell what it passes over. */
function pathPoints(x1: number, y1: number, x2: number, y2: number, via: number[], steps = 16): number[][] {
  const points = [x1, y1, ...via, x2, y2];
  const out: number[][] = [[x1, y1]];
  for (let i = 2; i < points.length; i += 2) {
    const [ax, ay, bx, by] = [points[i - 2], points[i - 1], points[i], points[i + 1]];
    const straight = i % 4 === 0 && via.length > 0;
    const dx = Math.max(36, Math.abs(bx - ax) / 2);
    for (let k = 1; k <= steps; k++) {
      const t = k / steps;
      if (straight) out.push([ax + (bx - ax) * t, ay + (by - ay) * t]);
      else {
        // The cubic from (ax, ay) with controls (ax + dx, ay), (bx - dx, by) to (bx, by).
        const u = 1 - t;
        const [w0, w1, w2, w3] = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
        out.push([w0 * ax + w1 * (ax + dx) + w2 * (bx - dx) + w3 * bx, (w0 + w1) * ay + (w2 + w3) * by]);
      }
    }
  }
  return out;
}

const meets = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

interface Line {
  edge: EdgeSpec;
  d: string;
  box: Box;
  cls: string;
  path: SVGPathElement | null;
  shape: Path2D | null;
  /** Routed around a card placed by hand on its way (reshaped when that card moves again). */
  around: boolean;
}

export class Edges {
  private lines: Line[] = [];
  private into = new Map<string, Line[]>();
  /** Per node, the edges that start or end at it. */
  private ends = new Map<string, Line[]>();
  private dirty = new Map<string, Status>();
  private readonly group: SVGGElement;
  private visible: Box | null = null;

  constructor(private readonly root: SVGSVGElement, private readonly idx: GraphIndex, private readonly rules: RouteRules) {
    const { graph } = idx;
    this.resize();
    // Port dots: a marker at both ends of every edge (half of it shows beside the card).
    const defs = svg("defs");
    const marker = svg("marker", { id: "port-dot", viewBox: "0 0 10 10", refX: 5, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse" });
    marker.append(svg("circle", { cx: 5, cy: 5, r: 3.5, class: "port-dot" }));
    defs.append(marker);
    this.group = svg("g");
    for (const e of graph.edges) {
      if (!idx.byName.has(e.from) || !idx.byName.has(e.to)) continue;
      const line: Line = { edge: e, d: "", box: { x: 0, y: 0, w: 0, h: 0 }, cls: "idle", path: null, shape: null, around: false };
      this.shape(line);
      this.lines.push(line);
      if (!this.into.has(e.to)) this.into.set(e.to, []);
      this.into.get(e.to)!.push(line);
      for (const end of [e.from, e.to]) {
        if (!this.ends.has(end)) this.ends.set(end, []);
        this.ends.get(end)!.push(line);
      }
    }
    root.replaceChildren(defs, this.group);
  }

  /** Computes an edge's path and bounding box from its ends' current positions. */
  private shape(line: Line): void {
    const e = line.edge;
    const a = this.idx.byName.get(e.from)!;
    const b = this.idx.byName.get(e.to)!;
    const x1 = a.x + a.w;
    const y1 = portY(a, e.from_port, "out");
    const x2 = b.x;
    const y2 = portY(b, e.to_port, "in");
    let via: number[] = [];
    const dragged = !this.rules.laidOut(e.from) || !this.rules.laidOut(e.to);
    if (dragged) via = this.detour(x1, y1, x2, y2, e.from, e.to);
    else if (e.route?.length) {
      via = e.route.slice();
      for (let i = 0; i < via.length; i += 2) via[i + 1] += this.rules.shiftAt(via[i], via[i + 1]);
    }
    // A card dropped on the layout's route: around it (and the cards beside it) instead.
    line.around = !dragged && this.covered(x1, y1, x2, y2, via, e.from, e.to);
    if (line.around) via = this.detour(x1, y1, x2, y2, e.from, e.to);
    line.d = edgePath(x1, y1, x2, y2, via);
    line.shape = null;
    const xs = [x1, x2, ...via.filter((_, i) => i % 2 === 0)];
    const ys = [y1, y2, ...via.filter((_, i) => i % 2 === 1)];
    const left = Math.min(...xs) - 40;
    const top = Math.min(...ys) - 4;
    line.box = { x: left, y: top, w: Math.max(...xs) + 40 - left, h: Math.max(...ys) + 4 - top };
    line.path?.setAttribute("d", line.d);
  }

  /** Whether a card placed by hand, other than the edge's ends, lies on the path through `via`. */
  private covered(x1: number, y1: number, x2: number, y2: number, via: number[], from: string, to: string): boolean {
    const boxes: Box[] = [];
    const [left, right] = [Math.min(x1, x2, ...via.filter((_, i) => i % 2 === 0)), Math.max(x1, x2, ...via.filter((_, i) => i % 2 === 0))];
    for (const name of this.rules.placedByHand()) {
      const n = this.idx.byName.get(name);
      if (!n || name === from || name === to || n.x + n.w <= left || n.x >= right) continue;
      boxes.push({ x: n.x + 2, y: n.y + 2, w: n.w - 4, h: n.h - 4 });
    }
    if (!boxes.length) return false;
    return pathPoints(x1, y1, x2, y2, via).some(([x, y]) => boxes.some((b) => x > b.x && x < b.x + b.w && y > b.y && y < b.y + b.h));
  }

  /** A route for an edge whose end was dragged (the server's route was for the layout's
   * places): the cards between its ends, other than its own, grouped into columns
   * (overlapping x ranges); across each column the edge runs level in the free gap nearest
   * the straight line from (x1, y1) to (x2, y2). Same form as the server's routes. */
  private detour(x1: number, y1: number, x2: number, y2: number, from: string, to: string): number[] {
    if (x2 - x1 < 2 * DETOUR_GAP) return [];
    const boxes: Box[] = [];
    for (const n of this.idx.graph.nodes) {
      if (n.name === from || n.name === to || n.x + n.w <= x1 + DETOUR_GAP || n.x >= x2 - DETOUR_GAP) continue;
      const down = this.rules.shiftAt(n.x, n.y);
      boxes.push({ x: n.x, y: n.y + down, w: n.w, h: n.h });
    }
    if (!boxes.length) return [];
    boxes.sort((a, b) => a.x - b.x);
    const via: number[] = [];
    let column: Box[] = [];
    let right = -Infinity;
    const pass = () => {
      if (!column.length) return;
      const left = Math.max(x1 + DETOUR_GAP / 2, column[0].x - DETOUR_GAP / 2);
      const end = Math.min(x2 - DETOUR_GAP / 2, right + DETOUR_GAP / 2);
      const mid = (left + end) / 2;
      const wish = y1 + ((y2 - y1) * (mid - x1)) / (x2 - x1);
      const y = freeY(column, wish);
      via.push(left, y, end, y);
    };
    for (const b of boxes) {
      if (b.x > right) {
        pass();
        column = [];
      }
      column.push(b);
      right = Math.max(right, b.x + b.w);
    }
    pass();
    return via;
  }

  /** The canvas size changed (a node was moved past it). */
  resize(): void {
    const { width, height } = this.idx.graph;
    this.root.setAttribute("width", String(width));
    this.root.setAttribute("height", String(height));
    this.root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  }

  /** Gives SVG paths to the edges near `visible` (world coordinates), takes them from the
   * others; `null` (the far zoom draws edges on a canvas) leaves them as they are. */
  cull(visible: Box | null): void {
    this.visible = visible;
    if (!visible) return;
    const near = (b: Box) => b.x < visible.x + visible.w + MARGIN && b.x + b.w > visible.x - MARGIN && b.y < visible.y + visible.h + MARGIN && b.y + b.h > visible.y - MARGIN;
    for (const line of this.lines) {
      const show = near(line.box);
      if (show && !line.path) {
        line.path = svg("path", { class: line.cls, d: line.d, "data-from": line.edge.from, "data-from-port": line.edge.from_port, "data-to": line.edge.to });
        this.group.append(line.path);
      } else if (!show && line.path) {
        line.path.remove();
        line.path = null;
      }
    }
  }

  /** Calls `fn` with each edge whose box meets `box`: its path and style class. */
  forEachVisible(box: Box, fn: (shape: Path2D, cls: string) => void): void {
    for (const line of this.lines) {
      const b = line.box;
      if (b.x > box.x + box.w || b.x + b.w < box.x || b.y > box.y + box.h || b.y + b.h < box.y) continue;
      line.shape ||= new Path2D(line.d);
      fn(line.shape, line.cls);
    }
  }

  /** Every edge's path and style class (the SVG export draws them all, near the view or not). */
  all(): { d: string; cls: string; from: string; to: string }[] {
    return this.lines.map((l) => ({ d: l.d, cls: l.cls, from: l.edge.from, to: l.edge.to }));
  }

  /** Redraws the edges at these nodes (they moved), the edges their cards now lie on, and
   * those that went around a card that may have moved off them. */
  moveNodes(names: Iterable<string>): void {
    const todo = new Set<Line>();
    const boxes: Box[] = [];
    for (const name of names) {
      for (const line of this.ends.get(name) || []) todo.add(line);
      const n = this.idx.byName.get(name);
      if (n) boxes.push({ x: n.x, y: n.y, w: n.w, h: n.h });
    }
    for (const line of this.lines) if (line.around || boxes.some((b) => meets(b, line.box))) todo.add(line);
    for (const line of todo) this.shape(line);
  }

  /** Redraws every edge that has a route (the open card moved points of some). */
  reroute(): void {
    for (const line of this.lines) if (line.edge.route?.length) this.shape(line);
    this.cull(this.visible);
  }

  /** Restyles the edges into `node` at the next frame. */
  setStatus(node: string, status: Status): void {
    if (!this.into.has(node)) return;
    this.dirty.set(node, status);
    onFrame("edges", () => {
      for (const [name, s] of this.dirty) {
        const cls = STATE_CLASS[s];
        for (const line of this.into.get(name)!) {
          line.cls = cls;
          if (line.path && line.path.getAttribute("class") !== cls) line.path.setAttribute("class", cls);
        }
      }
      this.dirty.clear();
    });
  }
}
