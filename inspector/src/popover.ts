// One floating menu at a time, placed beside the button that opened it. Closes on Escape,
// on a click elsewhere, and when the canvas moves; arrow keys move between its items.
import { el } from "./dom";

let current: { box: HTMLElement; anchor: HTMLElement; onClose?: () => void } | null = null;

export function isOpen(anchor?: HTMLElement): boolean {
  return !!current && (!anchor || current.anchor === anchor);
}

export function closePopover(refocus = false): void {
  if (!current) return;
  const { box, anchor, onClose } = current;
  current = null;
  box.remove();
  anchor.setAttribute("aria-expanded", "false");
  onClose?.();
  if (refocus) anchor.focus();
}

/** Opens `content` under `anchor` (toggles when the same anchor is clicked again); with
 * `beside`, next to that element instead (on its right, else its left), never over it. */
export function openPopover(anchor: HTMLElement, content: HTMLElement[], opts: { label: string; role?: string; testid?: string; onClose?: () => void; beside?: HTMLElement }): HTMLElement | null {
  if (current?.anchor === anchor) {
    closePopover();
    return null;
  }
  closePopover();
  const box = el("div", { class: "popover", role: opts.role || "menu", "aria-label": opts.label, "data-testid": opts.testid }, ...content);
  document.body.append(box);
  const r = anchor.getBoundingClientRect();
  const w = box.offsetWidth;
  const h = box.offsetHeight;
  const side = opts.beside?.getBoundingClientRect();
  if (side && (side.right + 6 + w <= innerWidth - 4 || side.left - 6 - w >= 4)) {
    box.style.left = `${side.right + 6 + w <= innerWidth - 4 ? side.right + 6 : side.left - 6 - w}px`;
    box.style.top = `${Math.max(4, Math.min(innerHeight - h - 4, r.top))}px`;
  } else {
    const left = Math.max(4, Math.min(innerWidth - w - 4, r.right - w));
    const below = r.bottom + 4 + h <= innerHeight;
    box.style.left = `${left}px`;
    box.style.top = `${below ? r.bottom + 4 : Math.max(4, r.top - 4 - h)}px`;
  }
  anchor.setAttribute("aria-expanded", "true");
  current = { box, anchor, onClose: opts.onClose };
  const first = box.querySelector<HTMLElement>("button, [tabindex]");
  first?.focus({ preventScroll: true });
  return box;
}

document.addEventListener("pointerdown", (e) => {
  if (current && !current.box.contains(e.target as Node) && !current.anchor.contains(e.target as Node)) closePopover();
});
document.addEventListener("keydown", (e) => {
  if (!current) return;
  if (e.key === "Escape") {
    e.preventDefault();
    closePopover(true);
    return;
  }
  if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
  const items = [...current.box.querySelectorAll<HTMLElement>("button:not([disabled])")];
  if (!items.length) return;
  e.preventDefault();
  const at = items.indexOf(document.activeElement as HTMLElement);
  const next = e.key === "ArrowDown" ? (at + 1) % items.length : (at - 1 + items.length) % items.length;
  items[next].focus();
});
