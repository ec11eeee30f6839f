//! Where the test environments live and how the browser's is made ready: one copy for the
//! server harnesses (LLM, S3) and the browser tests, each of which includes this file.

// Each includer uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Where the test environments live (`$DAGGR_TEST_ENV`, default `~/.cache/daggr-test-env`).
pub fn test_env() -> PathBuf {
    std::env::var_os("DAGGR_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/daggr-test-env")
        })
}

/// Makes sure chromium and playwright-core are there, running the shared setup script if
/// not; returns playwright-core's directory.
pub fn browser_env() -> PathBuf {
    let playwright = test_env().join("browser/node_modules/playwright-core");
    let has_chromium = Command::new("bash")
        .args(["-c", "command -v chromium"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_chromium || !playwright.join("package.json").exists() {
        let status = Command::new("bash")
            .arg(repo().join("scripts/setup/browser.sh"))
            .env("DAGGR_TEST_ENV", test_env())
            .status()
            .expect("bash runs the setup script");
        assert!(status.success(), "scripts/setup/browser.sh failed");
    }
    playwright
}
