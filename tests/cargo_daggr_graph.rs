//! `cargo daggr graph` end to end: the real binary against the workspace's quickstart
//! example, in each format, both by building and running the example (the
//! DAGGR_EXPORT_GRAPH handshake) and by parsing its sources (`--static`), and against a
//! small project outside the workspace that assembles its graph with the `Graph` API.
//! DOT output is checked with graphviz's own parser (`dot -Tsvg`).

use std::path::Path;
use std::process::Command;

#[path = "common/cargo_daggr.rs"]
mod cargo_daggr_bin;

use cargo_daggr_bin::{test_target_dir, workspace};

fn cargo_daggr(args: &[&str]) -> String {
    let manifest = workspace().join("Cargo.toml");
    let mut command = Command::new(cargo_daggr_bin::binary());
    command
        .arg("daggr")
        .arg("graph")
        .args(args)
        .arg("--manifest-path")
        .arg(&manifest);
    if !args.contains(&"--static") {
        command.arg("--target-dir").arg(test_target_dir());
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn check_json(text: &str, from_build: bool) {
    let ir: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(ir["schema_version"], 1);
    assert_eq!(ir["name"], "Quickstart");
    let names: Vec<&str> = ir["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    for node in ["width", "seed", "scene", "soft", "outline", "stats", "text"] {
        assert!(names.contains(&node), "{node} in {names:?}");
    }
    let edge = ir["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "stats" && e["to_port"] == "blurred")
        .expect("soft → stats.blurred");
    assert_eq!(edge["from"], "soft");
    assert_eq!(edge["type"], "Image");
    let scene = ir["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "scene")
        .unwrap();
    assert_eq!(
        scene["inputs"][2],
        serde_json::json!({ "name": "seed", "type": "u64" })
    );
    if from_build {
        let location = &scene["location"];
        assert!(
            location["file"]
                .as_str()
                .unwrap()
                .ends_with("quickstart.rs"),
            "{location}"
        );
    }
}

fn check_dot(text: &str) {
    assert!(
        text.contains("\"soft\":\"out_output\" -> \"stats\":\"in_blurred\" [label=\"Image\"]"),
        "{text}"
    );
    let svg = dot_to_svg(text);
    for node in ["outline", "stats", "scene"] {
        assert!(svg.contains(node), "the SVG draws {node}");
    }
}

/// Renders DOT with graphviz, asserting that graphviz accepts it.
fn dot_to_svg(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.dot");
    std::fs::write(&path, text).unwrap();
    let svg = Command::new("dot")
        .arg("-Tsvg")
        .arg(&path)
        .output()
        .expect("graphviz is installed by scripts/setup-test-env.sh");
    assert!(
        svg.status.success(),
        "dot rejected the output: {}",
        String::from_utf8_lossy(&svg.stderr)
    );
    String::from_utf8(svg.stdout).unwrap()
}

fn check_mermaid(text: &str) {
    assert!(text.starts_with("flowchart LR\n"));
    assert!(text.contains("scene (fn)<br/>output: Image"), "{text}");
    assert!(text.contains("-->|\"output → blurred: Image\"|"), "{text}");
}

#[test]
fn static_graph_in_every_format() {
    check_json(
        &cargo_daggr(&["--static", "--example", "quickstart"]),
        false,
    );
    check_dot(&cargo_daggr(&[
        "--static",
        "--example",
        "quickstart",
        "--format",
        "dot",
    ]));
    check_mermaid(&cargo_daggr(&[
        "--static",
        "--example",
        "quickstart",
        "--format",
        "mermaid",
    ]));
}

#[test]
fn built_graph_in_every_format() {
    check_json(&cargo_daggr(&["--example", "quickstart"]), true);
    check_dot(&cargo_daggr(&[
        "--example",
        "quickstart",
        "--format",
        "dot",
    ]));
    check_mermaid(&cargo_daggr(&[
        "--example",
        "quickstart",
        "--format",
        "mermaid",
    ]));
}

/// The small project: a three-node pipeline built with the `Graph` API in `main.rs`, and a
/// second binary that never builds one.
const DEMO_MAIN: &str = r#"
use daggr::{Configure, FnNode, Graph};

fn main() {
    let mut g = Graph::new("word_stats");
    let text = g.input("text", "the quick brown fox".to_string());
    let words = g.add(
        FnNode::sync("split", |t: String| {
            t.split_whitespace().map(str::to_string).collect::<Vec<String>>()
        })
        .inputs(["text"]),
        (text,),
    );
    let _count = g.add(
        FnNode::sync("count", |w: Vec<String>| w.len() as u64).inputs(["words"]),
        (words,),
    );
    // Under `cargo daggr graph` this writes the graph and exits before running anything.
    let _pipeline = g.build().expect("a valid graph");
    panic!("DAGGR_EXPORT_GRAPH is not set: run this through `cargo daggr graph`");
}
"#;

const DEMO_NO_GRAPH: &str = r#"
fn main() {
    println!("no pipeline here");
}
"#;

/// Writes the small project to a temporary directory, depending on this workspace's
/// `daggr` by path and starting from the workspace's lock file (the same dependency
/// versions, so the shared build directory's artifacts are reused).
fn demo_project() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cargo-daggr-demo-")
        .tempdir()
        .unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src/bin")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[package]\nname = \"graph-demo\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\ndaggr = {{ path = {:?} }}\n\n\
             # Not part of any enclosing workspace.\n[workspace]\n",
            workspace().join("daggr").display().to_string()
        ),
    )
    .unwrap();
    std::fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    std::fs::write(root.join("src/main.rs"), DEMO_MAIN).unwrap();
    std::fs::write(root.join("src/bin/no_graph.rs"), DEMO_NO_GRAPH).unwrap();
    dir
}

/// Runs `cargo-daggr daggr graph --manifest-path <project> …`.
fn run_on(project: &Path, args: &[&str]) -> std::process::Output {
    Command::new(cargo_daggr_bin::binary())
        .args(["daggr", "graph", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(test_target_dir())
        .args(args)
        .output()
        .unwrap()
}

fn stdout_of(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_graph_api_project_outside_the_workspace() {
    let project = demo_project();
    let project = project.path();

    // JSON (the default), written to a file with -o; this run does the one build.
    let json_file = project.join("graph.json");
    let printed = stdout_of(run_on(
        project,
        &["--bin", "graph-demo", "-o", json_file.to_str().unwrap()],
    ));
    assert_eq!(printed, "", "with -o nothing goes to stdout");
    let ir: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    assert_eq!(ir["schema_version"], 1);
    assert_eq!(ir["name"], "word_stats");
    let nodes = ir["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["text", "split", "count"]);
    let kinds: Vec<&str> = nodes.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[1..], ["fn", "fn"]);
    assert_eq!(
        nodes[1]["inputs"],
        serde_json::json!([{ "name": "text", "type": "String" }])
    );
    assert_eq!(
        nodes[1]["outputs"],
        serde_json::json!([{ "name": "output", "type": "Vec<String>" }])
    );
    assert_eq!(nodes[2]["outputs"][0]["type"], "u64");
    assert!(
        nodes[2]["location"]["file"]
            .as_str()
            .unwrap()
            .ends_with("main.rs"),
        "{}",
        nodes[2]["location"]
    );
    let edges: Vec<(&str, &str, &str, &str, &str)> = ir["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap(),
                e["from_port"].as_str().unwrap(),
                e["to"].as_str().unwrap(),
                e["to_port"].as_str().unwrap(),
                e["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("text", "value", "split", "text", "String"),
            ("split", "output", "count", "words", "Vec<String>"),
        ]
    );

    // DOT, through graphviz's parser.
    let dot = stdout_of(run_on(project, &["--bin", "graph-demo", "--format", "dot"]));
    assert!(dot.starts_with("digraph \"word_stats\" {"), "{dot}");
    assert!(
        dot.contains("\"split\":\"out_output\" -> \"count\":\"in_words\" [label=\"Vec<String>\"]"),
        "{dot}"
    );
    assert!(
        dot.contains("<out_output> output: Vec\\<String\\>"),
        "{dot}"
    );
    let svg = dot_to_svg(&dot);
    for node in ["text", "split", "count"] {
        assert!(svg.contains(node), "the SVG draws {node}");
    }

    // Mermaid.
    let mermaid = stdout_of(run_on(
        project,
        &["--bin", "graph-demo", "--format", "mermaid"],
    ));
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(
        mermaid.contains("n0[\"text (input)<br/>value: String\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("n1[\"split (fn)<br/>output: Vec#lt;String#gt;\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("n2[\"count (fn)<br/>output: u64\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("n0 -->|\"value → text: String\"| n1"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("n1 -->|\"output → words: Vec#lt;String#gt;\"| n2"),
        "{mermaid}"
    );

    // A binary that never builds a pipeline, and an ambiguous choice of binary.
    let out = run_on(project, &["--bin", "no_graph"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the target `no_graph` (exit status: 0) never built a daggr pipeline"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no pipeline here"),
        "the program's own output is shown on stderr: {stderr}"
    );
    let out = run_on(project, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("several bin targets (") && stderr.contains("--bin"),
        "{stderr}"
    );
}
