// Node positions: where the server's layout put each card, where the user dragged some of
// them (stored per sheet), how far the open card pushes the cards below it down (so an
// opened card never covers the next one; not stored), and the dragging itself. A press on
// a card becomes a drag only once the pointer has moved a few pixels, so a click still
// selects the card; controls, previews and the log keep their own pointer behaviour
// (typing, scrolling, selecting text).
import type { Canvas } from "./canvas";
import { onFrame } from "./dom";
import type { GraphIndex } from "./graph";
import type { Position } from "./types";

/** Screen pixels the pointer must move before a press on a card becomes a drag. */
const THRESHOLD = 4;
/** Parts of a card that do not start a drag. */
const NOT_A_HANDLE = "button, input, select, textarea, a, label, audio, video, .preview, .logs, .upload, .card-foot";
/** Room kept around the cards when the canvas grows to hold a moved one (as the server's layout). */
const MARGIN = 40;

export interface LayoutHooks {
  /** These nodes moved: their cards and edges follow (called once per frame at most). */
  moved(names: string[]): void;
  /** A drag ended: the manual positions are to be stored. */
  dropped(): void;
}

export class Layout {
  /** Where the server's layout put each node. */
  private readonly computed = new Map<string, Position>();
  /** The canvas size of the server's layout: the canvas never gets smaller than that. */
  private readonly size: { width: number; height: number };
  /** Nodes placed by hand, by name. */
  manual: Record<string, Position> = {};
  private dirty = new Set<string>();
  /** The open card making room below it: the region pushed down (world coordinates). */
  private room: { name: string; left: number; right: number; below: number; by: number } | null = null;

  constructor(private readonly idx: GraphIndex, private readonly hooks: LayoutHooks) {
    for (const n of idx.graph.nodes) this.computed.set(n.name, { x: n.x, y: n.y });
    this.size = { width: idx.graph.width, height: idx.graph.height };
  }

  /** Shows a sheet's positions: the nodes listed where they were put, the others where the layout puts them. */
  apply(positions: Record<string, Position>): void {
    this.manual = {};
    for (const name of this.computed.keys()) {
      const put = positions[name];
      if (put && Number.isFinite(put.x) && Number.isFinite(put.y)) this.manual[name] = { x: put.x, y: put.y };
    }
    this.placeAll();
  }

  /** Whether the node sits where the server's layout put it (not dragged). */
  laidOut(name: string): boolean {
    return !this.manual[name];
  }

  /** The nodes placed by hand. */
  placedByHand(): string[] {
    return Object.keys(this.manual);
  }

  /** How far a point is pushed down by the open card (0 outside the region below it). */
  shiftAt(x: number, y: number): number {
    const r = this.room;
    return r && x >= r.left && x <= r.right && y >= r.below ? r.by : 0;
  }

  /** The open card `name` is `height` tall (`null`: it closed): the cards below it in its
   * column move down by what it grew past its closed height, and back when it closes.
   * Returns whether anything moved. */
  makeRoom(name: string, height: number | null): boolean {
    const node = this.idx.byName.get(name);
    const before = this.room;
    if (before && before.name !== name && height === null) return false;
    const base = node && this.base(name);
    const by = node && base && height !== null ? Math.max(0, Math.round(height - node.h)) : 0;
    this.room = node && base && by > 0 ? { name, left: base.x - 1, right: base.x + node.w + 1, below: base.y + node.h, by } : null;
    if (before?.by === this.room?.by && before?.name === this.room?.name) return false;
    this.placeAll();
    return true;
  }

  private base(name: string): Position | undefined {
    return this.manual[name] || this.computed.get(name);
  }

  private placeAll(): void {
    for (const name of this.computed.keys()) {
      const at = this.base(name)!;
      const node = this.idx.byName.get(name)!;
      // A card is pushed when it starts below the open card and overlaps its column.
      const r = this.room;
      const pushed = r && name !== r.name && at.y >= r.below && at.x < r.right && at.x + node.w > r.left ? r.by : 0;
      this.place(name, { x: at.x, y: at.y + pushed });
    }
    this.grow();
  }

  /** Every node back where the server's layout puts it. */
  reset(): void {
    this.apply({});
  }

  /** Moves a node by hand (kept on the canvas: never left of or above its origin). */
  move(name: string, x: number, y: number): void {
    const at = { x: Math.max(0, Math.round(x)), y: Math.max(0, Math.round(y)) };
    this.manual[name] = at;
    if (this.room?.name === name) this.room = null;
    this.placeAll();
  }

  private place(name: string, at: Position): void {
    const node = this.idx.byName.get(name);
    if (!node || (node.x === at.x && node.y === at.y)) return;
    node.x = at.x;
    node.y = at.y;
    this.dirty.add(name);
    onFrame("layout", () => {
      const names = [...this.dirty];
      this.dirty.clear();
      this.hooks.moved(names);
    });
  }

  /** The canvas holds every card: the layout's size, or more when a card was moved past it
   * (set at once, so fitting the view right after sees it). */
  private grow(): void {
    const { graph } = this.idx;
    let { width, height } = this.size;
    for (const n of graph.nodes) {
      width = Math.max(width, n.x + n.w + MARGIN);
      height = Math.max(height, n.y + n.h + MARGIN);
    }
    graph.width = width;
    graph.height = height;
  }

  /** Lets the cards in `container` be dragged; `canvas` converts pointer moves to canvas units. */
  bindDrag(container: HTMLElement, canvas: Canvas): void {
    let press: { id: number; name: string; card: HTMLElement; cx: number; cy: number; x: number; y: number; dragging: boolean } | null = null;
    let swallowClick = false;
    container.addEventListener("pointerdown", (e) => {
      if (press || e.button !== 0) return;
      const target = e.target as Element;
      const card = target.closest<HTMLElement>(".card");
      const node = card && this.idx.byName.get(card.dataset.name!);
      if (!card || !node || target.closest(NOT_A_HANDLE)) return;
      press = { id: e.pointerId, name: node.name, card, cx: e.clientX, cy: e.clientY, x: node.x, y: node.y, dragging: false };
    });
    container.addEventListener("pointermove", (e) => {
      if (!press || e.pointerId !== press.id) return;
      const dx = e.clientX - press.cx;
      const dy = e.clientY - press.cy;
      if (!press.dragging) {
        if (Math.hypot(dx, dy) < THRESHOLD) return;
        press.dragging = true;
        // Captured, the card keeps getting the pointer however fast it moves.
        press.card.setPointerCapture(e.pointerId);
        press.card.classList.add("dragging");
        document.body.classList.add("dragging-card");
        getSelection()?.removeAllRanges();
      }
      const zoom = canvas.view.zoom;
      this.move(press.name, press.x + dx / zoom, press.y + dy / zoom);
    });
    const end = (e: PointerEvent) => {
      if (!press || e.pointerId !== press.id) return;
      const { dragging, card } = press;
      press = null;
      if (!dragging) return; // a click: the card's own click handler selects it
      card.classList.remove("dragging");
      document.body.classList.remove("dragging-card");
      // The click that follows the release ends a drag, it is not a click on the card.
      swallowClick = true;
      setTimeout(() => (swallowClick = false), 0);
      this.hooks.dropped();
    };
    container.addEventListener("pointerup", end);
    container.addEventListener("pointercancel", end);
    container.addEventListener(
      "click",
      (e) => {
        if (!swallowClick) return;
        swallowClick = false;
        e.stopPropagation();
      },
      true,
    );
  }
}
