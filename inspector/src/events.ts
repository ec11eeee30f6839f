// Live updates over SSE. The browser reconnects by itself and sends Last-Event-ID, so the
// server replays what was missed; when the stream is closed for good (server restarted) a
// fresh EventSource is opened with a backoff, and the page resyncs its state on open.
import { api } from "./api";

export const EVENT_NAMES = [
  "run_started", "node_started", "node_progress", "node_partial", "node_log", "item_finished", "node_cached",
  "node_finished", "node_failed", "node_skipped", "run_finished", "run_error", "state_changed", "resync",
] as const;
export type EventName = (typeof EVENT_NAMES)[number];
export type Connection = "connecting" | "live" | "offline";

export class LiveEvents {
  private source: EventSource | null = null;
  private sheet = "";
  private fresh = true;
  private backoff = 0;
  private timer = 0;

  constructor(
    private readonly handle: (name: EventName, data: any, id: number) => void,
    private readonly connection: (state: Connection) => void,
    /** Called when a fresh stream opens: whatever happened before it must be fetched. */
    private readonly resync: () => void,
  ) {}

  connect(sheet: string): void {
    this.close();
    this.sheet = sheet;
    this.open();
  }

  close(): void {
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
  }

  private open(): void {
    const source = new EventSource(api.eventsUrl(this.sheet));
    this.source = source;
    this.fresh = true;
    this.connection("connecting");
    for (const name of EVENT_NAMES) {
      source.addEventListener(name, (e) => {
        const m = e as MessageEvent<string>;
        let data: unknown = {};
        try {
          data = m.data ? JSON.parse(m.data) : {};
        } catch {
          return;
        }
        this.handle(name, data, Number(m.lastEventId) || 0);
      });
    }
    source.onopen = () => {
      this.backoff = 0;
      this.connection("live");
      if (this.fresh) {
        this.fresh = false;
        this.resync();
      }
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. an error status): reopen later, then resync.
        this.connection("offline");
        source.close();
        this.backoff = Math.min(15_000, this.backoff ? this.backoff * 2 : 1000);
        this.timer = window.setTimeout(() => this.open(), this.backoff);
      } else {
        this.connection("connecting");
      }
    };
  }
}
