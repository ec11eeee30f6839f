//! `cargo daggr graph` end to end: the real binary against the workspace's quickstart
//! example, in each format, both by building and running the example (the
//! DAGGR_EXPORT_GRAPH handshake) and by parsing its sources (`--static`), and against a
//! small project outside the workspace that assembles its graph with the `Graph` API.
//! Projects made from `fixtures/cargo_daggr_graph/` check the choice of pipeline
//! (`--pipeline`) and of binary, `fields` nodes and named outputs in every format and
//! mode, and `--static` on `pipeline!`s that do not compile. DOT output is checked with
//! graphviz's own parser (`dot -Tsvg`), which must not warn.

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
    // The pipeline's named outputs, in both modes.
    assert_eq!(
        ir["outputs"][0],
        serde_json::json!({ "name": "caption", "type": "String", "from": "text", "from_port": "output" })
    );
    let outputs: Vec<&str> = ir["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["caption", "stats", "soft", "outline"]);
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
    assert!(
        text.contains(
            "\"text\":\"out_output\" -> \"output:caption\":\"in_value\" [label=\"String\"]"
        ),
        "{text}"
    );
    let svg = dot_to_svg(text);
    for node in ["outline", "stats", "scene", "(output)"] {
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
    // Graphviz warns (and draws wrongly) when an edge names a port the node lacks.
    assert!(
        svg.stderr.is_empty(),
        "dot warned: {}\n{text}",
        String::from_utf8_lossy(&svg.stderr)
    );
    String::from_utf8(svg.stdout).unwrap()
}

fn check_mermaid(text: &str) {
    assert!(text.starts_with("flowchart LR\n"));
    assert!(text.contains("scene (fn)<br/>output: Image"), "{text}");
    assert!(text.contains("-->|\"output → blurred: Image\"|"), "{text}");
    assert!(
        text.contains("o0([\"caption (output)<br/>String\"])"),
        "{text}"
    );
    assert!(
        text.contains("-->|\"output → caption: String\"| o0"),
        "{text}"
    );
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

/// Writes a project to a temporary directory: `files` (path, text) and a manifest naming
/// it `name`, with `manifest_extra` in its `[package]`, depending on this workspace's
/// `daggr` by path (and serde), and starting from the workspace's lock file (the same
/// dependency versions, so the shared build directory's artifacts are reused).
fn project(name: &str, manifest_extra: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cargo-daggr-demo-")
        .tempdir()
        .unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n{manifest_extra}\n\
             [dependencies]\ndaggr = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\n\
             # Not part of any enclosing workspace.\n[workspace]\n",
            workspace().join("daggr").display().to_string()
        ),
    )
    .unwrap();
    std::fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// The small project: `main.rs` builds a graph with the `Graph` API, `no_graph` never
/// builds one.
fn demo_project() -> tempfile::TempDir {
    project(
        "graph-demo",
        "",
        &[
            ("src/main.rs", DEMO_MAIN),
            ("src/bin/no_graph.rs", DEMO_NO_GRAPH),
        ],
    )
}

/// A fixture of `fixtures/cargo_daggr_graph/`.
fn fixture(name: &str) -> String {
    let path = workspace()
        .join("tests/fixtures/cargo_daggr_graph")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
    assert_eq!(
        stderr.trim_end(),
        "error: package `graph-demo` has 2 binaries (graph-demo, no_graph); pass --bin NAME to pick one (or set `default-run` in its Cargo.toml)"
    );
    // Said before building anything: cargo printed nothing (it says "Finished" even when
    // all is built already).
    assert!(!stderr.contains("Finished"), "{stderr}");
}

/// The JSON of a run, parsed, and its stderr.
fn json_and_stderr(out: std::process::Output) -> (serde_json::Value, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

/// A node's output ports, as (name, type).
fn output_ports(ir: &serde_json::Value, node: &str) -> Vec<(String, String)> {
    let node = ir["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap_or_else(|| panic!("no node {node} in {ir}"));
    node["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Checks the graph of `First` in `fixtures/cargo_daggr_graph/pipelines.rs` in every
/// format: `m`'s field ports, and the named outputs.
fn check_first(project: &Path, args: &[&str]) {
    let with = |extra: &[&str]| -> Vec<String> {
        args.iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_on(project, &args)
    };
    let (ir, _) = json_and_stderr(run(&[]));
    assert_eq!(ir["name"], "First", "{ir}");
    let ports = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        output_ports(&ir, "m"),
        ports(&[("words", "u64"), ("chars", "u64")])
    );
    assert_eq!(
        ir["outputs"],
        serde_json::json!([
            { "name": "words", "type": "u64", "from": "m", "from_port": "words" },
            { "name": "twice", "type": "u64", "from": "twice", "from_port": "output" },
        ])
    );

    let dot = stdout_of(run(&["--format", "dot"]));
    for line in [
        "\"m\":\"out_chars\" -> \"twice\":\"in_n\" [label=\"u64\"];",
        "\"output:words\" [shape=Mrecord, style=bold, label=\"{ { <in_value> value: u64 } | words\\n(output) }\"];",
        "\"m\":\"out_words\" -> \"output:words\":\"in_value\" [label=\"u64\"];",
        "\"twice\":\"out_output\" -> \"output:twice\":\"in_value\" [label=\"u64\"];",
    ] {
        assert!(dot.contains(line), "{line} in {dot}");
    }
    // No warning about an unknown port (`m`'s fields), and both outputs drawn.
    let svg = dot_to_svg(&dot);
    assert!(svg.contains("(output)"), "{svg}");

    let mermaid = stdout_of(run(&["--format", "mermaid"]));
    for line in [
        "n1[\"m (fn)<br/>words: u64<br/>chars: u64\"]",
        "o0([\"words (output)<br/>u64\"])",
        "n1 -->|\"words → words: u64\"| o0",
        "o1([\"twice (output)<br/>u64\"])",
        "n2 -->|\"output → twice: u64\"| o1",
    ] {
        assert!(mermaid.contains(line), "{line} in {mermaid}");
    }
}

/// A project running `fixtures/cargo_daggr_graph/pipelines.rs`, with a second binary
/// and `default-run` naming the first.
fn pipelines_project() -> tempfile::TempDir {
    project(
        "graph-pipelines",
        "default-run = \"graph-pipelines\"",
        &[
            ("src/main.rs", &fixture("pipelines.rs")),
            ("src/bin/other.rs", &fixture("other_bin.rs")),
        ],
    )
}

#[test]
fn the_pipeline_asked_for_when_building() {
    let project = pipelines_project();
    let project = project.path();

    // No --bin: `default-run` picks the binary, as for `cargo run`. The program builds
    // `First` first; that it defines `Second` too is said.
    let (ir, stderr) = json_and_stderr(run_on(project, &[]));
    assert_eq!(ir["name"], "First");
    assert!(
        stderr.contains(
            "cargo daggr: showing `First`, the first pipeline the target `graph-pipelines` builds; its sources also declare Second (choose with --pipeline)"
        ),
        "{stderr}"
    );
    // Fields ports and named outputs, in every format, from the built graph.
    check_first(project, &["--pipeline", "First"]);

    // The second pipeline: the program stops at its first build, so it is read from the
    // sources, and the user is told.
    let (ir, stderr) = json_and_stderr(run_on(project, &["--pipeline", "Second"]));
    assert_eq!(ir["name"], "Second", "{ir}");
    assert_eq!(
        ir["outputs"],
        serde_json::json!([{ "name": "loud", "type": "String", "from": "loud", "from_port": "output" }])
    );
    assert!(
        stderr.contains(
            "cargo daggr: the target `graph-pipelines` stops at the first pipeline it builds, `First`; `Second` is read from its sources instead (as with --static)"
        ),
        "{stderr}"
    );

    // An unknown name fails, naming the pipelines there are.
    let out = run_on(project, &["--pipeline", "Nope"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.ends_with("error: no pipeline named `Nope`; found: First, Second\n"),
        "{stderr}"
    );
}

#[test]
fn fields_and_named_outputs_when_reading_sources() {
    let project = pipelines_project();
    let project = project.path();
    check_first(project, &["--static", "--bin", "graph-pipelines"]);
    let (ir, _) = json_and_stderr(run_on(
        project,
        &[
            "--static",
            "--bin",
            "graph-pipelines",
            "--pipeline",
            "Second",
        ],
    ));
    assert_eq!(ir["name"], "Second");
    assert_eq!(ir["outputs"][0]["name"], "loud");

    let out = run_on(
        project,
        &["--static", "--bin", "graph-pipelines", "--pipeline", "Nope"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr,
        "error: no pipeline named `Nope`; found: First, Second\n"
    );
}

/// What the graph says of each node, and of the pipeline's outputs: kinds, ports (names and
/// types, spaces left out: the built graph spells `Result<u32, ItemError>` as the compiler
/// names it), mapped inputs, variants, groups.
fn shape_of(ir: &serde_json::Value) -> Vec<String> {
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default()
    };
    let ports = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p["name"],
                    p["type"].as_str().unwrap().replace(' ', "")
                )
            })
            .collect()
    };
    let mut shape: Vec<String> = ir["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{} {} in {:?} out {:?} mapped {:?} variants {:?} group {}",
                n["name"],
                n["kind"],
                ports(&n["inputs"]),
                ports(&n["outputs"]),
                list(&n["mapped"]),
                list(&n["variants"]),
                n["group"]
            )
        })
        .collect();
    shape.extend(list(&ir["outputs"]).into_iter().map(|o| o.replace(' ', "")));
    shape
}

