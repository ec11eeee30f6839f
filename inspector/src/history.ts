// Result history per node: ‹ 2/5 › steps through past results (selecting one makes it current,
// so downstream goes stale, and the open card shows its log), the counter opens the list, and
// "restore" puts back the inputs that produced the selected result. Failed and cancelled runs
// are listed too (marked, with the first line of their error): they have no outputs to
// select, so picking one shows its log instead, and ‹ › step over them.
import { api } from "./api";
import { el, guard } from "./dom";
import { clock, firstLine, ms, plural } from "./format";
import { closePopover, openPopover } from "./popover";
import type { EntryInput, HistoryEntry, HistorySummary } from "./types";

/** Whether the entry is a failed or cancelled run rather than a result. */
export const isFailure = (e: HistoryEntry): boolean => e.error != null;

export class HistoryBar {
  readonly root: HTMLElement;
  private older: HTMLButtonElement | null = null;
  private newer: HTMLButtonElement | null = null;
  private counter: HTMLButtonElement | null = null;
  private summary: HistorySummary = { count: 0, selected_id: null, position: 0 };

  constructor(
    private readonly node: string,
    private readonly sheet: () => string,
    private readonly editable: boolean,
    /** A failed run was picked from the list: show its log. */
    private readonly showFailure: (entry: HistoryEntry) => void,
  ) {
    // The buttons are made when there is something to browse (most cards never need them).
    this.root = el("div", { class: "history", "data-testid": `history-${node}`, hidden: true });
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
    const failed = h.failed ?? 0;
    // One result has nothing to browse: the bar shows from the second one on, or from the
    // first failed run (whose log is only reachable from the list).
    this.root.hidden = h.count < 2 && !failed;
    if (this.root.hidden) return;
    if (!this.counter) this.build();
    const counter = this.counter!;
    // Shown oldest-first: the newest result is n/n.
    const n = h.count - h.position + 1;
    const results = !h.count ? "" : h.selected_id == null ? `–/${h.count}` : `${n}/${h.count}`;
    const fails = failed ? el("span", { class: "fails", text: `✕ ${failed}` }) : "";
    counter.replaceChildren(results, results && fails ? " · " : "", fails);
    const failedText = failed ? `, ${plural(failed, "failed run")}` : "";
    counter.setAttribute("aria-label", `${h.count ? `Result ${n} of ${h.count}` : "No result"}${failedText} for ${this.node}: list all`);
    this.older!.disabled = h.count < 2 || (h.selected_id != null && n <= 1);
    this.newer!.disabled = h.count < 2 || (h.selected_id != null && n >= h.count);
  }

  private async entries(): Promise<HistoryEntry[]> {
    return (await api.history(this.sheet(), this.node)).entries;
  }

  /** +1 = older, -1 = newer among the results (entries come newest first). */
  private async step(delta: number): Promise<void> {
    const results = (await this.entries()).filter((e) => !isFailure(e));
    const at = Math.max(0, results.findIndex((e) => e.selected));
    const next = results[at + delta];
    if (next && !next.selected) await api.select(this.sheet(), this.node, next.id);
  }

  private async list(): Promise<void> {
    const entries = await this.entries();
    // Results are numbered oldest-first, like the counter; failed runs are not results.
    let number = entries.filter((e) => !isFailure(e)).length;
    const total = number;
    const items = entries.slice(0, 100).map((e) => (isFailure(e) ? this.failureItem(e) : this.resultItem(e, number--, total)));
    if (!items.length) items.push(el("button", { disabled: true, text: "No results yet" }));
    openPopover(this.counter!, items, { label: `Results of ${this.node}`, testid: `history-list-${this.node}` });
  }

  private resultItem(e: HistoryEntry, number: number, total: number): HTMLElement {
    const inputs = e.inputs.map(describeInput).join(", ");
    return el("button", {
      role: "menuitemradio",
      "aria-checked": e.selected ? "true" : "false",
      class: e.selected ? "entry current" : "entry",
      "data-entry": e.id,
      "data-outcome": e.outcome,
      title: inputs ? `inputs: ${inputs}` : "",
      onclick: guard(async () => {
        closePopover();
        if (!e.selected) await api.select(this.sheet(), this.node, e.id);
      }),
    },
      el("span", { class: "entry-head", text: `${number}/${total} · run ${e.run} · ${e.outcome}${e.elapsed_ms != null ? ` · ${ms(e.elapsed_ms)}` : ""}${e.log_lines ? ` · ${plural(e.log_lines, "log line")}` : ""}` }),
      el("span", { class: "entry-sub", text: `${clock(e.finished_ms)}${inputs ? ` · ${inputs}` : ""}` }));
  }

  private failureItem(e: HistoryEntry): HTMLElement {
    const attempts = (e.attempts ?? 0) > 1 ? ` after ${e.attempts} attempts` : "";
    return el("button", {
      role: "menuitem",
      class: "entry failed",
      "data-entry": e.id,
      "data-outcome": e.outcome,
      title: `${e.error}\n\nShow the log of this run`,
      onclick: guard(() => {
        closePopover();
        this.showFailure(e);
      }),
    },
      el("span", { class: "entry-head", text: `run ${e.run} · ${e.outcome}${attempts}${e.elapsed_ms != null ? ` · ${ms(e.elapsed_ms)}` : ""}${e.log_lines ? ` · ${plural(e.log_lines, "log line")}` : ""}` }),
      el("span", { class: "entry-error", text: firstLine(e.error ?? "") }),
      el("span", { class: "entry-sub", text: clock(e.finished_ms) }));
  }
}

/** `min=3` for a recorded value; for a wired input the upstream's value when the server
 * found it (`sigma=2.5 ← sigma`), else where it came from and a short hash (`image ← scene #3fa9c1`):
 * what tells two entries apart. */
export function describeInput(p: EntryInput): string {
  if (p.value != null || (!p.from && !p.hash)) return `${p.port}=${short(p.value)}`;
  const from = p.from ? ` ← ${p.from}${p.from_port && p.from_port !== "output" && p.from_port !== "value" ? `.${p.from_port}` : ""}` : "";
  if (p.upstream_value !== undefined && !isMedia(p.upstream_value)) return `${p.port}=${short(p.upstream_value)}${from}`;
  return `${p.port}${from}${p.hash ? ` #${p.hash.slice(0, 6)}` : ""}`;
}

const isMedia = (v: unknown): boolean => !!v && typeof v === "object" && typeof (v as { blob?: unknown }).blob === "string";

function short(v: unknown): string {
  const text = typeof v === "string" ? v : JSON.stringify(v) ?? "";
  return text.length > 24 ? `${text.slice(0, 24)}…` : text;
}
