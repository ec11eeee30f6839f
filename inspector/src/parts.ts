// The parts of a composite node's card (src/exec/composite.rs on the server):
// - a map's items: one chip per item (computed, cached, failed, running), live while the map
//   runs (`item_finished` events); a click shows the item's output (previews.ts) or its
//   error, the item's own rerun (that item alone is computed again, bypassing its cache
//   entry: `POST …/nodes/{node}/items/{k}/run`), and for a failed item the map's rerun (the
//   map runs again: the items that succeeded are cache hits, only the failed ones are
//   computed);
// - a choice's variants: the selected one, the one that produced the current result, and
//   those that failed before it (fallback), the error on hover; a click selects a variant.
// The closed card keeps room for them (layout.rs `parts_rows`: two rows for a map, one for a
// choice); the open card shows all.
import { el, guard } from "./dom";
import { firstLine } from "./format";
import { jsonTree, mediaIn, richPreview } from "./previews";
import type { ItemPart, NodeSpec, NodeState, Parts } from "./types";

export type ChipOutcome = "computed" | "cached" | "failed" | "running" | "skipped";

/** An item's outcome as its chip shows it: every cache source is "cached". */
export function chipOutcome(outcome: string): ChipOutcome {
  switch (outcome) {
    case "computed":
    case "failed":
    case "running":
    case "skipped":
      return outcome;
    default:
      return "cached"; // memory, disk, shared, workspace
  }
}

const isOk = (v: unknown): v is { Ok: unknown } => !!v && typeof v === "object" && "Ok" in v;
const isErr = (v: unknown): v is { Err: { error?: string } } => !!v && typeof v === "object" && "Err" in v;

/** A map's items and each item's output value (`undefined`: the item has none) in its
 * current result. The output pairs with the items by what the map does with failed items:
 * one `Result` per item (`collect`), the values of the items that did not fail (`skip`), or
 * one value per item. A result without item outcomes (one stored by an older version) has
 * the output's items, outcome `result`. */
export function mapItems(node: NodeSpec, state: NodeState | null): { items: ItemPart[]; values: unknown[] } {
  const parts = state?.parts?.items;
  const out = state?.outputs[0]?.value;
  if (!Array.isArray(out)) return { items: (parts || []).map((i) => ({ ...i })), values: [] };
  const collect = node.failures === "collect";
  if (!parts) {
    const items = out.map((v): ItemPart => (collect && isErr(v) ? { outcome: "failed", error: v.Err?.error ?? null } : { outcome: "result" }));
    return { items, values: collect ? out.map((v) => (isOk(v) ? v.Ok : undefined)) : out };
  }
  const items = parts.map((i) => ({ ...i }));
  if (collect) return { items, values: out.map((v) => (isOk(v) ? v.Ok : undefined)) };
  if (node.failures === "skip") {
    let next = 0;
    return { items, values: items.map((item) => (item.outcome === "failed" ? undefined : out[next++])) };
  }
  return { items, values: items.map((_, i) => out[i]) };
}

/** How an item's chip names its outcome. */
function outcomeText(outcome: string): string {
  const chip = chipOutcome(outcome);
  if (chip !== "cached") return chip;
  return outcome === "result" ? "cached with the map's result" : `cached (${outcome})`;
}

export class MapItems {
  readonly root: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly chips: HTMLElement;
  private readonly detail: HTMLElement;
  private items: ItemPart[] = [];
  private values: unknown[] = [];
  /** Whether the map runs (its chips fill in live), and how many items it had before. */
  private running = false;
  private expected: number | null = null;
  /** The item whose detail is shown. */
  private shown: number | null = null;

