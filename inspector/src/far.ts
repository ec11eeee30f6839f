// The far zoom: below the level of detail where cards are too small to read, the graph is
// drawn on one canvas the size of the viewport (nodes as tiles in their status colour with
// their names when they fit, edges from the same path data as the SVG). Thousands of nodes
// then cost one canvas, not thousands of elements. A full drawing (of the view and half a
// view around it) goes to an offscreen bitmap; frames while panning and zooming only copy
// that bitmap moved and scaled, and the full drawing is redone once the view rests (or
// when the view leaves the bitmap, or zooms past twice its scale).
import type { Box, Canvas } from "./canvas";
import { debounce, onFrame } from "./dom";
import type { Edges } from "./edges";
import type { GraphIndex } from "./graph";
import type { NodeSpec, Status } from "./types";

/** Names are drawn when a tile is at least this wide on screen. */
const NAME_MIN_PX = 48;
/** How long the view rests before the bitmap is drawn again at its exact zoom. */
const SETTLE_MS = 120;

interface Drawn {
  bitmap: HTMLCanvasElement;
  /** The world box the bitmap covers, and the zoom it was drawn at. */
  box: Box;
  zoom: number;
  /** Statuses changed since it was drawn. */
  stale: boolean;
}

export class FarView {
  private colors: Record<string, string> = {};
  private active = false;
  private drawn: Drawn | null = null;
  private readonly settle = debounce(() => {
    this.drawn = null;
    this.schedule();
  }, SETTLE_MS, 500);

  constructor(
    private readonly el: HTMLCanvasElement,
    private readonly idx: GraphIndex,
    private readonly view: Canvas,
    private readonly edges: Edges,
    private readonly status: (name: string) => Status,
    private readonly selected: () => string | null,
  ) {
    this.readColors();
  }

  /** Colours come from the CSS variables (call again after a theme change). */
  readColors(): void {
    const css = getComputedStyle(document.documentElement);
    for (const s of ["pending", "running", "cached", "done", "failed", "stale", "skipped", "accent", "panel", "border", "text",
      "edge-fresh", "edge-stale", "edge-idle", "edge-active"]) {
      this.colors[s] = css.getPropertyValue(`--${s}`).trim() || "#888";
    }
    this.invalidate();
  }

  /** Statuses or positions changed: the bitmap is drawn again once things rest. */
  invalidate(): void {
    if (this.drawn) this.drawn.stale = true;
    this.schedule();
  }

  /** Shows (far zoom) or hides the canvas. */
  setActive(on: boolean): void {
    if (on === this.active) return;
    this.active = on;
    this.el.hidden = !on;
    this.drawn = null;
    if (on) this.schedule();
  }

  schedule(): void {
    if (this.active) onFrame("far", () => this.draw());
  }

  /** The node drawn at a point of the viewport (client coordinates), if any. */
  hit(clientX: number, clientY: number): NodeSpec | null {
    const p = this.view.toWorld(clientX, clientY);
    for (const n of this.idx.graph.nodes) if (p.x >= n.x && p.x <= n.x + n.w && p.y >= n.y && p.y <= n.y + n.h) return n;
    return null;
  }

  /** One frame: the bitmap moved and scaled to the view, drawn anew first if it cannot serve. */
  private draw(): void {
    if (!this.active) return;
    const { width, height } = this.view.rect;
    if (!width || !height) return;
    const dpr = window.devicePixelRatio || 1;
    const c = this.el;
    if (c.width !== Math.round(width * dpr) || c.height !== Math.round(height * dpr)) {
      c.width = Math.round(width * dpr);
      c.height = Math.round(height * dpr);
    }
    const ctx = c.getContext("2d");
    if (!ctx) return;
    const { x, y, zoom } = this.view.view;
    // Only the part of the view that has graph in it needs drawing.
    const view = clip(this.view.visibleWorld(), this.idx.graph);
    const d = this.drawn;
    const serves = d && zoom / d.zoom < 2 && zoom / d.zoom > 0.5 && view.x >= d.box.x && view.y >= d.box.y
      && view.x + view.w <= d.box.x + d.box.w && view.y + view.h <= d.box.y + d.box.h;
    if (!serves) this.drawn = this.render(view, zoom, dpr);
    const drawn = this.drawn!;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.setTransform(dpr * zoom, 0, 0, dpr * zoom, dpr * x, dpr * y);
    ctx.drawImage(drawn.bitmap, drawn.box.x, drawn.box.y, drawn.box.w, drawn.box.h);
    if (drawn.zoom !== zoom || drawn.stale) this.settle();
  }

