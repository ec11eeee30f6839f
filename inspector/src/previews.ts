// Output previews by type: a one-line summary for the card's port row, and a rich preview
// (image, audio player, video, file download, gallery, long text, collapsible JSON tree).
import { el } from "./dom";
import { withToken } from "./api";
import { bytes } from "./format";
import type { Media, OutputState } from "./types";

export interface Summary {
  text: string;
  title: string;
  /** Whether a rich preview adds something the summary does not show. */
  rich: boolean;
}

const SHORT = 48;

function isRef(v: unknown): v is { kind: string; mime: string; blob: string; size?: number; name?: string | null } {
  return !!v && typeof v === "object" && typeof (v as any).blob === "string" && typeof (v as any).mime === "string" && typeof (v as any).kind === "string";
}

function number(n: number): string {
  if (Number.isInteger(n)) return String(n);
  const abs = Math.abs(n);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e7) ? n.toExponential(3) : String(Number(n.toPrecision(6)));
}

export function summarize(out: OutputState): Summary {
  const v = out.value;
  const media = out.media || [];
  // A list counts its entries (a map's collected results hold fewer media than items).
  if (media.length > 1) return { text: `${Array.isArray(v) ? v.length : media.length} items`, title: `${out.port}: ${out.type}, ${media.length} media items`, rich: true };
  if (media.length === 1) {
    const m = media[0];
    const size = isRef(v) && v.size != null ? ` · ${bytes(v.size)}` : "";
    return { text: `${m.name || m.kind}${size}`, title: `${out.port}: ${out.type} (${m.mime})`, rich: true };
  }
  if (typeof v === "string") {
    const short = v.length <= SHORT && !v.includes("\n");
    return { text: short ? v : `${v.length} chars`, title: short ? v : `${out.port}: ${out.type}, ${v.length} characters`, rich: !short };
  }
  if (typeof v === "number") return { text: number(v), title: String(v), rich: false };
  if (v === null || typeof v !== "object") return { text: JSON.stringify(v), title: `${out.port}: ${out.type}`, rich: false };
  if (Array.isArray(v)) return { text: v.length ? `${v.length} items` : "[]", title: `${out.port}: ${out.type}, ${v.length} items`, rich: v.length > 0 };
  const keys = Object.keys(v);
  return { text: keys.length ? `${keys.length} keys` : "{}", title: `${out.port}: ${out.type}: ${keys.join(", ")}`, rich: keys.length > 0 };
}

export function richPreview(out: OutputState): HTMLElement | null {
  const media = out.media || [];
  const box = el("div", { class: "rich", "data-port": out.port });
  if (media.length > 1) box.append(gallery(media));
  else if (media.length === 1) box.append(mediaElement(media[0]));
  else if (typeof out.value === "string") box.append(el("pre", { text: out.value }));
  else if (out.value !== null && typeof out.value === "object") box.append(el("div", { class: "json" }, jsonTree(out.value)));
  else return null;
  return box;
}

/** The media references inside a value, with their URLs (as the server lists them beside an
 * output; the page needs them for a part of one, such as a map's item). */
export function mediaIn(value: unknown, into: Media[] = []): Media[] {
  if (isRef(value)) {
    const enc = encodeURIComponent;
    into.push({ kind: value.kind as Media["kind"], mime: value.mime, name: value.name ?? null, url: `/api/blobs/${enc(value.blob)}?mime=${enc(value.mime)}` });
  } else if (Array.isArray(value)) for (const v of value) mediaIn(v, into);
  else if (value && typeof value === "object") for (const v of Object.values(value)) mediaIn(v, into);
  return into;
}

/** A partial output while the node runs (streamed text shows as text). */
export function partialPreview(value: unknown): HTMLElement {
  const text = typeof value === "string" ? value : value && typeof (value as any).text === "string" ? (value as any).text : null;
  if (text !== null) return el("pre", { class: "partial", text });
  return el("div", { class: "json partial" }, jsonTree(value));
}

export function mediaElement(m: Media): HTMLElement {
  const url = withToken(m.url);
  const label = m.name || `${m.kind} output`;
  switch (m.kind) {
    case "image": {
      const img = el("img", { src: url, alt: label, decoding: "async", draggable: "false" });
      return el("button", { class: "thumb", title: `${label}: open full size`, "aria-label": `Open ${label}`, onclick: () => openLightbox(m) }, img);
    }
    case "audio":
      // Metadata only (a few KB): the player then shows the clip's length.
      return el("audio", { src: url, controls: true, preload: "metadata", "aria-label": label });
    case "video":
      return el("video", { src: url, controls: true, preload: "metadata", muted: true, playsinline: true, "aria-label": label });
    default:
      return el("a", { class: "file", href: url, download: m.name || "download", title: `Download ${m.mime}` }, `⤓ ${m.name || m.mime}`);
  }
}

function gallery(media: Media[]): HTMLElement {
  const grid = el("div", { class: "gallery" });
  for (const m of media.slice(0, 48)) grid.append(mediaElement(m));
  if (media.length > 48) grid.append(el("span", { class: "more", text: `+${media.length - 48}` }));
  return grid;
}

const keySpan = (key?: string | number) => (key === undefined ? null : el("span", { class: "k", text: `${key}: ` }));

/** A collapsible JSON tree; children are built when a branch is first opened. */
export function jsonTree(value: unknown, key?: string | number, open = true): HTMLElement {
  if (value === null || typeof value !== "object") {
    let text = JSON.stringify(value) ?? String(value);
    const long = text.length > 300;
    if (long) text = `${text.slice(0, 300)}…`;
    return el("div", { class: "leaf" }, keySpan(key), el("span", { class: `v ${value === null ? "null" : typeof value}`, text, title: long ? `${JSON.stringify(value).length} characters` : null }));
  }
  const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value as object);
  const brace = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  const details = el("details", {}, el("summary", {}, keySpan(key), el("span", { class: "brace", text: brace })));
  let built = false;
  const build = () => {
    if (built) return;
    built = true;
    for (const [k, v] of entries.slice(0, 200)) details.append(jsonTree(v, k, false));
    if (entries.length > 200) details.append(el("div", { class: "more", text: `… ${entries.length - 200} more` }));
  };
  details.addEventListener("toggle", () => details.open && build());
  if (open && entries.length <= 24) {
    build();
    details.open = true;
  }
  return details;
}

/** Full-size media in a modal dialog (Escape or a click closes it). */
export function openLightbox(m: Media): void {
  const dialog = document.getElementById("lightbox") as HTMLDialogElement | null;
  if (!dialog) return;
  const url = withToken(m.url);
  const media = m.kind === "image" ? el("img", { src: url, alt: m.name || "image" }) : m.kind === "video" ? el("video", { src: url, controls: true, autoplay: true }) : el("audio", { src: url, controls: true, autoplay: true });
  dialog.replaceChildren(
    el("form", { method: "dialog", class: "lightbox-bar" },
      el("span", { text: m.name || m.mime }),
      el("a", { href: url, download: m.name || "download", text: "Download" }),
      el("button", { value: "close", "aria-label": "Close", text: "✕" })),
    media,
  );
  dialog.onclick = (e) => e.target === dialog && dialog.close();
  dialog.showModal();
}
