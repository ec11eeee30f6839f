//! `cargo daggr graph` end to end: the real binary against the workspace's quickstart
//! example, in each format, both by building and running the example (the
//! DAGGR_EXPORT_GRAPH handshake) and by parsing its sources (`--static`). DOT output is
//! checked with graphviz's own parser (`dot -Tsvg`).

use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cargo_daggr(args: &[&str]) -> String {
    let manifest = workspace().join("Cargo.toml");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-daggr"));
    command
        .arg("daggr")
        .arg("graph")
        .args(args)
        .arg("--manifest-path")
        .arg(&manifest);
    if !args.contains(&"--static") {
        // The outer `cargo test` holds the workspace's build directory: build elsewhere.
        command
            .arg("--target-dir")
            .arg(workspace().join("target/cargo-daggr-test"));
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
    let dir = tempfile_dir();
    let path = dir.join("graph.dot");
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
    let svg = String::from_utf8(svg.stdout).unwrap();
    for node in ["outline", "stats", "scene"] {
        assert!(svg.contains(node), "the SVG draws {node}");
    }
}

fn check_mermaid(text: &str) {
    assert!(text.starts_with("flowchart LR\n"));
    assert!(text.contains("scene (fn)<br/>output: Image"), "{text}");
    assert!(text.contains("-->|\"output → blurred: Image\"|"), "{text}");
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cargo-daggr-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
