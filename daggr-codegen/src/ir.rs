//! The graph IR: what `cargo daggr graph` prints and what the inspector draws.
//! It needs only serde, so the runtime shares it without pulling in syn.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Bumped when the IR's shape changes.
pub const SCHEMA_VERSION: u32 = 1;

/// A pipeline's static graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphIr {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The pipeline name.
    pub name: String,
    /// Nodes, in declaration order.
    pub nodes: Vec<NodeIr>,
    /// Edges between output and input ports.
    pub edges: Vec<EdgeIr>,
}

/// One node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeIr {
    /// Unique name.
    pub name: String,
    /// `input`, `fn`, `gradio`, `inference`, …
    pub kind: String,
    /// Input ports.
    pub inputs: Vec<PortIr>,
    /// Output ports.
    pub outputs: Vec<PortIr>,
    /// Where the node was declared, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SourceLocation>,
    /// For a pipeline input shown in a group: the group's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// For a choice node: its variants, in fallback order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
    /// For a map node: the inputs it splits into items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mapped: Vec<String>,
}

/// One port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortIr {
    /// Port name.
    pub name: String,
    /// The Rust type, as written (or as `std::any::type_name` gives it, shortened).
    #[serde(rename = "type")]
    pub ty: String,
    /// For inputs not fed by an edge: `const` or `generated:<label>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// An edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeIr {
    /// Source node.
    pub from: String,
    /// Source port.
    pub from_port: String,
    /// Destination node.
    pub to: String,
    /// Destination port.
    pub to_port: String,
    /// The type carried.
    #[serde(rename = "type")]
    pub ty: String,
}

/// One of a pipeline's named outputs (`outputs { caption: String = text }` in
/// `pipeline!`): its name, its type and the node port it reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputIr {
    /// The output's name.
    pub name: String,
    /// The type it carries.
    #[serde(rename = "type")]
    pub ty: String,
    /// The node it reads.
    pub from: String,
    /// The port of that node.
    pub from_port: String,
}

/// What `cargo daggr graph` prints: a pipeline's graph and its named outputs. As JSON,
/// the [`GraphIr`]'s fields and an `outputs` array (left out when there is none), so a
/// reader of [`GraphIr`] JSON reads it too, and it reads [`GraphIr`] JSON (with no
/// outputs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineIr {
    /// The nodes and edges.
    #[serde(flatten)]
    pub graph: GraphIr,
    /// The named outputs, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputIr>,
}

impl From<GraphIr> for PipelineIr {
    fn from(graph: GraphIr) -> PipelineIr {
        PipelineIr {
            graph,
            outputs: Vec::new(),
        }
    }
}

impl PipelineIr {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the IR always serializes")
    }

    /// Parses JSON written by [`PipelineIr::to_json`] or [`GraphIr::to_json`].
    pub fn from_json(text: &str) -> Result<PipelineIr, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Graphviz DOT, as [`GraphIr::to_dot`], with one rounded record per named output,
    /// fed by an edge from the port it reads.
    pub fn to_dot(&self) -> String {
        dot(&self.graph, &self.outputs)
    }

    /// A Mermaid flowchart, as [`GraphIr::to_mermaid`], with one rounded node per named
    /// output, fed by an edge from the port it reads.
    pub fn to_mermaid(&self) -> String {
        mermaid(&self.graph, &self.outputs)
    }
}

/// A place in a source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLocation {
    /// File path as the compiler saw it.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// Shortens a full type path to what a person would write:
/// `alloc::vec::Vec<alloc::string::String>` → `Vec<String>`.
pub fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(""));
    out
}

impl GraphIr {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the IR always serializes")
    }

    /// Parses JSON written by [`GraphIr::to_json`].
    pub fn from_json(text: &str) -> Result<GraphIr, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Graphviz DOT: one record-shaped node per daggr node with a cell per port, edges
    /// port to port, labelled with the carried type.
    pub fn to_dot(&self) -> String {
        dot(self, &[])
    }

    /// A Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        mermaid(self, &[])
    }
}