  /** `rerun`: the map again (its failed items are computed); `runItem`: item k alone. */
  constructor(private readonly node: NodeSpec, private readonly rerun: () => Promise<void>, private readonly runItem: (item: number) => Promise<void>) {
    this.summary = el("div", { class: "parts-summary", "data-testid": `items-${node.name}`, text: "no items yet" });
    this.chips = el("div", { class: "chips", role: "list", "aria-label": `Items of ${node.name}` });
    this.detail = el("div", { class: "item-detail", "data-testid": `item-detail-${node.name}`, hidden: true });
    this.root = el("div", { class: "parts items", "data-testid": `parts-${node.name}` }, this.summary, this.chips, this.detail);
    // The click also reaches the card, which opens (selected): the detail shows in full.
    this.chips.addEventListener("click", (e) => {
      const chip = (e.target as Element).closest<HTMLElement>(".chip");
      if (!chip) return;
      const i = Number(chip.dataset.item);
      this.shown = this.shown === i ? null : i;
      for (const c of this.chips.children) (c as HTMLElement).classList.toggle("shown", Number((c as HTMLElement).dataset.item) === this.shown);
      this.renderDetail();
    });
  }

  /** The items of the current result, with each item's output; or, while the map runs,
   * the items so far (`expected`: how many it had before this run, if known). */
  show(items: ItemPart[], values: unknown[], running = false, expected: number | null = null): void {
    this.items = items.map((i) => ({ ...i }));
    this.values = values;
    this.running = running;
    this.expected = running ? expected : null;
    if (this.shown !== null && this.shown >= items.length) this.shown = null;
    this.renderChips();
  }

  /** An item finished (live, before the result is there); `expected`: how many items the
   *  map has, when the event says. */
  finish(index: number, outcome: string, error: string | null, expected: number | null = null): void {
    if (expected !== null) this.expected = expected;
    while (this.items.length <= index) this.items.push({ outcome: "running" });
    this.items[index] = { outcome, error };
    const chip = this.chips.children[index] as HTMLElement | undefined;
    if (chip && this.chips.children.length === this.items.length) this.paintChip(chip, index);
    else this.renderChips();
    this.renderSummary();
    if (this.shown === index) this.renderDetail();
  }

  private renderChips(): void {
    const chips = this.items.map((_, i) => {
      const chip = el("button", { class: "chip", role: "listitem", "data-item": i, "data-testid": `item-${this.node.name}-${i}`, text: String(i) });
      this.paintChip(chip, i);
      chip.classList.toggle("shown", i === this.shown);
      return chip;
    });
    this.chips.replaceChildren(...chips);
    this.renderSummary();
    this.renderDetail();
  }

  private paintChip(chip: HTMLElement, i: number): void {
    const item = this.items[i];
    chip.dataset.outcome = chipOutcome(item.outcome);
    const how = outcomeText(item.outcome);
    chip.title = item.error ? `item ${i}: ${how}\n${item.error}` : `item ${i}: ${how}`;
    chip.setAttribute("aria-label", chip.title);
  }

  private renderSummary(): void {
    const counts: Record<ChipOutcome, number> = { computed: 0, cached: 0, failed: 0, running: 0, skipped: 0 };
    for (const item of this.items) counts[chipOutcome(item.outcome)]++;
    const total = this.items.length;
    let text: string;
    if (this.running) {
      // The number of items is known once the result is there (or from the last run).
      const finished = total - counts.running;
      const of = this.expected != null ? Math.max(this.expected, total) : null;
      text = of != null ? `${finished}/${of} items` : `${finished} item${finished === 1 ? "" : "s"} done…`;
    } else if (!total) text = "no items";
    else {
      const parts = [`${total} item${total === 1 ? "" : "s"}`];
      for (const k of ["computed", "cached", "failed", "skipped"] as const) if (counts[k]) parts.push(`${counts[k]} ${k}`);
      text = parts.join(" · ");
    }
    this.summary.textContent = text;
    this.summary.title = text;
    this.summary.dataset.failed = String(counts.failed);
    this.summary.dataset.running = String(this.running);
  }

