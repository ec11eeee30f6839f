// Batches panel: the pipeline's batches (runs over many input sets, `Pipeline::run_batch` or
// `cargo daggr run --batch`, made elsewhere and kept in the sheet database) with their
// progress, and one batch's items in a table, filtered by status and paged. Batches change
// without events on this page (their workers are other programs): while the panel is open
// and a batch has items left, it asks again every 2 s.
import { api } from "./api";
import { el } from "./dom";
import { clock, firstLine, ms, plural } from "./format";
import type { BatchCounts, BatchInfo, BatchItem, BatchPage, ItemStatus } from "./types";

const POLL_MS = 2000;
const PAGE = 200;
const STATUSES: ItemStatus[] = ["pending", "claimed", "done", "failed"];

/** "5 done · 1 failed · 6 items": the statuses that have items, then the total. */
export function countsText(c: BatchCounts): string {
  const parts = (["done", "failed", "claimed", "pending"] as const).filter((s) => c[s] > 0).map((s) => `${c[s]} ${s}`);
  return [...parts, plural(c.total, "item")].join(" · ");
}

/** A value in a few characters: text as itself, anything else as JSON. */
function short(value: unknown, max = 60): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** "n: 3, label: cat" from a JSON object of named values. */
function named(values: unknown, max = 60): string {
  if (!values || typeof values !== "object" || Array.isArray(values)) return short(values, max);
  return short(Object.entries(values).map(([k, v]) => `${k}: ${short(v, max)}`).join(", "), max);
}

function bar(c: BatchCounts): HTMLElement {
  const box = el("span", { class: "bt-bar", role: "img", "aria-label": countsText(c) });
  for (const s of ["done", "failed", "claimed"] as const) {
    if (!c[s]) continue;
    const seg = el("span", { class: `bt-seg ${s}` });
    seg.style.width = `${(c[s] / Math.max(1, c.total)) * 100}%`;
    box.append(seg);
  }
  return box;
}

const active = (c: BatchCounts) => c.pending + c.claimed > 0;

export class Batches {
  private list: BatchInfo[] = [];
  private chosen: string | null = null;
  private page: BatchPage | null = null;
  private filter: ItemStatus | "" = "";
  private offset = 0;
  private timer = 0;
  /** Bumped by every refresh: an answer to an older one is dropped. */
  private generation = 0;
  private readonly summary = el("span", { class: "bt-summary" });
  private readonly listBox = el("div", { class: "bt-list", role: "list", "data-testid": "batch-list" });
  private readonly itemsBox = el("div", { class: "bt-items" });
  private readonly title = el("strong", { class: "bt-title" });
  private readonly itemsCounts = el("span", { class: "bt-counts", "data-testid": "batch-items-counts" });
  private readonly statusSelect = el("select", { "data-testid": "batch-filter", "aria-label": "Show items of status" });
  private readonly pager = el("span", { class: "bt-pager" });
  private readonly table = el("table", { class: "bt-table", "data-testid": "batch-items" });

  constructor(private readonly panel: HTMLElement, private readonly toggleButton: HTMLElement) {
    toggleButton.addEventListener("click", () => this.toggle());
    this.statusSelect.addEventListener("change", () => {
      this.filter = this.statusSelect.value as ItemStatus | "";
      this.offset = 0;
      void this.refresh();
    });
    const head = el("div", { class: "bt-head" },
      el("strong", { text: "Batches" }),
      this.summary,
      el("button", { class: "icon", "aria-label": "Close the batches", title: "Close", text: "✕", onclick: () => this.toggle(false) }));
    this.itemsBox.append(
      el("div", { class: "bt-items-head" }, this.title, this.itemsCounts, el("span", { class: "bt-spacer" }),
        el("label", { class: "bt-filter" }, "Status ", this.statusSelect), this.pager),
      el("div", { class: "bt-scroll" }, this.table));
    this.itemsBox.hidden = true;
    panel.replaceChildren(head, el("div", { class: "bt-body" }, this.listBox, this.itemsBox));
  }

  get open(): boolean {
    return !this.panel.hidden;
  }

  toggle(open = !this.open): void {
    this.panel.hidden = !open;
    this.toggleButton.setAttribute("aria-pressed", String(open));
    clearTimeout(this.timer);
    if (open) void this.refresh();
    else this.generation++;
  }

  private choose(name: string): void {
    if (this.chosen !== name) {
      this.chosen = name;
      this.offset = 0;
      this.filter = "";
      this.page = null;
    }
    void this.refresh();
  }

