// The ▶ menu of a card: run this node only, run to here, run from here. Hovering or
// focusing an entry outlines the nodes it may run; the entry says how many.
import { el, guard } from "./dom";
import { nameList, plural } from "./format";
import { plan, type GraphIndex } from "./graph";
import { closePopover, openPopover } from "./popover";
import type { Scope } from "./types";

const ENTRIES: [Exclude<Scope, "all">, string, (n: number) => string][] = [
  ["only", "Run this node", () => "this node only, with the upstream results it has"],
  ["to", "Run to here", (n) => `this node and what it needs: ${plural(n, "node")} (cached ones are reused)`],
  ["from", "Run from here", (n) => `this node and everything downstream: ${plural(n, "node")}`],
];

export function openRunMenu(anchor: HTMLElement, node: string, idx: GraphIndex, opts: { running: boolean; run: (scope: Scope, node: string) => Promise<void>; mark: (names: string[] | null) => void }): void {
  const items = ENTRIES.map(([scope, label, hint]) => {
    const names = plan(idx, scope, node);
    const show = () => opts.mark(names);
    const hide = () => opts.mark(null);
    return el("button", {
      role: "menuitem",
      class: "run-entry",
      "data-testid": `run-${scope}-${node}`,
      disabled: opts.running,
      title: `Runs: ${nameList(names, 12)}`,
      onmouseenter: show,
      onfocus: show,
      onmouseleave: hide,
      onclick: guard(async () => {
        closePopover();
        await opts.run(scope, node);
      }),
    }, el("span", { class: "entry-head", text: label }), el("span", { class: "entry-sub", text: opts.running ? "a run is in progress" : hint(names.length) }));
  });
  // Beside the card, not over it: the entries' hover hint outlines that very card.
  const card = anchor.closest<HTMLElement>(".card") || undefined;
  openPopover(anchor, items, { label: `Run ${node}`, testid: `run-menu-${node}`, onClose: () => opts.mark(null), beside: card });
}
