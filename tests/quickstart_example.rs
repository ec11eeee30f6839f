//! The README's main command really works: runs the quickstart example (built by
//! `cargo test` as part of the package) in a fresh directory, twice.

use std::process::Command;

fn example() -> std::path::PathBuf {
    // target/debug/deps/<this test> → target/debug/examples/quickstart
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().unwrap().parent().unwrap();
    debug
        .join("examples")
        .join(format!("quickstart{}", std::env::consts::EXE_SUFFIX))
}

fn run(dir: &std::path::Path) -> String {
    let out = Command::new(example())
        .current_dir(dir)
        .env("DAGGR_NO_LAUNCH", "1")
        .env("DAGGR_CACHE_DIR", dir.join("cache"))
        .output()
        .expect("cargo test builds examples/quickstart.rs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn quickstart_computes_then_reuses_then_recomputes_only_the_blurred_branch() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path());
    assert!(
        first.contains(&format!("cache: {}", dir.path().join("cache").display())),
        "{first}"
    );
    assert!(first.contains("caption: a "), "{first}");
    let section = |text: &str, title: &str| -> String {
        let start = text.find(title).unwrap();
        let rest = &text[start..];
        rest[..rest[3..].find("==").map_or(rest.len(), |e| e + 3)].to_string()
    };
    let edit = section(&first, "after set_sigma(6.0)");
    for node in ["soft", "stats", "text"] {
        assert!(
            edit.contains(&format!("{node:<8} computed")),
            "{node} reruns: {edit}"
        );
    }
    for node in ["scene", "outline"] {
        assert!(
            edit.contains(&format!("{node:<8} cached")),
            "{node} is reused: {edit}"
        );
    }
    assert!(dir.path().join(".daggr/quickstart/blurred.png").exists());
    let png = std::fs::read(dir.path().join(".daggr/quickstart/edges.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // A second process finds everything on disk.
    let second = run(dir.path());
    let first_run = section(&second, "first run");
    assert!(!first_run.contains("computed"), "{first_run}");
    assert!(
        first_run.contains("scene    cached (disk: read back from the cache directory)"),
        "{first_run}"
    );
    assert!(
        first_run.contains("nothing to compute, an earlier process left every result"),
        "{first_run}"
    );
    assert!(
        !first_run.contains("width "),
        "input nodes are not listed: {first_run}"
    );
}