  /** Draws the view and half a view around it, at `zoom`, into a bitmap. */
  private render(view: Box, zoom: number, dpr: number): Drawn {
    const started = performance.now();
    const box = clip({ x: view.x - view.w / 2, y: view.y - view.h / 2, w: view.w * 2, h: view.h * 2 }, this.idx.graph);
    const bitmap = this.drawn?.bitmap || document.createElement("canvas");
    bitmap.width = Math.max(1, Math.ceil(box.w * zoom * dpr));
    bitmap.height = Math.max(1, Math.ceil(box.h * zoom * dpr));
    const ctx = bitmap.getContext("2d")!;
    ctx.setTransform(dpr * zoom, 0, 0, dpr * zoom, -box.x * zoom * dpr, -box.y * zoom * dpr);

    // Edges, one stroke per style.
    const byClass = new Map<string, Path2D[]>();
    this.edges.forEachVisible(box, (shape, cls) => {
      if (!byClass.has(cls)) byClass.set(cls, []);
      byClass.get(cls)!.push(shape);
    });
    ctx.lineWidth = 1.5 / zoom;
    for (const [cls, shapes] of byClass) {
      ctx.strokeStyle = this.colors[`edge-${cls}`] || this.colors["edge-idle"];
      ctx.setLineDash(cls === "stale" ? [6 / zoom, 4 / zoom] : []);
      for (const s of shapes) ctx.stroke(s);
    }
    ctx.setLineDash([]);

    // Nodes: a tile in the status colour; a cached result is a lighter tile with a full
    // outline, so it never reads as "done" (computed in this run).
    const nameSize = Math.min(60, 12 / zoom);
    const showNames = 260 * zoom >= NAME_MIN_PX;
    const selected = this.selected();
    ctx.font = `700 ${nameSize}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (const n of this.idx.graph.nodes) {
      if (n.x > box.x + box.w || n.x + n.w < box.x || n.y > box.y + box.h || n.y + n.h < box.y) continue;
      const st = this.status(n.name);
      const color = this.colors[st];
      ctx.fillStyle = this.colors.panel;
      ctx.fillRect(n.x, n.y, n.w, n.h);
      ctx.globalAlpha = st === "cached" ? 0.25 : st === "pending" ? 0.35 : 0.75;
      ctx.fillStyle = color;
      ctx.fillRect(n.x, n.y, n.w, n.h);
      ctx.globalAlpha = 1;
      ctx.lineWidth = (n.name === selected ? 3 : st === "cached" ? 2 : 1) / zoom;
      ctx.strokeStyle = n.name === selected ? this.colors.accent : color;
      ctx.strokeRect(n.x, n.y, n.w, n.h);
      if (showNames) {
        ctx.fillStyle = this.colors.text;
        ctx.fillText(n.name, n.x + n.w / 2, n.y + n.h / 2, n.w - 12);
      }
    }
    // How long a full drawing takes (reported by tests/browser/many.mjs).
    this.el.dataset.renderMs = String(Math.round(performance.now() - started));
    return { bitmap, box, zoom, stale: false };
  }
}

/** `b` cut to the canvas of `graph` (an empty box at its corner when they do not meet). */
function clip(b: Box, graph: { width: number; height: number }): Box {
  const x = Math.max(0, Math.min(graph.width, b.x));
  const y = Math.max(0, Math.min(graph.height, b.y));
  return { x, y, w: Math.max(0, Math.min(graph.width, b.x + b.w) - x), h: Math.max(0, Math.min(graph.height, b.y + b.h) - y) };
}
