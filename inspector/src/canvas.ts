// Pan and zoom: one CSS transform on the world wrapper, written once per frame.
// Wheel zooms at the pointer, dragging the background pans, keys f / + / - / 0.
import { onFrame } from "./dom";
import type { Viewport } from "./types";

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

const MIN_ZOOM = 0.04;
const MAX_ZOOM = 3;
/** Below this zoom the graph is drawn on a canvas instead of cards (level of detail: cards
 * would be too small to read, and thousands of them too many to paint). */
export const LOD_ZOOM = 0.4;
/** The first view never starts smaller than this (the minimap shows the rest). */
const READABLE = 0.6;

export class Canvas {
  view: Viewport = { x: 0, y: 0, zoom: 1 };
  /** The viewport's size and page position, kept by a ResizeObserver (no layout reads on input). */
  rect = { left: 0, top: 0, width: 0, height: 0 };
  private listeners: ((v: Viewport, byUser: boolean) => void)[] = [];
  private lod = false;

  constructor(
    readonly viewport: HTMLElement,
    private readonly world: HTMLElement,
    private readonly bounds: () => { width: number; height: number },
  ) {
    this.measure();
    new ResizeObserver(() => {
      this.measure();
      this.emit(false);
    }).observe(viewport);
    this.bindPointer();
    this.bindKeys();
    // Focusing an off-screen input scrolls the clipped viewport: turn that into a pan.
    viewport.addEventListener("scroll", () => {
      const { scrollLeft: dx, scrollTop: dy } = viewport;
      if (!dx && !dy) return;
      viewport.scrollLeft = 0;
      viewport.scrollTop = 0;
      this.panBy(-dx, -dy, true);
    });
  }

  onChange(fn: (v: Viewport, byUser: boolean) => void): void {
    this.listeners.push(fn);
  }

  private measure(): void {
    const r = this.viewport.getBoundingClientRect();
    this.rect = { left: r.left, top: r.top, width: r.width, height: r.height };
  }

  private emit(byUser: boolean): void {
    for (const fn of this.listeners) fn(this.view, byUser);
  }

