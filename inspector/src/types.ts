// Shapes of the inspector HTTP API (see ../API.md).

export type Status = "pending" | "running" | "cached" | "done" | "failed" | "stale" | "skipped";
export type WidgetKind = "text" | "textarea" | "number" | "integer" | "range" | "bool" | "json" | "choice" | "image" | "audio" | "video" | "file";
export type MediaKind = "image" | "audio" | "video" | "file";
export type Scope = "all" | "to" | "only" | "from";

export interface PortSpec {
  name: string;
  type: string;
  /** Inputs only: "edge" | "const" | "generated:<label>". */
  source?: string;
  widget?: WidgetKind;
  /** What the widget offers: `choices` (a dropdown), `minimum`/`maximum`/`step` (a slider),
   * `multiline` (a text area). */
  hint?: InputHint;
}

export interface InputHint {
  choices?: unknown[];
  minimum?: number;
  maximum?: number;
  step?: number;
  multiline?: boolean;
}

export interface NodeSpec {
  index: number;
  name: string;
  kind: string;
  x: number;
  y: number;
  w: number;
  h: number;
  inputs: PortSpec[];
  outputs: PortSpec[];
  /** Whether the closed card has room for a rich preview (see layout.rs `CardShape`). */
  preview?: boolean;
  /** A pipeline input shown in a group's card: the group's name. */
  group?: string | null;
  /** A choice node: its variants, in fallback order. */
  variants?: string[];
  /** A map node: the inputs it splits into items. */
  mapped?: string[];
  /** A map node: what its output holds when items fail. */
  failures?: "fail_node" | "skip" | "collect";
}

/** Pipeline inputs shown as one card (`Graph::group_inputs`), where the layout put it. */
export interface GroupSpec {
  name: string;
  members: string[];
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface EdgeSpec {
  from: string;
  from_port: string;
  to: string;
  to_port: string;
  type: string;
  /** An edge crossing layers: the points it passes through, flat `[x, y, x, y, …]`
   * (where it enters and leaves each column it crosses, beside the cards there). */
  route?: number[];
}

export interface Graph {
  name: string;
  width: number;
  height: number;
  nodes: NodeSpec[];
  edges: EdgeSpec[];
  groups?: GroupSpec[];
}

export interface SheetInfo {
  name: string;
  created_ms: number;
  updated_ms: number;
}

export interface SheetList {
  sheets: SheetInfo[];
  default: string;
}

/** A media value as stored: what `POST /api/blobs` returns and what outputs contain. */
export interface MediaRef {
  kind: MediaKind;
  mime: string;
  size?: number;
  blob: string;
  name?: string | null;
}

/** A media value with a ready URL (listed beside outputs). */
export interface Media {
  kind: MediaKind;
  mime: string;
  url: string;
  name?: string | null;
}

export interface OutputState {
  port: string;
  type: string;
  value: unknown;
  media?: Media[];
}

export interface InputState {
  port: string;
  value: unknown;
  overridden: boolean;
}

export interface Progress {
  fraction: number | null;
  message?: string | null;
}

export interface HistorySummary {
  /** Results kept (the entries that can be selected). */
  count: number;
  selected_id: number | null;
  /** Among the results, 1 = newest. */
  position: number;
  /** Failed and cancelled runs kept (listed, never selected). */
  failed?: number;
}

export interface NodeState {
  name: string;
  status: Status;
  stale: boolean;
  /** A stale result: which input made it stale ("input `sigma` changed: 2.5 → 6", or where
   * upstream the change started). */
  stale_because?: string | null;
  elapsed_ms: number | null;
  error: string | null;
  progress: Progress | null;
  skipped_because?: string | null;
  /** Lines in the log the Logs section shows (the live one while running or failed). */
  log_lines?: number;
  history: HistorySummary;
  inputs: InputState[];
  outputs: OutputState[];
  /** A map's items or a choice's variants, for its current result. */
  parts?: Parts | null;
}

/** What one item of a map did: `computed`, `memory` | `disk` | `shared` | `workspace` (cache hits), `failed`, `skipped`. */
export interface ItemPart {
  outcome: string;
  error?: string | null;
  key?: string;
}

export interface Parts {
  items?: ItemPart[];
  /** A choice: the variant that produced the result. */
  variant?: string;
  /** A choice: the variants that failed before it (fallback). */
  failed?: { variant: string; error: string }[];
}

export interface Bar {
  node: string;
  start_ms: number;
  end_ms: number | null;
  cached: boolean;
}

export interface Viewport {
  x: number;
  y: number;
  zoom: number;
}

/** A card's top-left corner on the canvas. */
export interface Position {
  x: number;
  y: number;
}

export interface SheetState {
  sheet: string;
  running: boolean;
  last_event_id: number;
  viewport: Viewport | null;
  /** Nodes dragged by hand, by name; the others sit where the server's layout put them. */
  positions?: Record<string, Position>;
  nodes: NodeState[];
  timeline: Bar[];
}

export interface HistoryEntry {
  id: number;
  run: number;
  /** "computed" | "cached:…" for a result; "failed" | "cancelled" for a run that left none. */
  outcome: string;
  /** A failed or cancelled run's error (its first line is the summary); null for a result. */
  error?: string | null;
  /** Attempts made, when the node ran. */
  attempts?: number | null;
  elapsed_ms: number | null;
  finished_ms: number;
  selected: boolean;
  outputs: unknown[];
  inputs: EntryInput[];
  log_lines?: number;
}

/** An input of a history entry. */
export interface EntryInput {
  port: string;
  /** Recorded for constant and generated inputs; `null` for wired ones. */
  value: unknown;
  generated?: boolean;
  /** Content hash of the value (hex). */
  hash?: string;
  /** Wired inputs: the node and port it came from. */
  from?: string;
  from_port?: string;
  /** Wired inputs: the upstream's output with that hash, when its history still has it. */
  upstream_value?: unknown;
}

/** `GET …/nodes/{node}/why`: why the current result was computed or reused. */
export interface Why {
  /** The history entry explained (the node's current result), `null` before any. */
  result: number | null;
  outcome: string | null;
  summary: string;
  changes: { what: string; text: string; port?: string; from?: string | null }[];
  compared_with: { id: number; run: number } | null;
}

export interface LogLine {
  /** Milliseconds since the Unix epoch. */
  unix_ms: number;
  line: string;
}

/** `GET …/nodes/{node}/logs`. */
export interface NodeLogs {
  source: "live" | "result" | "entry";
  entry: number | null;
  lines: LogLine[];
  /** Earlier lines that were not kept. */
  dropped: number;
  /** Events after this id are newer than `lines`. */
  last_event_id: number;
}

/** Where an item of a batch is (`GET /api/batches/{name}`). */
export type ItemStatus = "pending" | "claimed" | "done" | "failed";

/** A batch's items by status. */
export interface BatchCounts {
  total: number;
  pending: number;
  claimed: number;
  done: number;
  failed: number;
}

/** A batch as `GET /api/batches` lists it. */
export interface BatchInfo extends BatchCounts {
  name: string;
}

export interface BatchItem {
  item: number;
  inputs: unknown;
  status: ItemStatus;
  worker: string | null;
  claimed_until_ms: number | null;
  attempts: number;
  started_ms: number | null;
  finished_ms: number | null;
  elapsed_ms: number | null;
  outputs: Record<string, unknown> | null;
  error: string | null;
}

/** One page of a batch's items. */
export interface BatchPage {
  name: string;
  counts: BatchCounts;
  status: ItemStatus | null;
  matched: number;
  offset: number;
  limit: number;
  items: BatchItem[];
}
