// Input widgets by the port's `widget`: text, text area, number, integer, slider (`range`),
// checkbox (`bool`), dropdown (`choice`: the hint's choices, a Rust enum's variants, a choice
// node's variants), json, and media uploads (image / audio / video / file go to
// POST /api/blobs first; the returned reference is the value).
import { api } from "./api";
import { el, toast } from "./dom";
import { bytes } from "./format";
import type { MediaRef, NodeSpec, PortSpec } from "./types";

export interface Widget {
  /** The control (carries the id the port's <label> points at). */
  control: HTMLElement;
  /** What goes in the port row. */
  root: HTMLElement;
  /** Shows a value from the server (skipped while the user is editing it). */
  set(value: unknown): void;
}

export type Commit = (value: unknown) => Promise<void>;

const editing = (e: Element) => document.activeElement === e;

function fail(message: string, control: HTMLElement): void {
  control.setAttribute("aria-invalid", "true");
  toast(message);
}

/** Sends a new value; marks the control busy meanwhile and shows errors. */
async function send(control: HTMLElement, commit: Commit, value: unknown, revert: () => void): Promise<void> {
  control.removeAttribute("aria-invalid");
  control.classList.add("saving");
  try {
    await commit(value);
  } catch (e) {
    revert();
    fail(e instanceof Error ? e.message : String(e), control);
  } finally {
    control.classList.remove("saving");
  }
}

export function makeWidget(node: NodeSpec, port: PortSpec, id: string, commit: Commit): Widget {
  const testid = `input-${node.name}-${port.name}`;
  const kind = port.widget || "json";
  let last: unknown = null;

  if (kind === "bool") {
    const box = el("input", { id, type: "checkbox", "data-testid": testid });
    box.addEventListener("change", () => send(box, commit, box.checked, () => (box.checked = !!last)));
    return { control: box, root: box, set: (v) => ((last = v), (box.checked = !!v)) };
  }

  const choices = port.hint?.choices;
  if (kind === "choice" && Array.isArray(choices) && choices.length) {
    const select = el("select", { id, "data-testid": testid }, ...choices.map((c, i) => el("option", { value: String(i), text: typeof c === "string" ? c : JSON.stringify(c) })));
    const show = (v: unknown) => (select.value = String(choices.findIndex((c) => JSON.stringify(c) === JSON.stringify(v))));
    select.addEventListener("change", () => send(select, commit, choices[Number(select.value)], () => show(last)));
    return { control: select, root: select, set: (v) => ((last = v), editing(select) || show(v)) };
  }

  if (kind === "image" || kind === "audio" || kind === "video" || kind === "file") return mediaWidget(node, port, id, testid, commit);
  const hint = port.hint;
  if (kind === "range" && hint?.minimum != null && hint.maximum != null) return rangeWidget(port, id, testid, commit, hint.minimum, hint.maximum, hint.step);
  if (kind === "textarea") return textWidget(port, id, testid, commit);

  const numeric = kind === "number" || kind === "integer";
  const input = el("input", {
    id,
    type: numeric ? "number" : "text",
    step: kind === "integer" ? "1" : numeric ? "any" : null,
    inputmode: kind === "integer" ? "numeric" : numeric ? "decimal" : null,
    spellcheck: kind === "json" ? "false" : null,
    autocomplete: "off",
    "data-testid": testid,
    title: `${port.name}: ${port.type}`,
  });
  const show = (v: unknown) => (v === null || v === undefined ? "" : kind === "text" ? String(v) : kind === "json" ? JSON.stringify(v) : String(v));
  const revert = () => (input.value = show(last));
  input.addEventListener("change", () => {
    let value: unknown = input.value;
    if (numeric) {
      const n = Number(input.value);
      if (input.value.trim() === "" || !isFinite(n)) return fail(`${port.name}: a number is needed`, input);
      if (kind === "integer" && !Number.isInteger(n)) return fail(`${port.name}: a whole number is needed`, input);
      value = n;
    } else if (kind === "json") {
      try {
        value = JSON.parse(input.value);
      } catch {
        return fail(`${port.name}: not valid JSON`, input);
      }
    }
    send(input, commit, value, revert);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      revert();
      input.removeAttribute("aria-invalid");
      input.blur();
    }
  });
  return {
    control: input,
    root: input,
    set(v) {
      last = v;
      if (!editing(input) && !input.hasAttribute("aria-invalid")) input.value = show(v);
    },
  };
}