  set(v: Viewport, byUser = false): void {
    const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, Number(v.zoom) || 1));
    this.view = { x: Number(v.x) || 0, y: Number(v.y) || 0, zoom };
    onFrame("canvas", () => {
      const { x, y, zoom } = this.view;
      this.world.style.transform = `translate(${x}px,${y}px) scale(${zoom})`;
      const lod = zoom < LOD_ZOOM;
      if (lod !== this.lod) {
        this.lod = lod;
        this.world.classList.toggle("far", lod);
      }
    });
    this.emit(byUser);
  }

  /** Whether the view is zoomed out past the level of detail (see `LOD_ZOOM`). */
  get far(): boolean {
    return this.view.zoom < LOD_ZOOM;
  }

  /** The part of the canvas in view, in world coordinates. */
  visibleWorld(): Box {
    const { x, y, zoom } = this.view;
    return { x: -x / zoom, y: -y / zoom, w: this.rect.width / zoom, h: this.rect.height / zoom };
  }

  panBy(dx: number, dy: number, byUser = false): void {
    this.set({ ...this.view, x: this.view.x + dx, y: this.view.y + dy }, byUser);
  }

  /** Zooms by `factor` keeping the screen point (cx, cy) (viewport coordinates) still. */
  zoomAt(factor: number, cx: number, cy: number, byUser = true): void {
    const v = this.view;
    const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, v.zoom * factor));
    const k = zoom / v.zoom;
    this.set({ x: cx - (cx - v.x) * k, y: cy - (cy - v.y) * k, zoom }, byUser);
  }

  zoomStep(factor: number): void {
    this.zoomAt(factor, this.rect.width / 2, this.rect.height / 2);
  }

  /** Fits the whole graph (or a box) in view. */
  fit(box?: Box, byUser = true): void {
    const b = box || { x: 0, y: 0, w: this.bounds().width, h: this.bounds().height };
    const { width, height } = this.rect;
    if (!width || !height || !b.w || !b.h) return;
    const zoom = Math.min(1.25, Math.max(MIN_ZOOM, Math.min((width - 32) / b.w, (height - 32) / b.h)));
    this.set({ zoom, x: (width - b.w * zoom) / 2 - b.x * zoom, y: (height - b.h * zoom) / 2 - b.y * zoom }, byUser);
  }

  /** The first view: the whole graph if it fits at a readable zoom, else its left part. */
  overview(): void {
    const g = this.bounds();
    const { width, height } = this.rect;
    if (!width || !height) return;
    if (Math.min((width - 32) / g.width, (height - 32) / g.height) >= READABLE) return this.fit(undefined, false);
    const zoom = READABLE;
    this.set({ zoom, x: 16, y: g.height * zoom < height ? (height - g.height * zoom) / 2 : 16 });
  }

  /** Centres a box, zooming in to at least `minZoom`. */
  centerOn(b: Box, minZoom = 0.8): void {
    const zoom = Math.max(this.view.zoom, minZoom);
    this.set({ zoom, x: this.rect.width / 2 - (b.x + b.w / 2) * zoom, y: this.rect.height / 2 - (b.y + b.h / 2) * zoom });
  }

  /** Screen (client) coordinates to world coordinates. */
  toWorld(clientX: number, clientY: number): { x: number; y: number } {
    const v = this.view;
    return { x: (clientX - this.rect.left - v.x) / v.zoom, y: (clientY - this.rect.top - v.y) / v.zoom };
  }

  private bindPointer(): void {
    const vp = this.viewport;
    vp.addEventListener(
      "wheel",
      (e) => {
        // Readable cards keep native scrolling of their overflowing previews.
        const scroller = (e.target as Element).closest?.(".scroll") as HTMLElement | null;
        if (scroller && !e.ctrlKey && this.view.zoom >= 0.75 && scroller.scrollHeight > scroller.clientHeight) return;
        e.preventDefault();
        if (!e.ctrlKey && (e.deltaX !== 0 || e.shiftKey)) {
          // Trackpad two-finger scroll (or shift + wheel) pans.
          this.panBy(-(e.deltaX || e.deltaY), e.shiftKey ? 0 : -e.deltaY, true);
          return;
        }
        const unit = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : e.ctrlKey ? 0.01 : 0.0015;
        const factor = Math.exp(Math.max(-0.5, Math.min(0.5, -e.deltaY * unit)));
        this.zoomAt(factor, e.clientX - this.rect.left, e.clientY - this.rect.top);
      },
      { passive: false },
    );

    let drag: { id: number; x: number; y: number } | null = null;
    vp.addEventListener("pointerdown", (e) => {
      const target = e.target as Element;
      const onBackground = !target.closest(".card, #minimap, button, input, select, textarea, a");
      if (!(onBackground && e.button === 0) && e.button !== 1) return;
      e.preventDefault();
      drag = { id: e.pointerId, x: e.clientX, y: e.clientY };
      vp.setPointerCapture(e.pointerId);
      vp.classList.add("panning");
    });
    vp.addEventListener("pointermove", (e) => {
      if (!drag || e.pointerId !== drag.id) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      drag.x = e.clientX;
      drag.y = e.clientY;
      this.panBy(dx, dy, true);
    });
    const end = (e: PointerEvent) => {
      if (!drag || e.pointerId !== drag.id) return;
      drag = null;
      vp.classList.remove("panning");
    };
    vp.addEventListener("pointerup", end);
    vp.addEventListener("pointercancel", end);
  }

  private bindKeys(): void {
    document.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
      const t = e.target as HTMLElement;
      if (t.closest("input, textarea, select, [contenteditable], dialog")) return;
      if (e.key === "f") this.fit();
      else if (e.key === "+" || e.key === "=") this.zoomStep(1.25);
      else if (e.key === "-" || e.key === "_") this.zoomStep(0.8);
      else if (e.key === "0") this.zoomAt(1 / this.view.zoom, this.rect.width / 2, this.rect.height / 2);
      else if (e.key.startsWith("Arrow")) {
        const step = 60;
        this.panBy(e.key === "ArrowLeft" ? step : e.key === "ArrowRight" ? -step : 0, e.key === "ArrowUp" ? step : e.key === "ArrowDown" ? -step : 0, true);
      } else return;
      e.preventDefault();
    });
  }
}