  /** Reads the list and the chosen batch's page, shows them, and asks again in 2 s while
   * the panel is open and some batch has items left. */
  private async refresh(): Promise<void> {
    clearTimeout(this.timer);
    const generation = ++this.generation;
    try {
      const { batches } = await api.batches();
      if (generation !== this.generation) return;
      this.list = batches;
      if (this.chosen && !batches.some((b) => b.name === this.chosen)) {
        this.chosen = null;
        this.page = null;
      }
      const page = this.chosen ? await api.batch(this.chosen, this.offset, PAGE, this.filter || undefined) : null;
      if (generation !== this.generation) return;
      this.page = page;
      this.summary.textContent = batches.length === 1 ? "1 batch" : `${batches.length} batches`;
      this.summary.classList.remove("bt-error");
    } catch (e) {
      if (generation !== this.generation) return;
      // Polling must not flood the page with toasts: the panel says what went wrong.
      this.summary.textContent = e instanceof Error ? e.message : String(e);
      this.summary.classList.add("bt-error");
    }
    this.render();
    if (this.open && this.list.some(active)) this.timer = window.setTimeout(() => void this.refresh(), POLL_MS);
  }

  private render(): void {
    this.listBox.replaceChildren(...(this.list.length
      ? this.list.map((b) => el("button", {
          class: "bt-batch",
          role: "listitem",
          "data-testid": `batch-${b.name}`,
          "aria-current": b.name === this.chosen ? "true" : null,
          title: `Show the items of ${b.name}`,
          onclick: () => this.choose(b.name),
        }, el("span", { class: "bt-name", text: b.name }), bar(b),
          el("span", { class: "bt-counts", "data-testid": `batch-counts-${b.name}`, text: countsText(b) })))
      : [el("p", { class: "bt-empty", text: "No batches of this pipeline yet: run one with Pipeline::run_batch or cargo daggr run --batch inputs.jsonl." })]));
    const page = this.page;
    this.itemsBox.hidden = !page;
    if (!page) return;
    this.title.textContent = page.name;
    this.itemsCounts.textContent = countsText(page.counts);
    // Rebuilt only when a count changed: a rebuild closes the dropdown the user has open.
    const options: [string, string][] = [["", `all (${page.counts.total})`], ...STATUSES.map((s): [string, string] => [s, `${s} (${page.counts[s]})`])];
    const key = JSON.stringify(options);
    if (this.statusSelect.dataset.options !== key) {
      this.statusSelect.dataset.options = key;
      this.statusSelect.replaceChildren(...options.map(([value, text]) => el("option", { value, text })));
    }
    this.statusSelect.value = this.filter;
    this.renderPager(page);
    // The short columns fit their text; outputs and inputs share what is left.
    const columns: [string, string][] = [["#", "bt-num"], ["status", "bt-fit"], ["worker", "bt-fit"], ["tries", "bt-num"], ["time", "bt-time"], ["outputs / error", ""], ["inputs", ""]];
    const head = el("tr", {}, ...columns.map(([h, cls]) => el("th", { class: cls, text: h })));
    const rows = page.items.map((item) => this.row(item));
    if (!rows.length) rows.push(el("tr", {}, el("td", { class: "bt-empty", colspan: 7, text: this.filter ? `No ${this.filter} items` : "No items" })));
    this.table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  private renderPager(page: BatchPage): void {
    if (page.matched <= page.limit && page.offset === 0) {
      this.pager.replaceChildren();
      return;
    }
    const go = (offset: number) => () => {
      this.offset = Math.max(0, offset);
      void this.refresh();
    };
    const last = Math.min(page.matched, page.offset + page.items.length);
    this.pager.replaceChildren(
      el("button", { class: "icon", "data-testid": "batch-prev", "aria-label": "Previous items", text: "‹", disabled: page.offset === 0, onclick: go(page.offset - page.limit) }),
      el("span", { text: `${page.items.length ? page.offset + 1 : 0}–${last} of ${page.matched}` }),
      el("button", { class: "icon", "data-testid": "batch-next", "aria-label": "Next items", text: "›", disabled: last >= page.matched, onclick: go(page.offset + page.limit) }));
  }

  private row(item: BatchItem): HTMLElement {
    const result = item.error != null
      ? el("td", { class: "bt-error", "data-testid": `batch-error-${item.item}`, title: item.error, text: firstLine(item.error) })
      : el("td", { class: "bt-outputs", title: item.outputs ? JSON.stringify(item.outputs, null, 2) : "", text: item.outputs ? named(item.outputs, 80) : "" });
    const time = item.status === "claimed"
      ? (item.started_ms ? `since ${clock(item.started_ms)}` : "…")
      : ms(item.elapsed_ms);
    const when = [item.started_ms && `started ${clock(item.started_ms)}`, item.finished_ms && `finished ${clock(item.finished_ms)}`].filter(Boolean).join(", ");
    return el("tr", { "data-testid": `batch-item-${item.item}`, "data-status": item.status },
      el("td", { class: "bt-num", text: String(item.item) }),
      el("td", { class: "bt-fit" }, el("span", { class: "bt-status", "data-status": item.status, text: item.status })),
      el("td", { class: "bt-worker", title: item.worker ?? "", text: item.worker ?? "" }),
      el("td", { class: "bt-num", text: String(item.attempts) }),
      el("td", { class: "bt-time", title: when, text: time }),
      result,
      el("td", { class: "bt-inputs", title: JSON.stringify(item.inputs, null, 2), text: named(item.inputs) }));
  }
}
