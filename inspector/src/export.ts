// Export: the canvas as a standalone SVG (every edge, near the view or not, with the computed
// style of its class inlined; cards redrawn as rects and text), and Mermaid from the server.
import { api } from "./api";
import { download, svg } from "./dom";
import type { Edges } from "./edges";
import type { GraphIndex } from "./graph";
import type { Status } from "./types";

export function exportSvg(idx: GraphIndex, allEdges: Edges, liveEdges: SVGSVGElement, cardEl: (name: string) => HTMLElement | undefined, status: (name: string) => Status): void {
  const { graph } = idx;
  const css = getComputedStyle(document.documentElement);
  const color = (name: string) => css.getPropertyValue(`--${name}`).trim();
  const font = getComputedStyle(document.body).fontFamily;
  const out = svg("svg", {
    xmlns: "http://www.w3.org/2000/svg",
    width: graph.width,
    height: graph.height,
    viewBox: `0 0 ${graph.width} ${graph.height}`,
    "font-family": font,
    "font-size": 12,
  });
  out.append(svg("rect", { width: "100%", height: "100%", fill: color("bg") }));

  // Edges: inline the computed stroke of each class once (read from a probe path in the live SVG).
  const styleOf = new Map<string, { stroke: string; width: string; dash: string }>();
  const styled = (cls: string) => {
    if (!styleOf.has(cls)) {
      const probe = svg("path", { class: cls });
      liveEdges.append(probe);
      const s = getComputedStyle(probe);
      styleOf.set(cls, { stroke: s.stroke, width: s.strokeWidth, dash: s.strokeDasharray });
      probe.remove();
    }
    return styleOf.get(cls)!;
  };
  const edges = svg("g", { fill: "none" });
  for (const e of allEdges.all()) {
    const s = styled(e.cls);
    edges.append(svg("path", { d: e.d, stroke: s.stroke, "stroke-width": s.width, "stroke-dasharray": s.dash && s.dash !== "none" ? s.dash : null, "data-from": e.from, "data-to": e.to }));
  }
  out.append(edges);

  for (const n of graph.nodes) {
    const st = status(n.name);
    const statusText = cardEl(n.name)?.querySelector(".status")?.textContent || st;
    const g = svg("g");
    g.append(
      svg("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: 8, fill: color("panel"), stroke: color("border") }),
      svg("rect", { x: n.x, y: n.y, width: 5, height: n.h, fill: color(st) }),
    );
    const text = (x: number, y: number, content: string, attrs: Record<string, string | number> = {}) => {
      const t = svg("text", { x, y, fill: color("text"), ...attrs });
      t.textContent = content;
      g.append(t);
    };
    text(n.x + 14, n.y + 20, n.name, { "font-weight": 700, "font-size": 13 });
    text(n.x + n.w - 10, n.y + 20, `${n.kind} · ${statusText}`, { "text-anchor": "end", fill: color("muted"), "font-size": 11 });
    let y = n.y + 44;
    for (const p of n.inputs) {
      text(n.x + 14, y, `${p.name}: ${p.type}`, { fill: color("muted") });
      y += 18;
    }
    for (const p of n.outputs) {
      text(n.x + 14, y, `→ ${p.name}: ${p.type}`);
      y += 18;
    }
    out.append(g);
  }
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(out)}\n`;
  download(`${graph.name}.svg`, body, "image/svg+xml");
}

export async function exportMermaid(name: string): Promise<void> {
  download(`${name}.mmd`, await api.mermaid(), "text/plain");
}
