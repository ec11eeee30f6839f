// Run timeline: a Gantt chart of the last run (from the state's `timeline`), one row per
// node in start order, cache hits marked. Rendered only while the panel is open.
import { el, onFrame } from "./dom";
import { ms } from "./format";
import type { Bar, Status } from "./types";

export class Timeline {
  private bars: Bar[] = [];
  private running = false;

  constructor(private readonly panel: HTMLElement, private readonly toggleButton: HTMLElement, private readonly status: (name: string) => Status, private readonly focus: (name: string) => void) {
    toggleButton.addEventListener("click", () => this.toggle());
  }

  get open(): boolean {
    return !this.panel.hidden;
  }

  toggle(open = !this.open): void {
    this.panel.hidden = !open;
    this.toggleButton.setAttribute("aria-pressed", String(open));
    if (open) this.render();
  }

  update(bars: Bar[], running: boolean): void {
    this.bars = bars || [];
    this.running = running;
    if (this.open) onFrame("timeline", () => this.render());
  }

  private render(): void {
    const bars = [...this.bars].sort((a, b) => a.start_ms - b.start_ms);
    const end = Math.max(1, ...bars.map((b) => b.end_ms ?? b.start_ms));
    const cached = bars.filter((b) => b.cached).length;
    const head = el("div", { class: "tl-head" },
      el("strong", { text: "Last run" }),
      el("span", { text: bars.length ? `${ms(end)} · ${`${bars.length - cached} computed`} · ${cached} cached${this.running ? " · running…" : ""}` : "no run yet" }),
      el("span", { class: "tl-legend" },
        el("i", { class: "sw computed" }), "computed ",
        el("i", { class: "sw cached" }), "cache hit ",
        el("i", { class: "sw failed" }), "failed"),
      el("button", { class: "icon", "aria-label": "Close the timeline", title: "Close", text: "✕", onclick: () => this.toggle(false) }));
    const ticks = el("div", { class: "tl-axis", "aria-hidden": "true" });
    const step = niceStep(end / 5);
    for (let t = 0; t <= end + 1e-9; t += step) {
      const tick = el("span", { text: t === 0 ? "0" : ms(t) });
      tick.style.left = `${(t / end) * 100}%`;
      ticks.append(tick);
    }
    const rows = bars.slice(0, 1000).map((b) => {
      const open = b.end_ms == null;
      const stop = b.end_ms ?? end;
      const failed = this.status(b.node) === "failed";
      const bar = el("span", {
        class: `tl-bar${b.cached ? " cached" : ""}${open ? " open" : ""}${failed ? " failed" : ""}`,
        title: `${b.node}: ${b.cached ? "cache hit" : open ? "running" : ms(stop - b.start_ms)} (from ${b.start_ms < 0.5 ? "0" : ms(b.start_ms)})`,
      });
      bar.style.left = `${(b.start_ms / end) * 100}%`;
      if (!b.cached) bar.style.width = `${Math.max(0.2, ((stop - b.start_ms) / end) * 100)}%`;
      return el("div", { class: "tl-row" },
        el("button", { class: "tl-name", title: `Show ${b.node}`, text: b.node, onclick: () => this.focus(b.node) }),
        el("span", { class: "tl-track" }, bar),
        el("span", { class: "tl-time", text: b.cached ? "cached" : open ? "…" : ms(stop - b.start_ms) }));
    });
    this.panel.replaceChildren(head, el("div", { class: "tl-row tl-axis-row" }, el("span", { class: "tl-name" }), ticks, el("span", { class: "tl-time" })), ...rows);
  }
}

function niceStep(raw: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-3))));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
