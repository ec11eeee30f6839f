//! `cargo daggr run` end to end: the real binary runs the workspace's quickstart example
//! headless on `--input` values, in a cache directory of the test's own.

use std::process::{Command, Output};

#[path = "common/cargo_daggr.rs"]
mod cargo_daggr_bin;

use cargo_daggr_bin::{test_target_dir, workspace};

fn run(cache: &std::path::Path, args: &[&str]) -> Output {
    Command::new(cargo_daggr_bin::binary())
        .args(["daggr", "run", "--example", "quickstart", "--manifest-path"])
        .arg(workspace().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(test_target_dir())
        .args(args)
        .env("DAGGR_CACHE_DIR", cache)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn runs_the_pipeline_on_the_inputs_and_a_repeat_comes_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let out = run(
        cache.path(),
        &["--input", "sigma=4.0", "-i", "width=64", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["pipeline"], "Quickstart");
    let caption = answer["outputs"]["caption"].as_str().unwrap();
    assert!(!caption.is_empty(), "{answer}");
    assert_eq!(answer["outputs"]["soft"]["kind"], "image", "{answer}");
    let computed = answer["computed"].as_array().unwrap();
    assert_eq!(computed.len(), 5, "every node ran: {answer}");
    assert_eq!(answer["failed"], serde_json::json!([]));

    // Again, in a new process: everything from the disk cache, the same outputs.
    let out = run(
        cache.path(),
        &["-i", "width=64", "--input", "sigma=4.0", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["computed"], serde_json::json!([]), "{again}");
    assert_eq!(again["outputs"], answer["outputs"]);

    // As text: one line per output, then what ran.
    let out = run(cache.path(), &["-i", "width=64", "-i", "sigma=5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("caption = \""), "{shown}");
    assert!(
        shown.contains("ran: soft, stats, text · from the cache: scene, outline"),
        "{shown}"
    );
}

#[test]
fn bad_inputs_exit_2_naming_the_input() {
    let cache = tempfile::tempdir().unwrap();
    let out = run(cache.path(), &["-i", "sigmaa=1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown input `sigmaa`; did you mean `sigma`?"),
        "{err}"
    );
    assert!(
        err.contains("(the inputs: width, height, seed, sigma)"),
        "{err}"
    );

    let out = run(cache.path(), &["-i", "width=wide"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("input `width` takes a `u32`"), "{err}");

    // Not NAME=VALUE: refused before anything is built.
    let out = run(cache.path(), &["-i", "width"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("write it as NAME=VALUE"));
}

#[test]
fn a_failing_node_exits_1_naming_the_node() {
    let cache = tempfile::tempdir().unwrap();
    // A zero width makes `generate` fail (a division by zero in the example).
    let out = run(cache.path(), &["-i", "width=0", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["failed"][0]["node"], "scene", "{answer}");
    assert!(
        answer["missing_outputs"]
            .as_array()
            .unwrap()
            .contains(&"caption".into()),
        "{answer}"
    );
    assert!(
        text(&out.stderr).contains("error: node `scene` failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_run_on_a_named_sheet_is_in_its_history_and_keeps_its_inputs() {
    let cache = tempfile::tempdir().unwrap();
    let db = cache.path().join("team-sheets.db");
    let db_arg = db.to_str().unwrap();
    let on_sheet = |args: &[&str]| {
        let mut all = vec!["--sheets", db_arg, "--sheet", "trial", "--json"];
        all.extend(args);
        let out = run(cache.path(), &all);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    // The first run creates the sheet and stores the inputs given.
    let first = on_sheet(&["-i", "sigma=4.0", "-i", "width=64"]);
    assert_eq!(first["sheet"]["name"], "trial", "{first}");
    assert_eq!(first["sheet"]["created"], true, "{first}");
    assert_eq!(first["sheet"]["location"], db_arg, "{first}");
    assert_eq!(first["computed"].as_array().unwrap().len(), 5, "{first}");

    // The second gives only sigma: width keeps the sheet's 64, so only what reads sigma
    // runs again, and both runs are in the history.
    let second = on_sheet(&["-i", "sigma=5"]);
    assert_eq!(second["sheet"]["created"], false, "{second}");
    assert_eq!(
        second["computed"],
        serde_json::json!(["soft", "stats", "text"])
    );

    let store = daggr::sheet::SheetStore::open(&db).unwrap();
    let record = store.read_sheet("Quickstart", "trial").unwrap();
    let stored = |node: &str| {
        record
            .inputs
            .iter()
            .find(|i| i.node == node)
            .map(|i| i.value.clone())
    };
    assert_eq!(
        stored("width"),
        Some(serde_json::json!(64)),
        "{:?}",
        record.inputs
    );
    assert_eq!(
        stored("sigma").and_then(|v| v.as_f64()),
        Some(5.0),
        "{:?}",
        record.inputs
    );
    assert_eq!(record.history["soft"].len(), 2, "one entry per run");
    assert_eq!(
        record.history["scene"].len(),
        1,
        "computed once, then reused"
    );

    // As text, the sheet is named; --sheet and --batch do not go together.
    let out = run(
        cache.path(),
        &["--sheets", db_arg, "--sheet", "trial", "-i", "sigma=5"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("sheet: trial in {db_arg}")),
        "{}",
        text(&out.stdout)
    );
    let out = run(
        cache.path(),
        &["--sheet", "trial", "--batch", "items.jsonl"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}