  private renderDetail(): void {
    const i = this.shown;
    const item = i === null ? undefined : this.items[i];
    this.detail.hidden = !item;
    if (!item || i === null) {
      this.detail.replaceChildren();
      return;
    }
    const outcome = chipOutcome(item.outcome);
    const head = el("div", { class: "item-head" }, el("strong", { text: `item ${i}` }), el("span", { class: `item-outcome o-${outcome}`, text: outcomeText(item.outcome) }));
    const body: (HTMLElement | null)[] = [head];
    if (item.error) body.push(el("pre", { class: "error", role: "alert", "data-testid": `item-error-${this.node.name}`, text: item.error }));
    const value = this.values[i];
    if (value !== undefined) {
      const rich = richPreview({ port: `item ${i}`, type: "", value, media: mediaIn(value) });
      body.push(el("div", { class: "item-value", "data-testid": `item-value-${this.node.name}` }, rich || jsonTree(value)));
    }
    head.append(el("button", {
      class: "rerun",
      "data-testid": `item-run-${this.node.name}-${i}`,
      disabled: this.running,
      title: this.running
        ? "a run is in progress"
        : `Compute item ${i} of ${this.node.name} again, even if the cache has it (the other items come from the cache)`,
      text: "↻ Run item",
      onclick: guard((e: Event) => {
        e.stopPropagation();
        return this.runItem(i);
      }),
    }));
    if (outcome === "failed") {
      head.append(el("button", {
        class: "rerun",
        "data-testid": `item-rerun-${this.node.name}`,
        title: `Run ${this.node.name} again: the items that succeeded come from the cache, the failed ones are computed again`,
        text: "↻ Rerun",
        onclick: guard((e: Event) => {
          e.stopPropagation();
          return this.rerun();
        }),
      }));
    }
    this.detail.replaceChildren(...body.filter((b): b is HTMLElement => !!b));
  }
}

export class ChoiceVariants {
  readonly root: HTMLElement;
  private readonly pills = new Map<string, HTMLButtonElement>();
  private readonly note: HTMLElement;

  constructor(node: NodeSpec, choose: (variant: string) => Promise<void>) {
    this.note = el("span", { class: "choice-note", "data-testid": `choice-note-${node.name}` });
    const row = el("div", { class: "variants", role: "group", "aria-label": `Variants of ${node.name}` });
    for (const v of node.variants || []) {
      const pill = el("button", { class: "variant", "data-testid": `variant-${node.name}-${v}`, "aria-pressed": "false", text: v });
      pill.addEventListener("click", guard(() => choose(v)));
      this.pills.set(v, pill);
      row.append(pill);
    }
    this.root = el("div", { class: "parts choice", "data-testid": `parts-${node.name}` }, row, this.note);
  }

  /** `selected`: the `variant` input's value; `parts`: what the current result says;
   * `result`: whether there is one, `stale`: whether an input changed since. A result
   * without parts (a hit under the choice's own key) that is not stale was made by the
   * selected variant: only a result with no fallback is stored under that key. */
  update(selected: unknown, parts: Parts | null | undefined, result: boolean, stale: boolean): void {
    const failed = new Map((parts?.failed || []).map((f) => [f.variant, f.error]));
    const used = parts?.variant ?? (result && !stale && typeof selected === "string" ? selected : null);
    for (const [v, pill] of this.pills) {
      const state = v === used ? "used" : failed.has(v) ? "failed" : "";
      pill.dataset.state = state;
      pill.setAttribute("aria-pressed", String(v === selected));
      pill.classList.toggle("selected", v === selected);
      const notes = [v === selected ? "selected" : "select this variant"];
      if (state === "used") notes.push("produced the current result");
      if (state === "failed") notes.push(`failed: ${failed.get(v)}`);
      pill.title = `${v}: ${notes.join("; ")}`;
    }
    let text = used ? `result from ${used}` : result ? "result from an earlier selection" : "no result yet";
    if (used && failed.size) text += ` after ${[...failed.keys()].join(", ")} failed`;
    this.note.textContent = text;
    this.note.title = used && failed.size ? [...failed].map(([v, e]) => `${v}: ${firstLine(e)}`).join("\n") : text;
    this.note.dataset.fellBack = String(!!used && failed.size > 0);
  }
}