/// The DOT of `graph` and its named `outputs`.
fn dot(graph: &GraphIr, outputs: &[OutputIr]) -> String {
    let mut out = String::new();
    out.push_str(&format!("digraph {} {{\n", dot_id(&graph.name)));
    out.push_str("  rankdir=LR;\n  node [shape=record, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
    let ports = |ports: &[PortIr], prefix: &str| {
        ports
            .iter()
            .map(|p| {
                format!(
                    "<{prefix}_{}> {}: {}",
                    dot_record_escape(&p.name),
                    dot_record_escape(&p.name),
                    dot_record_escape(&p.ty)
                )
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    for node in &graph.nodes {
        let mut cells = vec![];
        if !node.inputs.is_empty() {
            cells.push(format!("{{ {} }}", ports(&node.inputs, "in")));
        }
        cells.push(format!(
            "{}\\n({})",
            dot_record_escape(&node.name),
            dot_record_escape(&node.kind)
        ));
        if !node.outputs.is_empty() {
            cells.push(format!("{{ {} }}", ports(&node.outputs, "out")));
        }
        out.push_str(&format!(
            "  {} [label=\"{{ {} }}\"];\n",
            dot_id(&node.name),
            cells.join(" | ")
        ));
    }
    for e in &graph.edges {
        out.push_str(&format!(
            "  {}:\"out_{}\" -> {}:\"in_{}\" [label={}];\n",
            dot_id(&e.from),
            e.from_port,
            dot_id(&e.to),
            e.to_port,
            dot_id(&e.ty)
        ));
    }
    let node_names: HashSet<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
    for o in outputs {
        // `output:caption`, unless a node has that name: an output may share its name
        // with a node (`outputs { stats: Stats = stats }`), never its DOT id.
        let mut id = format!("output:{}", o.name);
        while node_names.contains(id.as_str()) {
            id.insert(0, '_');
        }
        let value = PortIr {
            name: "value".into(),
            ty: o.ty.clone(),
            source: None,
        };
        out.push_str(&format!(
            "  {} [shape=Mrecord, style=bold, label=\"{{ {{ {} }} | {}\\n(output) }}\"];\n",
            dot_id(&id),
            ports(std::slice::from_ref(&value), "in"),
            dot_record_escape(&o.name)
        ));
        if node_names.contains(o.from.as_str()) {
            out.push_str(&format!(
                "  {}:\"out_{}\" -> {}:\"in_value\" [label={}];\n",
                dot_id(&o.from),
                o.from_port,
                dot_id(&id),
                dot_id(&o.ty)
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// The Mermaid flowchart of `graph` and its named `outputs`.
fn mermaid(graph: &GraphIr, outputs: &[OutputIr]) -> String {
    // Names to indices once: a look-up per edge, not a scan (100 000 nodes export in
    // linear time).
    let mut index = HashMap::with_capacity(graph.nodes.len());
    for (i, n) in graph.nodes.iter().enumerate() {
        index.entry(n.name.as_str()).or_insert(i);
    }
    let id = |name: &str| format!("n{}", index.get(name).copied().unwrap_or(usize::MAX));
    let mut out = String::from("flowchart LR\n");
    for node in &graph.nodes {
        let outs = node
            .outputs
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect::<Vec<_>>()
            .join("<br/>");
        out.push_str(&format!(
            "    {}[\"{} ({})<br/>{}\"]\n",
            id(&node.name),
            mermaid_escape(&node.name),
            mermaid_escape(&node.kind),
            mermaid_escape(&outs)
        ));
    }
    for e in &graph.edges {
        out.push_str(&format!(
            "    {} -->|\"{} → {}: {}\"| {}\n",
            id(&e.from),
            mermaid_escape(&e.from_port),
            mermaid_escape(&e.to_port),
            mermaid_escape(&e.ty),
            id(&e.to)
        ));
    }
    // Outputs are `o0`, `o1`, …: never a node's `n…` id.
    for (i, o) in outputs.iter().enumerate() {
        out.push_str(&format!(
            "    o{i}([\"{} (output)<br/>{}\"])\n",
            mermaid_escape(&o.name),
            mermaid_escape(&o.ty)
        ));
        if index.contains_key(o.from.as_str()) {
            out.push_str(&format!(
                "    {} -->|\"{} → {}: {}\"| o{i}\n",
                id(&o.from),
                mermaid_escape(&o.from_port),
                mermaid_escape(&o.name),
                mermaid_escape(&o.ty)
            ));
        }
    }
    out
}

fn dot_id(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn dot_record_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if matches!(c, '{' | '}' | '|' | '<' | '>' | '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn mermaid_escape(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace("#lt;br/#gt;", "<br/>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GraphIr {
        let port = |name: &str, ty: &str| PortIr {
            name: name.into(),
            ty: ty.into(),
            source: None,
        };
        GraphIr {
            schema_version: SCHEMA_VERSION,
            name: "demo".into(),
            nodes: vec![
                NodeIr {
                    name: "prompt".into(),
                    kind: "input".into(),
                    inputs: vec![PortIr {
                        source: Some("const".into()),
                        ..port("value", "String")
                    }],
                    outputs: vec![port("value", "String")],
                    location: None,
                    group: None,
                    variants: Vec::new(),
                    mapped: Vec::new(),
                },
                NodeIr {
                    name: "count".into(),
                    kind: "fn".into(),
                    inputs: vec![port("text", "String")],
                    outputs: vec![port("output", "Vec<u64>")],
                    location: Some(SourceLocation {
                        file: "src/main.rs".into(),
                        line: 3,
                        column: 5,
                    }),
                    group: None,
                    variants: Vec::new(),
                    mapped: Vec::new(),
                },
            ],
            edges: vec![EdgeIr {
                from: "prompt".into(),
                from_port: "value".into(),
                to: "count".into(),
                to_port: "text".into(),
                ty: "String".into(),
            }],
        }
    }

    #[test]
    fn short_type_names_drop_paths_everywhere() {
        assert_eq!(
            short_type_name("alloc::vec::Vec<alloc::string::String>"),
            "Vec<String>"
        );
        assert_eq!(
            short_type_name("(u64, daggr::media::Image)"),
            "(u64, Image)"
        );
        assert_eq!(short_type_name("u8"), "u8");
    }

    #[test]
    fn json_round_trips() {
        let ir = sample();
        assert_eq!(GraphIr::from_json(&ir.to_json()).unwrap(), ir);
        assert!(ir.to_json().contains("\"type\": \"Vec<u64>\""));
    }

    #[test]
    fn dot_has_ports_edges_and_escaped_types() {
        let dot = sample().to_dot();
        assert!(dot.starts_with("digraph \"demo\" {"));
        assert!(dot.contains("<out_output> output: Vec\\<u64\\>"), "{dot}");
        assert!(
            dot.contains("\"prompt\":\"out_value\" -> \"count\":\"in_text\" [label=\"String\"]"),
            "{dot}"
        );
    }

    /// A 100 000-node chain: JSON (both ways), DOT and Mermaid, with no recursion and no
    /// quadratic look-up (on a 2 MiB stack, as in a tokio task).
    #[test]
    fn a_100_000_node_chain_exports_every_way() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let port = |name: &str| PortIr {
                    name: name.into(),
                    ty: "u64".into(),
                    source: None,
                };
                let n = 100_000;
                let ir = GraphIr {
                    schema_version: SCHEMA_VERSION,
                    name: "deep".into(),
                    nodes: (0..n)
                        .map(|i| NodeIr {
                            name: format!("n{i}"),
                            kind: "fn".into(),
                            inputs: vec![port("in0")],
                            outputs: vec![port("output")],
                            location: None,
                            group: None,
                            variants: Vec::new(),
                            mapped: Vec::new(),
                        })
                        .collect(),
                    edges: (1..n)
                        .map(|i| EdgeIr {
                            from: format!("n{}", i - 1),
                            from_port: "output".into(),
                            to: format!("n{i}"),
                            to_port: "in0".into(),
                            ty: "u64".into(),
                        })
                        .collect(),
                };
                assert_eq!(GraphIr::from_json(&ir.to_json()).unwrap(), ir);
                assert!(ir
                    .to_dot()
                    .contains("\"n99998\":\"out_output\" -> \"n99999\""));
                assert!(ir
                    .to_mermaid()
                    .contains("n99998 -->|\"output → in0: u64\"| n99999"));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    fn with_outputs() -> PipelineIr {
        let output = |name: &str, from: &str, from_port: &str, ty: &str| OutputIr {
            name: name.into(),
            ty: ty.into(),
            from: from.into(),
            from_port: from_port.into(),
        };
        PipelineIr {
            graph: sample(),
            outputs: vec![
                // Named like the node it reads.
                output("count", "count", "output", "Vec<u64>"),
                output("prompt", "prompt", "value", "String"),
            ],
        }
    }

    #[test]
    fn pipeline_json_is_graph_json_with_outputs() {
        let ir = with_outputs();
        let json = ir.to_json();
        assert_eq!(PipelineIr::from_json(&json).unwrap(), ir);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value["outputs"][0],
            serde_json::json!({ "name": "count", "type": "Vec<u64>", "from": "count", "from_port": "output" })
        );
        assert_eq!(value["schema_version"], SCHEMA_VERSION);
        // Either reads the other.
        assert_eq!(GraphIr::from_json(&json).unwrap(), ir.graph);
        let plain = PipelineIr::from_json(&sample().to_json()).unwrap();
        assert_eq!(plain, PipelineIr::from(sample()));
        let value: serde_json::Value = serde_json::from_str(&plain.to_json()).unwrap();
        assert!(value.get("outputs").is_none(), "no outputs, no key");
    }

    #[test]
    fn outputs_are_drawn_in_dot_and_mermaid() {
        let mut ir = with_outputs();
        let dot = ir.to_dot();
        assert!(
            dot.contains("\"output:count\" [shape=Mrecord, style=bold, label=\"{ { <in_value> value: Vec\\<u64\\> } | count\\n(output) }\"];"),
            "{dot}"
        );
        assert!(
            dot.contains(
                "\"count\":\"out_output\" -> \"output:count\":\"in_value\" [label=\"Vec<u64>\"];"
            ),
            "{dot}"
        );
        let mermaid = ir.to_mermaid();
        assert!(
            mermaid.contains("o0([\"count (output)<br/>Vec#lt;u64#gt;\"])"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("n1 -->|\"output → count: Vec#lt;u64#gt;\"| o0"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("n0 -->|\"value → prompt: String\"| o1"),
            "{mermaid}"
        );
        // A node that has an output's DOT id does not take it.
        ir.graph.nodes[0].name = "output:prompt".into();
        ir.outputs[1].from = "output:prompt".into();
        let dot = ir.to_dot();
        assert!(
            dot.contains("\"output:prompt\":\"out_value\" -> \"_output:prompt\":\"in_value\""),
            "{dot}"
        );
    }

    #[test]
    fn mermaid_has_nodes_and_labelled_edges() {
        let m = sample().to_mermaid();
        assert!(m.starts_with("flowchart LR\n"));
        assert!(
            m.contains("n1[\"count (fn)<br/>output: Vec#lt;u64#gt;\"]"),
            "{m}"
        );
        assert!(m.contains("n0 -->|\"value → text: String\"| n1"), "{m}");
    }
}
