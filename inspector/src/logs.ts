// A node's log, in its card while the card is open: fetched when it opens, then kept live
// from `node_log` events. The fetch says which event it is up to, so an event already in it
// is skipped and none falls between the two. Timestamped, monospace, following the end
// while the reader is at the end, and copyable. A failed run picked from the history shows
// its stored log instead (not live), until the reader goes back to the current one, another
// result becomes current, or the node runs again.
import { api } from "./api";
import { el, guard, toast } from "./dom";
import { firstLine, plural } from "./format";
import type { HistoryEntry, LogLine, Status } from "./types";

/** Lines kept on the page per log: as many as the server keeps per result. */
const MAX_LINES = 1000;

/** `12:03:04.120`, local time. */
export function stamp(unixMs: number): string {
  const d = new Date(unixMs);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** A live change to the log: a line, or `null` when a new execution starts a new log. */
type Change = [id: number, line: LogLine | null];

export class LogView {
  readonly root: HTMLElement;
  private list!: HTMLOListElement;
  private count!: HTMLElement;
  /** Shown while a past run's log is: which run, and the way back. */
  private sourceRow!: HTMLElement;
  private source!: HTMLElement;
  /** The history entry whose log is shown, or null for the current (live) log. */
  private entry: HistoryEntry | null = null;
  private lines: LogLine[] = [];
  private dropped = 0;
  /** Events up to this id are already in `lines`. */
  private seen = 0;
  /** Closed: nothing is kept. Loading: live changes wait for the fetch. */
  private state: "closed" | "loading" | "open" = "closed";
  private waiting: Change[] = [];
  /** Bumped by every fetch and close, so an answer that arrives late is dropped. */
  private generation = 0;

  constructor(private readonly node: string, private readonly sheet: () => string, private readonly status: () => Status) {
    // The content is made when the card first opens (most cards of a big graph never do).
    this.root = el("section", { class: "logs", "aria-label": `Logs of ${node}`, "data-testid": `logs-${node}` });
  }

  private build(): void {
    const node = this.node;
    this.count = el("span", { class: "logs-count" });
    this.source = el("span", { class: "logs-source", "data-testid": `logs-source-${node}` });
    const back = el("button", {
      class: "back",
      title: "Show the log of the current result",
      "aria-label": `Show the current log of ${node}`,
      "data-testid": `logs-current-${node}`,
      text: "Current log",
      onclick: guard(() => this.load()),
    });
    this.sourceRow = el("div", { class: "logs-source-row", hidden: true }, this.source, back);
    this.list = el("ol", { class: "log-lines scroll", role: "log", tabindex: 0, "aria-label": `Log of ${node}`, "data-testid": `log-lines-${node}` });
    const copy = el("button", {
      class: "copy",
      title: "Copy the log with its timestamps",
      "aria-label": `Copy the log of ${node}`,
      "data-testid": `logs-copy-${node}`,
      text: "Copy",
      onclick: guard(() => this.copy()),
    });
    this.root.append(el("div", { class: "logs-head" }, el("span", { class: "logs-title", text: "Logs" }), this.count, copy), this.sourceRow, this.list);
  }

  /** The card opened: fetch the log and follow it. */
  open(): void {
    if (!this.list) this.build();
    if (this.state === "closed") void this.load();
  }

  /** Shows the stored log of history entry `entry` (a failed run) instead of the current one. */
  showEntry(entry: HistoryEntry): void {
    if (!this.list) this.build();
    void this.load(entry);
  }

  /** The card closed: forget the lines (a closed card shows no log). */
  close(): void {
    this.state = "closed";
    this.generation++;
    this.entry = null;
    this.lines = [];
    this.waiting = [];
    this.list?.replaceChildren();
  }

  /** The log to show changed (another result was selected, another sheet shown): fetch again. */
  reload(): void {
    if (this.state !== "closed") void this.load();
  }

  /** A `node_log` event (`line`), or a `node_started` of a first attempt (`null`). */
  live(id: number, line: LogLine | null): void {
    if (this.entry) {
      // A stored log does not change; a new execution takes the reader back to the live one.
      if (!line && this.state !== "closed") void this.load();
      return;
    }
    if (this.state === "loading") this.waiting.push([id, line]);
    else if (this.state === "open") this.change(id, line);
  }

  /** Fetches the current log, or `entry`'s. */
  private async load(entry: HistoryEntry | null = null): Promise<void> {
    const generation = ++this.generation;
    this.state = "loading";
    this.entry = entry;
    this.writeSource();
    this.waiting = [];
    try {
      const logs = await api.logs(this.sheet(), this.node, entry?.id);
      if (generation !== this.generation) return;
      this.lines = logs.lines.slice(-MAX_LINES);
      this.dropped = logs.dropped + (logs.lines.length - this.lines.length);
      this.seen = logs.last_event_id;
      this.state = "open";
      this.render();
      const waiting = this.waiting;
      this.waiting = [];
      for (const [id, line] of waiting) this.change(id, line);
    } catch (e) {
      if (generation !== this.generation) return;
      this.state = "open";
      this.list.replaceChildren(el("li", { class: "empty", text: `The log could not be loaded: ${e instanceof Error ? e.message : String(e)}` }));
    }
  }

  private change(id: number, line: LogLine | null): void {
    if (id <= this.seen) return; // already in what was fetched
    this.seen = id;
    if (!line) {
      this.lines = [];
      this.dropped = 0;
      this.render();
      return;
    }
    const follow = this.atEnd();
    this.lines.push(line);
    if (this.lines.length > MAX_LINES) {
      // Rare (a node logging past the bound): redraw with the oldest line counted as dropped.
      this.lines.shift();
      this.dropped++;
      this.render(follow);
      return;
    }
    this.list.querySelector(".empty")?.remove();
    this.list.append(row(line));
    this.writeCount();
    if (follow) this.list.scrollTop = this.list.scrollHeight;
  }

  /** Whether the reader is at the end of the list (then new lines keep it there). */
  private atEnd(): boolean {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 8;
  }

  /** Says whose log is shown: a past run's (with the way back), or nothing for the current one. */
  private writeSource(): void {
    const entry = this.entry;
    this.sourceRow.hidden = !entry;
    this.source.textContent = entry ? `run ${entry.run} · ${entry.outcome}` : "";
    this.source.title = entry?.error ? firstLine(entry.error) : "";
    this.root.classList.toggle("of-failure", !!entry?.error);
  }

  private render(follow = true): void {
    const rows: HTMLElement[] = this.lines.map(row);
    if (this.dropped) rows.unshift(el("li", { class: "dropped", text: `… ${plural(this.dropped, "earlier line")} not kept` }));
    if (!this.lines.length) rows.push(el("li", { class: "empty", text: this.emptyText() }));
    this.list.replaceChildren(...rows);
    this.writeCount();
    if (follow) this.list.scrollTop = this.list.scrollHeight;
  }

  private emptyText(): string {
    if (this.entry) return "Nothing was logged.";
    switch (this.status()) {
      case "pending":
        return "Not run yet.";
      case "running":
        return "Nothing logged yet.";
      case "cached":
        return "No log: this result came from the cache, the node did not run.";
      default:
        return "Nothing was logged.";
    }
  }

  private writeCount(): void {
    this.count.textContent = this.lines.length ? plural(this.lines.length, "line") : "";
  }

  private async copy(): Promise<void> {
    const text = this.lines.map((l) => `${stamp(l.unix_ms)}  ${l.line}`).join("\n");
    if (!text) return toast("The log is empty", "info");
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard here (a plain-http host that is not loopback, or no permission):
      // select the lines instead, for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(this.list);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
      return toast("The log is selected: press Ctrl+C to copy it", "info");
    }
    toast(`Copied ${plural(this.lines.length, "line")}`, "info");
  }
}

function row(l: LogLine): HTMLElement {
  const at = new Date(l.unix_ms);
  return el("li", { class: "line" }, el("time", { datetime: at.toISOString(), title: at.toLocaleString(), text: stamp(l.unix_ms) }), el("span", { class: "text", text: l.line }));
}
