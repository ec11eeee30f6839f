//! What the inspector's browser suites share (tests/inspector_browser.rs,
//! tests/inspector_composite.rs): serving a pipeline's inspector on a free port, running a
//! browser script on it, and small PNGs for image outputs. An includer includes
//! `common/test_env.rs` as `test_env` too.

// Each includer uses part of it.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::Path;
use std::process::{Command, Output};

use daggr::inspector::{Inspector, LaunchOptions};
use daggr::{Image, Pipeline};
use tokio_util::sync::CancellationToken;

use crate::test_env::repo;

/// Serves `pipeline`'s inspector on 127.0.0.1 (a free port, sheets in `dir/sheets.db`, no
/// token, no browser opened) until the returned token is cancelled; returns its URL.
pub async fn serve(pipeline: &Pipeline, dir: &Path) -> (String, CancellationToken) {
    let inspector = Inspector::bind(
        pipeline,
        LaunchOptions {
            port: Some(0),
            open_browser: false,
            sheets_db: Some(dir.join("sheets.db")),
            ..LaunchOptions::default()
        },
    )
    .await
    .unwrap();
    let url = inspector.url().to_string();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(inspector.serve(async move { s.cancelled().await }));
    (url, stop)
}

/// Runs tests/browser/`script` on `url` (screenshots to `target/inspector-screenshots/`).
pub fn node_script(script: &str, url: &str, playwright: &Path) -> Output {
    node_script_with(script, url, playwright, &[])
}

/// Runs a browser script with extra arguments after its URL and screenshot directory.
pub fn node_script_with(script: &str, url: &str, playwright: &Path, extra: &[&str]) -> Output {
    Command::new("node")
        .arg(repo().join("tests/browser").join(script))
        .arg(url)
        .arg(repo().join("target/inspector-screenshots"))
        .args(extra)
        .env("DAGGR_PLAYWRIGHT", playwright)
        .output()
        .expect("node runs")
}

/// The findings a browser script printed last (one JSON line), or a panic with what it
/// said.
pub fn findings_of(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser check failed:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// A `w` x `h` PNG named `name` (a colour gradient).
pub fn png(w: u32, h: u32, name: &str) -> Image {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::from(img)
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    Image::named(bytes, "image/png", name)
}