#[test]
fn maps_choices_and_groups_read_from_sources_are_the_built_graph() {
    let project = project(
        "graph-map-choice",
        "",
        &[("src/main.rs", &fixture("map_choice.rs"))],
    );
    let project = project.path();
    let (built, _) = json_and_stderr(run_on(project, &[]));
    let (read, _) = json_and_stderr(run_on(project, &["--static"]));
    // The ports of a `[node]` (`lengths`) are not known from the sources (`in0: ?` there):
    // every other node is the same in both.
    let known = |ir: &serde_json::Value| -> Vec<String> {
        let shape = shape_of(ir);
        shape
            .into_iter()
            .filter(|l| !l.starts_with("\"lengths\""))
            .collect()
    };
    let (built_shape, read_shape) = (known(&built), known(&read));
    assert_eq!(read_shape, built_shape);
    assert_eq!(
        built_shape.len(),
        9,
        "8 nodes and 2 outputs, less `lengths`: {built_shape:#?}"
    );
    let node = |ir: &serde_json::Value, name: &str| {
        ir["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    for ir in [&built, &read] {
        let loud = node(ir, "loud");
        assert_eq!(loud["kind"], "map");
        assert_eq!(loud["mapped"], serde_json::json!(["word"]));
        assert_eq!(loud["outputs"][0]["type"], "Vec<String>");
        let title = node(ir, "title");
        assert_eq!(title["kind"], "choice");
        assert_eq!(title["variants"], serde_json::json!(["joined", "lower"]));
        assert_eq!(
            title["inputs"][3],
            serde_json::json!({ "name": "variant", "type": "String", "source": "const" })
        );
        assert_eq!(node(ir, "width")["group"], "size");
        assert_eq!(node(ir, "lengths")["mapped"], serde_json::json!(["in0"]));
    }
    let dot = stdout_of(run_on(project, &["--static", "--format", "dot"]));
    let svg = dot_to_svg(&dot);
    assert!(svg.contains("title"), "{svg}");
}

/// Where `needle` is in `text`: its 1-based line and column.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in the fixture"));
    let line = text[..at].matches('\n').count() + 1;
    let column = text[..at].rsplit('\n').next().unwrap().chars().count() + 1;
    (line, column)
}

