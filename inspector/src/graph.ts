// Lookups over the graph: nodes by name, neighbours, and what each run scope would run.
import type { EdgeSpec, Graph, NodeSpec, Scope } from "./types";

export interface GraphIndex {
  graph: Graph;
  byName: Map<string, NodeSpec>;
  ups: Map<string, string[]>;
  downs: Map<string, string[]>;
  /** Edges arriving at a node. */
  into: Map<string, EdgeSpec[]>;
}

export function indexGraph(graph: Graph): GraphIndex {
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const ups = new Map<string, string[]>();
  const downs = new Map<string, string[]>();
  const into = new Map<string, EdgeSpec[]>();
  for (const n of graph.nodes) {
    ups.set(n.name, []);
    downs.set(n.name, []);
    into.set(n.name, []);
  }
  for (const e of graph.edges) {
    if (!byName.has(e.from) || !byName.has(e.to)) continue;
    ups.get(e.to)!.push(e.from);
    downs.get(e.from)!.push(e.to);
    into.get(e.to)!.push(e);
  }
  return { graph, byName, ups, downs, into };
}

/** The node and everything upstream (`"up"`) or downstream (`"down"`) of it, in graph order. */
export function closure(idx: GraphIndex, name: string, dir: "up" | "down"): string[] {
  const next = dir === "up" ? idx.ups : idx.downs;
  const seen = new Set([name]);
  const stack = [name];
  while (stack.length) {
    for (const n of next.get(stack.pop()!) || []) {
      if (!seen.has(n)) {
        seen.add(n);
        stack.push(n);
      }
    }
  }
  return [...seen].sort((a, b) => idx.byName.get(a)!.index - idx.byName.get(b)!.index);
}

/** The nodes a run with this scope may execute (cached ones are reused, not recomputed). */
export function plan(idx: GraphIndex, scope: Scope, name?: string): string[] {
  if (scope === "all" || name === undefined) return idx.graph.nodes.map((n) => n.name);
  if (scope === "only") return [name];
  return closure(idx, name, scope === "to" ? "up" : "down");
}
