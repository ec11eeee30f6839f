// Small DOM helpers: element builder, toasts, error guard, debounce, one-per-frame batching.

type AttrValue = string | number | boolean | null | undefined;
export type Attrs = Record<string, AttrValue | ((e: any) => void)>;
export type Child = Node | string | null | undefined | false;

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from the page`);
  return node as T;
}

/** `el("button", { class: "x", text: "Go", onclick: fn, "data-testid": "go" }, child…)`. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const key in attrs) {
    const v = attrs[key];
    if (v == null || v === false) continue;
    if (typeof v === "function") node.addEventListener(key.slice(2), v);
    else if (key === "class") node.className = String(v);
    else if (key === "text") node.textContent = String(v);
    else node.setAttribute(key, v === true ? "" : String(v));
  }
  for (const c of children) if (c != null && c !== false) node.append(c);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, AttrValue> = {}): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const key in attrs) {
    const v = attrs[key];
    if (v != null && v !== false) node.setAttribute(key, String(v));
  }
  return node;
}

let toastTimer = 0;
/** A short message at the bottom of the screen (errors by default). */
export function toast(message: string, kind: "error" | "info" = "error"): void {
  const box = $("toast");
  box.textContent = message;
  box.className = `show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => (box.className = ""), kind === "error" ? 6000 : 2500);
}

/** Runs an async handler and turns a thrown error into a toast. */
export function guard<A extends unknown[]>(fn: (...args: A) => unknown): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      toast(e instanceof Error ? e.message : String(e));
    }
  };
}

/** Calls `fn` once things are quiet for `wait` ms, but at least every `maxWait` ms while busy. */
export function debounce(fn: () => void, wait: number, maxWait = Infinity): () => void {
  let timer = 0;
  let first = 0;
  return () => {
    const now = performance.now();
    if (!first) first = now;
    clearTimeout(timer);
    const delay = Math.max(0, Math.min(wait, first + maxWait - now));
    timer = window.setTimeout(() => {
      first = 0;
      fn();
    }, delay);
  };
}

// DOM writes are batched to the next animation frame, one job per key (the last one wins).
const jobs = new Map<string, () => void>();
let queued = false;
export function onFrame(key: string, job: () => void): void {
  jobs.set(key, job);
  if (!queued) {
    queued = true;
    // Hidden tabs get no animation frames: fall back to a timer there.
    if (document.hidden) setTimeout(flush, 100);
    else requestAnimationFrame(flush);
  }
}
document.addEventListener("visibilitychange", () => document.hidden && queued && setTimeout(flush, 100));
function flush(): void {
  if (!queued) return;
  queued = false;
  const list = [...jobs.values()];
  jobs.clear();
  for (const job of list) job();
}

export function download(filename: string, body: BlobPart, type: string): void {
  const url = URL.createObjectURL(new Blob([body], { type }));
  const a = el("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