#[test]
fn static_reading_of_a_pipeline_that_does_not_compile_fails_with_the_macros_error() {
    let source = fixture("broken.rs");
    let project = project("graph-broken", "", &[("src/main.rs", &source)]);
    let project = project.path();
    let main = project.join("src/main.rs");
    let main = main.display();
    let at = |needle: &str, offset: usize| {
        let (line, column) = position_of(&source, needle);
        format!("{main}:{line}:{}", column + offset)
    };
    let cases = [
        (
            "UnknownNode",
            format!(
                "{}: unknown node `promt`; did you mean `prompt`?",
                at("promt);", 0)
            ),
        ),
        (
            "UnknownInputPort",
            format!(
                "{}: node `loud` (`shout`) has no input `txt`; did you mean `text`?",
                at("txt: prompt", 0)
            ),
        ),
        (
            "UnknownOutputPort",
            format!(
                "{}: node `s` (`stats`) has no output `word`; did you mean `words`?",
                at("s.word)", 2)
            ),
        ),
        (
            "MissingDefault",
            format!(
                "{}: pipeline input `text` needs a default value: `text: String = …`",
                at("String }", 0)
            ),
        ),
        (
            "MissingSemicolon",
            format!("{}: expected `;`", at("}\n    }\n}\n\nfn main", 0)),
        ),
    ];
    for (pipeline, mistake) in cases {
        for format in ["json", "mermaid", "dot"] {
            let out = run_on(
                project,
                &["--static", "--pipeline", pipeline, "--format", format],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{pipeline}: {stderr}");
            assert!(out.stdout.is_empty(), "no graph for {pipeline}");
            assert_eq!(
                stderr,
                format!("error: pipeline `{pipeline}` ({main}) does not compile:\n  {mistake}\n"),
            );
        }
    }
    // The first pipeline is the one shown by default: an error too, not a graph with an
    // edge from a node that is not there.
    let out = run_on(project, &["--static", "--format", "mermaid"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown node `promt`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
