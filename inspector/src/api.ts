// The HTTP API (../API.md): JSON in and out, errors as `{ "error": "…" }`, the token from the
// page's own URL sent as `x-daggr-token` (and as `?token=` where no header can be sent).
import type { BatchInfo, BatchPage, Graph, HistoryEntry, ItemStatus, MediaRef, NodeLogs, Position, Scope, SheetList, SheetState, Viewport, Why } from "./types";

export const token = new URLSearchParams(location.search).get("token");
const enc = encodeURIComponent;

export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** For URLs the browser fetches by itself (EventSource, <img>, <audio>, downloads). */
export function withToken(url: string): string {
  return token ? `${url}${url.includes("?") ? "&" : "?"}token=${enc(token)}` : url;
}

async function call<T>(method: string, path: string, body?: unknown, extra: HeadersInit = {}): Promise<T> {
  const headers = new Headers(extra);
  if (token) headers.set("x-daggr-token", token);
  let payload: BodyInit | undefined;
  if (body instanceof Blob) payload = body;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers.set("content-type", "application/json");
  }
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: payload });
  } catch {
    throw new ApiError("the inspector server cannot be reached", 0);
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const message = data && typeof data === "object" && "error" in data ? String((data as { error: unknown }).error) : `${response.status} ${response.statusText}`;
    throw new ApiError(message, response.status);
  }
  return data as T;
}

const sheetPath = (sheet: string) => `/api/sheets/${enc(sheet)}`;

/** Header values must be Latin-1: keep a readable ASCII form of the file name. */
const asciiName = (name: string) => name.replace(/[^\x20-\x7e]/g, "_");

export const api = {
  graph: () => call<Graph>("GET", "/api/graph"),
  mermaid: () => call<string>("GET", "/api/export/mermaid"),

  sheets: () => call<SheetList>("GET", "/api/sheets"),
  createSheet: (name: string) => call<{ name: string }>("POST", "/api/sheets", { name }),
  renameSheet: (sheet: string, to: string) => call<{ name: string }>("POST", `${sheetPath(sheet)}/rename`, { to }),
  forkSheet: (sheet: string, to: string) => call<{ name: string }>("POST", `${sheetPath(sheet)}/fork`, { to }),
  deleteSheet: (sheet: string) => call<{ deleted: string }>("DELETE", sheetPath(sheet)),

  state: (sheet: string) => call<SheetState>("GET", `${sheetPath(sheet)}/state`),
  history: (sheet: string, node: string) =>
    call<{ entries: HistoryEntry[] }>("GET", `${sheetPath(sheet)}/nodes/${enc(node)}/history`),
  why: (sheet: string, node: string) => call<Why>("GET", `${sheetPath(sheet)}/nodes/${enc(node)}/why`),
  logs: (sheet: string, node: string, entry?: number) =>
    call<NodeLogs>("GET", `${sheetPath(sheet)}/nodes/${enc(node)}/logs${entry === undefined ? "" : `?entry=${entry}`}`),

  run: (sheet: string, scope: Scope, node?: string) =>
    call<{ run: number }>("POST", `${sheetPath(sheet)}/run`, node === undefined ? { scope } : { scope, node }),
  /** Item `item` of map `node` alone, computed again whatever the cache holds. */
  runItem: (sheet: string, node: string, item: number) =>
    call<{ run: number }>("POST", `${sheetPath(sheet)}/nodes/${enc(node)}/items/${item}/run`),
  cancel: (sheet: string) => call<{ cancelled: boolean }>("POST", `${sheetPath(sheet)}/cancel`),
  setInput: (sheet: string, node: string, port: string, value: unknown) =>
    call<{ ok: true }>("POST", `${sheetPath(sheet)}/inputs`, { node, port, value }),
  resetInput: (sheet: string, node: string, port: string) =>
    call<unknown>("DELETE", `${sheetPath(sheet)}/inputs/${enc(node)}/${enc(port)}`),
  select: (sheet: string, node: string, id: number) => call<unknown>("POST", `${sheetPath(sheet)}/select`, { node, id }),
  restore: (sheet: string, node: string, id: number) => call<unknown>("POST", `${sheetPath(sheet)}/restore`, { node, id }),
  saveViewport: (sheet: string, v: Viewport) => call<unknown>("POST", `${sheetPath(sheet)}/viewport`, v),
  savePositions: (sheet: string, positions: Record<string, Position>) => call<unknown>("POST", `${sheetPath(sheet)}/positions`, positions),
  resetPositions: (sheet: string) => call<unknown>("DELETE", `${sheetPath(sheet)}/positions`),

  batches: () => call<{ pipeline: string; batches: BatchInfo[] }>("GET", "/api/batches"),
  batch: (name: string, offset: number, limit: number, status?: ItemStatus) =>
    call<BatchPage>("GET", `/api/batches/${enc(name)}?offset=${offset}&limit=${limit}${status ? `&status=${status}` : ""}`),

  upload: (file: File) =>
    call<MediaRef>("POST", "/api/blobs", file, {
      "content-type": file.type || "application/octet-stream",
      "x-daggr-filename": asciiName(file.name),
    }),

  eventsUrl: (sheet: string) => withToken(`${sheetPath(sheet)}/events`),
  blobUrl: (ref: MediaRef) => withToken(`/api/blobs/${enc(ref.blob)}?mime=${enc(ref.mime)}`),
};
