// Result history per node: ‹ 2/5 › steps through past results (selecting one makes it current,
// so downstream goes stale, and the open card shows its log), the counter opens the list, and
// "restore" puts back the inputs that produced the selected result.
import { api } from "./api";
import { el, guard } from "./dom";
import { clock, ms, plural } from "./format";
import { closePopover, openPopover } from "./popover";
import type { HistoryEntry, HistorySummary } from "./types";

export class HistoryBar {
  readonly root: HTMLElement;
  private older: HTMLButtonElement | null = null;
  private newer: HTMLButtonElement | null = null;
  private counter: HTMLButtonElement | null = null;
  private summary: HistorySummary = { count: 0, selected_id: null, position: 0 };

  constructor(private readonly node: string, private readonly sheet: () => string, private readonly editable: boolean) {
    // The buttons are made when there is something to browse (most cards never need them).
    this.root = el("footer", { class: "history", "data-testid": `history-${node}`, hidden: true });
  }

  private build(): void {
    const node = this.node;
    this.older = el("button", { class: "icon", title: "Older result", "aria-label": `Older result of ${node}`, text: "‹", onclick: guard(() => this.step(1)) });
    this.newer = el("button", { class: "icon", title: "Newer result", "aria-label": `Newer result of ${node}`, text: "›", onclick: guard(() => this.step(-1)) });
    this.counter = el("button", { class: "counter", title: "All results of this node", "aria-haspopup": "menu", onclick: guard(() => this.list()) });
    const restore = this.editable
      ? el("button", {
          class: "restore",
          title: "Restore the inputs that produced this result",
          text: "Restore inputs",
          onclick: guard(() => this.summary.selected_id != null && api.restore(this.sheet(), node, this.summary.selected_id)),
        })
      : null;
    this.root.append(this.older, this.counter, this.newer, restore || "");
  }

  update(h: HistorySummary): void {
    this.summary = h;
    // One result has nothing to browse: the bar shows from the second one on.
    this.root.hidden = h.count < 2;
    if (h.count < 2) return;
    if (!this.counter) this.build();
    const counter = this.counter!;
    // Shown oldest-first: the newest result is n/n.
    const n = h.count - h.position + 1;
    counter.textContent = h.selected_id == null ? `–/${h.count}` : `${n}/${h.count}`;
    counter.setAttribute("aria-label", `Result ${n} of ${h.count} for ${this.node}: list all`);
    this.older!.disabled = h.selected_id != null && n <= 1;
    this.newer!.disabled = h.selected_id != null && n >= h.count;
  }

  private async entries(): Promise<HistoryEntry[]> {
    return (await api.history(this.sheet(), this.node)).entries;
  }

  /** +1 = older, -1 = newer (entries come newest first). */
  private async step(delta: number): Promise<void> {
    const entries = await this.entries();
    const at = Math.max(0, entries.findIndex((e) => e.selected));
    const next = entries[at + delta];
    if (next && !next.selected) await api.select(this.sheet(), this.node, next.id);
  }

  private async list(): Promise<void> {
    const entries = await this.entries();
    const total = entries.length;
    const items = entries.slice(0, 100).map((e, i) => {
      const inputs = e.inputs.map((p) => `${p.port}=${short(p.value)}`).join(", ");
      return el("button", {
        role: "menuitemradio",
        "aria-checked": e.selected ? "true" : "false",
        class: e.selected ? "entry current" : "entry",
        title: inputs ? `inputs: ${inputs}` : "",
        onclick: guard(async () => {
          closePopover();
          if (!e.selected) await api.select(this.sheet(), this.node, e.id);
        }),
      },
        el("span", { class: "entry-head", text: `${total - i}/${total} · run ${e.run} · ${e.outcome}${e.elapsed_ms != null ? ` · ${ms(e.elapsed_ms)}` : ""}${e.log_lines ? ` · ${plural(e.log_lines, "log line")}` : ""}` }),
        el("span", { class: "entry-sub", text: `${clock(e.finished_ms)}${inputs ? ` · ${inputs}` : ""}` }));
    });
    if (!items.length) items.push(el("button", { disabled: true, text: "No results yet" }));
    openPopover(this.counter!, items, { label: `Results of ${this.node}`, testid: `history-list-${this.node}` });
  }
}

function short(v: unknown): string {
  const text = typeof v === "string" ? v : JSON.stringify(v) ?? "";
  return text.length > 24 ? `${text.slice(0, 24)}…` : text;
}
