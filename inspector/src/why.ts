// Why a node's current result was computed or came from the cache ("input `text` changed",
// "cached: same key"), as `GET …/nodes/{node}/why` explains it. Asked only for cards on
// screen, once per result (a result's explanation never changes), a few at a time.
import { api } from "./api";
import type { Why } from "./types";

/** Requests in flight at once: a run of a big graph must not flood the server. */
const PARALLEL = 4;

export class WhyLoader {
  private known = new Map<string, Why>();
  /** Keys asked for already: the answer may have been about a newer result (the page's
   * state catches up), and asking again would only get the same answer. */
  private asked = new Set<string>();
  private queue: { node: string; key: string; done: (why: Why) => void }[] = [];
  private active = 0;
  /** While the view moves no request starts: answers would repaint cards mid-gesture, and
   * cards passing by need no explanation. */
  private held = false;

  constructor(private readonly sheet: () => string) {}

  /** The explanation of `node`'s result `resultId` as the last run got it (`hit`: from the
   * cache, which reuses the entry without a new one), if already loaded. */
  cached(node: string, resultId: number, hit: boolean): Why | undefined {
    return this.known.get(this.key(node, resultId, hit));
  }

  /** Loads that explanation and calls `done` with it. */
  load(node: string, resultId: number, hit: boolean, done: (why: Why) => void): void {
    const key = this.key(node, resultId, hit);
    const known = this.known.get(key);
    if (known) return done(known);
    if (this.asked.has(key)) return;
    const waiting = this.queue.find((q) => q.key === key);
    if (waiting) {
      waiting.done = done;
      return;
    }
    this.asked.add(key);
    this.queue.push({ node, key, done });
    this.pump();
  }

  /** Holds requests (`true`) while the view moves, or lets them go. */
  hold(held: boolean): void {
    this.held = held;
    if (!held) this.pump();
  }

  /** Another sheet: its results are other results. */
  clear(): void {
    this.known.clear();
    this.asked.clear();
    this.queue = [];
  }

  private key(node: string, resultId: number, hit: boolean): string {
    return `${this.sheet()}\n${node}\n${resultId}\n${hit}`;
  }

  private pump(): void {
    while (!this.held && this.active < PARALLEL && this.queue.length) {
      const job = this.queue.shift()!;
      this.active++;
      api
        .why(this.sheet(), job.node)
        .then((why) => {
          // The answer is about the node's result at answer time, which may be newer.
          if (why.result != null && job.key.startsWith(`${this.sheet()}\n`)) {
            this.known.set(this.key(job.node, why.result, !!why.outcome?.startsWith("cached")), why);
          }
          job.done(why);
        })
        .catch(() => {
          // A card without its explanation is still a card; it may ask again later.
          this.asked.delete(job.key);
        })
        .finally(() => {
          this.active--;
          this.pump();
        });
    }
  }
}
