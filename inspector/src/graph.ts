// Lookups over the graph: nodes by name, neighbours, and what each run scope would run.
// The graph shown is the server's with each group of inputs (`groups`) as one node of kind
// "group": its outputs are the members (one row each, where their edges start), so the
// canvas, edges, minimap, export and drag treat a group card as any card. Names from the
// server (states, events, positions, deep links) go through `shown` / `memberOf`.
import type { EdgeSpec, Graph, NodeSpec, Scope } from "./types";

/** A group card: its name and its members (the server's input nodes), in row order. */
export interface GroupInfo {
  /** The shown node's name: the group's, unless a node already has it. */
  key: string;
  name: string;
  members: NodeSpec[];
}

export interface GraphIndex {
  graph: Graph;
  byName: Map<string, NodeSpec>;
  ups: Map<string, string[]>;
  downs: Map<string, string[]>;
  /** Edges arriving at a node. */
  into: Map<string, EdgeSpec[]>;
  /** Group cards by their shown name. */
  groups: Map<string, GroupInfo>;
  /** A grouped input's name → its group card's name. */
  memberOf: Map<string, string>;
}

/** The name of the card showing the server's node `name` (its group's, for a grouped input). */
export function shown(idx: GraphIndex, name: string): string {
  return idx.memberOf.get(name) ?? name;
}

/** Replaces each group's members by one node of kind "group" placed where the server's
 * layout put the group, with an output per member (carrying the member's widget, so a text
 * area's taller row is known); edges from a member start at its row. */
function withGroups(graph: Graph): { graph: Graph; groups: Map<string, GroupInfo>; memberOf: Map<string, string> } {
  const groups = new Map<string, GroupInfo>();
  const memberOf = new Map<string, string>();
  if (!graph.groups?.length) return { graph, groups, memberOf };
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const shownNodes: NodeSpec[] = [];
  for (const g of graph.groups) {
    const members = g.members.map((m) => byName.get(m)).filter((n): n is NodeSpec => !!n && !memberOf.has(n.name));
    if (!members.length) continue;
    let key = g.name;
    // A name of its own: the member names still reach the page (states, events).
    while (byName.has(key) || groups.has(key)) key = `${key} (group)`;
    for (const m of members) memberOf.set(m.name, key);
    groups.set(key, { key, name: g.name, members });
    shownNodes.push({
      index: Math.min(...members.map((m) => m.index)),
      name: key,
      kind: "group",
      x: g.x, y: g.y, w: g.w, h: g.h,
      preview: false,
      inputs: [],
      outputs: members.map((m) => ({ name: m.name, type: m.outputs[0]?.type ?? "", widget: m.inputs.find((p) => p.source === "const")?.widget })),
    });
  }
  const nodes = graph.nodes.filter((n) => !memberOf.has(n.name)).concat(shownNodes).sort((a, b) => a.index - b.index);
  const edges = graph.edges.map((e) => {
    const key = memberOf.get(e.from);
    return key ? { ...e, from: key, from_port: e.from } : e;
  });
  return { graph: { ...graph, nodes, edges }, groups, memberOf };
}

export function indexGraph(server: Graph): GraphIndex {
  const { graph, groups, memberOf } = withGroups(server);
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
  return { graph, byName, ups, downs, into, groups, memberOf };
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
