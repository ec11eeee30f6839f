// Minimap: the whole graph on a small canvas, nodes coloured by status, the visible area as
// a rectangle; click or drag on it to move there. Redrawn at most once per frame: the nodes
// go to an offscreen bitmap redrawn only when statuses, positions or the size change, so a
// pan or zoom frame copies that bitmap and draws the view's rectangle (thousands of tiles
// per frame were a good part of a big graph's pan frames). A cached
// result is drawn as a pale tile with an outline, a computed one solid: at this size two
// colours alone do not tell them apart. The canvas's data-scale, data-ox and data-oy say how
// world coordinates map onto it (tests read pixels with them).
import type { Canvas } from "./canvas";
import { onFrame } from "./dom";
import type { GraphIndex } from "./graph";
import type { Status } from "./types";

export class Minimap {
  private colors: Record<string, string> = {};
  private scale = 1;
  private ox = 0;
  private oy = 0;
  /** CSS size of the canvas, from a ResizeObserver (no layout reads while drawing). */
  private size = { w: 0, h: 0 };
  /** The nodes as last drawn, and whether that drawing is out of date. */
  private readonly layer = document.createElement("canvas");
  private dirty = true;

  constructor(private readonly canvasEl: HTMLCanvasElement, private readonly idx: GraphIndex, private readonly view: Canvas, private readonly status: (name: string) => Status) {
    this.readColors();
    view.onChange(() => onFrame("minimap", () => this.draw()));
    let dragging = false;
    const move = (e: PointerEvent) => {
      const r = canvasEl.getBoundingClientRect();
      const x = (e.clientX - r.left - this.ox) / this.scale;
      const y = (e.clientY - r.top - this.oy) / this.scale;
      const v = view.view;
      view.set({ zoom: v.zoom, x: view.rect.width / 2 - x * v.zoom, y: view.rect.height / 2 - y * v.zoom }, true);
    };
    canvasEl.addEventListener("pointerdown", (e) => {
      e.stopPropagation();
      dragging = true;
      canvasEl.setPointerCapture(e.pointerId);
      move(e);
    });
    canvasEl.addEventListener("pointermove", (e) => dragging && move(e));
    canvasEl.addEventListener("pointerup", () => (dragging = false));
    new ResizeObserver(([entry]) => {
      this.size = { w: entry.contentRect.width, h: entry.contentRect.height };
      this.schedule();
    }).observe(canvasEl);
  }

  /** Status colours come from the CSS variables (call again after a theme change). */
  readColors(): void {
    const css = getComputedStyle(document.documentElement);
    for (const s of ["pending", "running", "cached", "done", "failed", "stale", "skipped", "accent", "panel", "border"]) {
      this.colors[s] = css.getPropertyValue(`--${s}`).trim() || "#888";
    }
    this.schedule();
  }

  /** Statuses or positions changed: the nodes are drawn again at the next frame. */
  schedule(): void {
    this.dirty = true;
    onFrame("minimap", () => this.draw());
  }

  private draw(): void {
    const c = this.canvasEl;
    const { w: cssW, h: cssH } = this.size;
    if (!cssW || !cssH) return;
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
      c.width = Math.round(cssW * dpr);
      c.height = Math.round(cssH * dpr);
      this.dirty = true;
    }
    const ctx = c.getContext("2d");
    if (!ctx) return;
    if (this.dirty) this.drawNodes(cssW, cssH, dpr);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.drawImage(this.layer, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const s = this.scale;
    const v = this.view.view;
    const r = this.view.rect;
    ctx.strokeStyle = this.colors.accent;
    ctx.lineWidth = 1.5;
    ctx.strokeRect(this.ox + (-v.x / v.zoom) * s, this.oy + (-v.y / v.zoom) * s, (r.width / v.zoom) * s, (r.height / v.zoom) * s);
  }

  /** Draws every node into the offscreen layer (the canvas's size, in device pixels). */
  private drawNodes(cssW: number, cssH: number, dpr: number): void {
    this.dirty = false;
    const c = this.layer;
    c.width = this.canvasEl.width;
    c.height = this.canvasEl.height;
    const ctx = c.getContext("2d");
    if (!ctx) return;
    const { graph } = this.idx;
    const pad = 6;
    this.scale = Math.min((cssW - 2 * pad) / graph.width, (cssH - 2 * pad) / graph.height);
    this.ox = (cssW - graph.width * this.scale) / 2;
    this.oy = (cssH - graph.height * this.scale) / 2;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const s = this.scale;
    for (const n of graph.nodes) {
      const st = this.status(n.name);
      const [x, y, w, h] = [this.ox + n.x * s, this.oy + n.y * s, Math.max(1.5, n.w * s), Math.max(1.5, n.h * s)];
      ctx.fillStyle = this.colors[st];
      if (st !== "cached") {
        ctx.fillRect(x, y, w, h);
        continue;
      }
      ctx.globalAlpha = 0.25;
      ctx.fillRect(x, y, w, h);
      ctx.globalAlpha = 1;
      ctx.strokeStyle = this.colors.cached;
      ctx.lineWidth = 1;
      ctx.strokeRect(x + 0.5, y + 0.5, Math.max(0.5, w - 1), Math.max(0.5, h - 1));
    }
    const shown = this.canvasEl.dataset;
    shown.scale = String(s);
    shown.ox = String(this.ox);
    shown.oy = String(this.oy);
  }
}