/** Rust integer types: a slider over them sends whole numbers. */
const INTEGER = /^[iu](8|16|32|64|128|size)$/;

/** A slider with its value beside it; the value is sent when the slider is released. */
function rangeWidget(port: PortSpec, id: string, testid: string, commit: Commit, min: number, max: number, step?: number): Widget {
  const integer = INTEGER.test(port.type);
  const range = el("input", {
    id, type: "range", min, max, step: step ?? (integer ? 1 : "any"), "data-testid": testid, title: `${port.name}: ${port.type}, ${min} to ${max}`,
  });
  const shown = el("output", { class: "range-value", for: id });
  const root = el("span", { class: "range" }, range, shown);
  let last: unknown = null;
  const show = (v: unknown) => {
    if (typeof v === "number") range.value = String(v);
    shown.textContent = typeof v === "number" ? String(v) : v == null ? "" : JSON.stringify(v);
  };
  range.addEventListener("input", () => (shown.textContent = range.value));
  range.addEventListener("change", () => {
    const n = Number(range.value);
    send(range, commit, integer ? Math.round(n) : n, () => show(last));
  });
  return { control: range, root, set: (v) => ((last = v), editing(range) || show(v)) };
}

/** A text area for long text: sent when it loses focus (Escape puts the value back). */
function textWidget(port: PortSpec, id: string, testid: string, commit: Commit): Widget {
  const area = el("textarea", { id, rows: 3, spellcheck: "false", "data-testid": testid, title: `${port.name}: ${port.type}` });
  let last: unknown = null;
  const show = (v: unknown) => (area.value = v == null ? "" : typeof v === "string" ? v : JSON.stringify(v));
  area.addEventListener("change", () => send(area, commit, area.value, () => show(last)));
  area.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      show(last);
      area.blur();
    }
  });
  return { control: area, root: area, set: (v) => ((last = v), editing(area) || show(v)) };
}

function isRef(v: unknown): v is MediaRef {
  return !!v && typeof v === "object" && typeof (v as MediaRef).blob === "string";
}

function mediaWidget(node: NodeSpec, port: PortSpec, id: string, testid: string, commit: Commit): Widget {
  const kind = port.widget!;
  const file = el("input", { id, type: "file", class: "visually-hidden", accept: kind === "file" ? null : `${kind}/*`, "data-testid": testid });
  const thumb = el("img", { class: "mini", alt: "", hidden: true });
  const name = el("span", { class: "file-name", text: "no file" });
  const pick = el("span", { class: "button small", "aria-hidden": "true", text: "Upload" });
  const root = el("label", { class: "upload", for: id, title: `Upload ${kind === "file" ? "a file" : `an ${kind}`} for ${node.name}.${port.name} (or drop it here)` }, file, thumb, name, pick);
  let last: unknown = null;

  const show = (v: unknown) => {
    last = v;
    if (isRef(v)) {
      name.textContent = `${v.name || v.mime}${v.size != null ? ` · ${bytes(v.size)}` : ""}`;
      thumb.hidden = v.kind !== "image";
      if (v.kind === "image") thumb.src = api.blobUrl(v);
    } else {
      name.textContent = v == null ? "no file" : JSON.stringify(v);
      thumb.hidden = true;
    }
  };
  const upload = async (f: File) => {
    name.textContent = `uploading ${f.name}…`;
    root.classList.add("saving");
    try {
      const ref = await api.upload(f);
      await commit(ref);
      show(ref);
    } catch (e) {
      show(last);
      toast(e instanceof Error ? e.message : String(e));
    } finally {
      root.classList.remove("saving");
      file.value = "";
    }
  };
  file.addEventListener("change", () => file.files?.[0] && upload(file.files[0]));
  root.addEventListener("dragover", (e) => {
    e.preventDefault();
    root.classList.add("drop");
  });
  root.addEventListener("dragleave", () => root.classList.remove("drop"));
  root.addEventListener("drop", (e) => {
    e.preventDefault();
    root.classList.remove("drop");
    const f = e.dataTransfer?.files[0];
    if (f) upload(f);
  });
  return { control: file, root, set: show };
}
