//! The `cargo daggr` binary for the CLI suites, built once per test process into the
//! build directory the CLI suites share (`target/cargo-daggr-test`: the outer `cargo
//! test` holds the workspace's own), and the workspace it is built from.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root (the workspace's `Cargo.toml` is there).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The build directory the CLI suites share, for `cargo-daggr` and the targets it builds.
pub fn test_target_dir() -> PathBuf {
    workspace().join("target/cargo-daggr-test")
}

/// The built `cargo-daggr` binary.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = test_target_dir();
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "-q", "-p", "cargo-daggr", "--bin", "cargo-daggr"])
            .arg("--manifest-path")
            .arg(workspace().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building cargo-daggr failed");
        target
            .join("debug")
            .join(format!("cargo-daggr{}", std::env::consts::EXE_SUFFIX))
    })
}
