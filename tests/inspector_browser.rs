//! The inspector in a real browser (Debian's chromium driven by playwright-core): every node
//! and edge renders, run all updates statuses live, an image output shows as an image,
//! editing an input and "run this node" changes that node only, a reload keeps the sheet,
//! switching sheets works; a node's log shows live in its card and after a reload, with the
//! executor's retry lines; dragging a card moves it and its edges, survives a reload, and
//! "Reset layout" puts it back; a failed run stays in the node's history with its error and
//! log, also after a server restart; a page of another origin cannot change anything. Screenshots land in `target/inspector-screenshots/`.
//! The browser and playwright-core come from `scripts/setup/browser.sh` (run here if missing).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daggr::inspector::{Inspector, LaunchOptions};
use daggr::{constant, Cache, Configure, FnNode, Graph, Image, NodeContext, RetryPolicy};
use serde_json::json;

fn repo() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn test_env() -> PathBuf {
    std::env::var_os("DAGGR_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/daggr-test-env")
        })
}

/// Makes sure chromium and playwright-core are there, running the shared setup script if not.
fn browser_env() -> PathBuf {
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

fn png(size: u32) -> Image {
    let img = image::RgbImage::from_fn(size, size, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 8) as u8, 160])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::from(img)
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    Image::named(bytes, "image/png", "tile.png")
}

async fn serve(
    pipeline: &daggr::Pipeline,
    dir: &Path,
) -> (String, tokio_util::sync::CancellationToken) {
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
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(inspector.serve(async move { s.cancelled().await }));
    (url, stop)
}

fn node_script(script: &str, url: &str, playwright: &Path) -> std::process::Output {
    node_script_with(script, url, playwright, &[])
}

/// Runs a browser script with extra arguments after its URL and screenshot directory.
fn node_script_with(
    script: &str,
    url: &str,
    playwright: &Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new("node")
        .arg(repo().join("tests/browser").join(script))
        .arg(url)
        .arg(repo().join("target/inspector-screenshots"))
        .args(extra)
        .env("DAGGR_PLAYWRIGHT", playwright)
        .output()
        .expect("node runs")
}

/// The findings a browser script printed last, or a panic with what it said.
fn findings_of(output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser check failed:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// 500 nodes (50 chains of 10): all render and finish; load, run and frame times are
/// printed for the closing notes (`cargo test --test inspector_browser -- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_nodes_render_and_update() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("many").cache(Cache::open(dir.path().join("cache")).unwrap());
    for chain in 0..50u64 {
        let mut prev = g.add(
            FnNode::sync(&format!("c{chain}n0"), move || chain).inline(),
            (),
        );
        for i in 1..10 {
            prev = g.add(
                FnNode::sync(&format!("c{chain}n{i}"), |x: u64| x + 1).inline(),
                (prev,),
            );
        }
    }
    let pipeline = g.build().unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let output = tokio::task::spawn_blocking(move || node_script("many.mjs", &url, &playwright))
        .await
        .unwrap();
    stop.cancel();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let findings: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(findings["cards"], 500);
    println!("500 nodes: {findings}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_works_in_a_real_browser() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let upper_calls = Arc::new(AtomicUsize::new(0));
    let report_calls = Arc::new(AtomicUsize::new(0));
    let mut g = Graph::new("browser").cache(Cache::open(dir.path().join("cache")).unwrap());
    let text = g.input("text", "typed pipelines in a real browser".to_string());
    let calls = upper_calls.clone();
    let upper = g.add(
        FnNode::sync("upper", move |t: String| {
            calls.fetch_add(1, Ordering::SeqCst);
            t.to_uppercase()
        })
        .inputs(["text"]),
        (text,),
    );
    let count = g.add(
        FnNode::sync("count", |t: String, min: u64| {
            t.split_whitespace()
                .filter(|w| w.len() as u64 >= min)
                .count() as u64
        })
        .inputs(["text", "min"]),
        (upper, constant(3u64)),
    );
    let calls = report_calls.clone();
    g.add(
        FnNode::sync("report", move |n: u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            format!("{n} long words")
        }),
        (count,),
    );
    g.add(
        FnNode::from_async("slow", |t: String| async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            t.len() as u64
        }),
        (text,),
    );
    g.add(
        FnNode::sync("render", png).inputs(["size"]),
        (constant(32u32),),
    );
    let pipeline = g.build().unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let output =
        tokio::task::spawn_blocking(move || node_script("inspector.mjs", &url, &playwright))
            .await
            .unwrap();
    stop.cancel();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser check failed:\n{stderr}\n{stdout}"
    );
    let findings: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(findings["nodes"], 6);
    assert_eq!(findings["edges"], 4);
    assert_eq!(findings["image_width"], 32);
    assert_eq!(
        findings["sheets"],
        serde_json::json!(["default", "experiment"])
    );
    // Editing count's input and running it alone recomputed neither upstream nor downstream.
    assert_eq!(
        upper_calls.load(Ordering::SeqCst),
        1,
        "upstream was not recomputed"
    );
    assert_eq!(
        report_calls.load(Ordering::SeqCst),
        1,
        "downstream was only marked stale"
    );
    assert!(Path::new(&repo().join("target/inspector-screenshots/3-after-edit.png")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_show_live_and_cards_can_be_dragged() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("logs-and-drag").cache(Cache::open(dir.path().join("cache")).unwrap());
    let text = g.input("text", "logs and dragging".to_string());
    // Logs more lines than its log box shows, slowly enough to be seen running.
    g.add(
        FnNode::with_context("chatty", |ctx: NodeContext, t: String| async move {
            ctx.log("hello from chatty");
            for i in 0..16 {
                ctx.log(format!("step {i} of 16"));
                ctx.progress(Some(i as f32 / 16.0), format!("step {i}"));
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            ctx.log(format!("done: {} chars", t.len()));
            Ok::<_, std::io::Error>(t.len() as u64)
        }),
        (text,),
    );
    let upper = g.add(
        FnNode::sync("upper", |t: String| t.to_uppercase()).inputs(["text"]),
        (text,),
    );
    g.add(FnNode::sync("tail", |t: String| t.len() as u64), (upper,));
    let failed_once = Arc::new(AtomicUsize::new(0));
    g.add(
        FnNode::try_async("flaky", move || {
            let failed = failed_once.clone();
            async move {
                if failed.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err("503 service unavailable")
                } else {
                    Ok(1u64)
                }
            }
        })
        .retry(RetryPolicy::new(1, Duration::from_millis(50))),
        (),
    );
    let pipeline = g.build().unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let output =
        tokio::task::spawn_blocking(move || node_script("logs_and_drag.mjs", &url, &playwright))
            .await
            .unwrap();
    stop.cancel();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser check failed:\n{stderr}\n{stdout}"
    );
    let findings: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    // Lines were seen while the node ran, and all of them once it was done.
    assert!(findings["live_lines"].as_u64().unwrap() >= 1, "{findings}");
    assert_eq!(findings["lines"][0], "hello from chatty");
    assert_eq!(
        findings["lines"].as_array().unwrap().last().unwrap(),
        "done: 17 chars"
    );
    assert!(findings["copied"]
        .as_str()
        .unwrap()
        .contains("hello from chatty"));
    assert!(findings["flaky"]
        .as_str()
        .unwrap()
        .contains("attempt 1 of 2 failed, retrying in 50ms"));
    assert_eq!(findings["after_reload"], findings["lines"]);
    assert_eq!(
        findings["older_log"], findings["lines"],
        "the older history entry shows its own log"
    );
    assert_eq!(findings["dragged"], true);
    assert_eq!(findings["reset"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_stays_in_the_history_with_its_error_and_log() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("failed-history").cache(Cache::open(dir.path().join("cache")).unwrap());
    let text = g.input("text", "a flaky remote step".to_string());
    // Fails on its first call, as a busy Space does, then succeeds.
    let calls = Arc::new(AtomicUsize::new(0));
    let remote = g.add(
        FnNode::with_context("remote", move |ctx: NodeContext, t: String| {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                ctx.log("calling the remote step");
                if first {
                    Err(std::io::Error::other(
                        "503 service unavailable\n<html>the Space is busy</html>",
                    ))
                } else {
                    Ok(t.len() as u64)
                }
            }
        }),
        (text,),
    );
    g.add(FnNode::sync("shout", |n: u64| format!("{n}!")), (remote,));
    let pipeline = g.build().unwrap();

    let (url, stop) = serve(&pipeline, dir.path()).await;
    let pw = playwright.clone();
    let output = tokio::task::spawn_blocking(move || {
        node_script_with("failed_history.mjs", &url, &pw, &["run"])
    })
    .await
    .unwrap();
    stop.cancel();
    let run = findings_of(&output);
    let error = "node `remote` failed: 503 service unavailable\n<html>the Space is busy</html>";
    assert_eq!(run["live_error"], error, "the failure as it happened");

    // A new server on the same sheets: the failure is still there.
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let output = tokio::task::spawn_blocking(move || {
        node_script_with("failed_history.mjs", &url, &playwright, &["restart"])
    })
    .await
    .unwrap();
    stop.cancel();
    let restart = findings_of(&output);
    for findings in [&run, &restart] {
        assert_eq!(
            findings["output"], "19",
            "the current result is the good one"
        );
        assert_eq!(findings["error_box"], 0);
        assert_eq!(findings["current_log"], json!(["calling the remote step"]));
        assert_eq!(findings["entries"], json!(["computed", "failed"]));
        assert!(
            findings["entry_head"]
                .as_str()
                .unwrap()
                .starts_with("run 1 · failed"),
            "{findings}"
        );
        assert_eq!(
            findings["entry_error"], "node `remote` failed: 503 service unavailable",
            "the error's first line"
        );
        assert_eq!(findings["source"], "run 1 · failed");
        assert_eq!(
            findings["failed_log"],
            json!(["calling the remote step", format!("failed: {error}")])
        );
        assert_eq!(findings["back_log"], findings["current_log"]);
    }
}

/// A page of another origin (another loopback port: the same site, and `localhost`: another
/// site) tries forms and fetches against the inspector, in a real browser
/// (tests/browser/cross_site.mjs). Nothing it sends may change anything: no run starts, the
/// input keeps its value, no sheet or blob appears. The inspector's own page, same origin,
/// still sets an input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_cannot_change_anything() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut g = Graph::new("cross-site").cache(Cache::open(dir.path().join("cache")).unwrap());
    let text = g.input("text", "requests from another origin".to_string());
    let counted = calls.clone();
    g.add(
        FnNode::sync("count", move |t: String, min: u64| {
            counted.fetch_add(1, Ordering::SeqCst);
            t.split_whitespace()
                .filter(|w| w.len() as u64 >= min)
                .count() as u64
        })
        .inputs(["text", "min"]),
        (text, constant(3u64)),
    );
    let pipeline = g.build().unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let base = url.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let state = |client: reqwest::Client, base: String| async move {
        client
            .get(format!("{base}/api/sheets/default/state"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let before = state(client.clone(), base.clone()).await;
    let script_url = url.clone();
    let output = tokio::task::spawn_blocking(move || {
        node_script("cross_site.mjs", &script_url, &playwright)
    })
    .await
    .unwrap();
    let findings = findings_of(&output);
    println!("cross-site attempts: {findings}");
    let after = state(client.clone(), base.clone()).await;
    let sheets: serde_json::Value = client
        .get(format!("{base}/api/sheets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stop.cancel();
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no run started");
    assert_eq!(after["running"], false);
    assert_eq!(after["nodes"][1]["status"], "pending", "{after}");
    let min = &after["nodes"][1]["inputs"][0];
    assert_eq!(min["port"], "min");
    assert_eq!(
        min["value"], 5,
        "only the page's own (same-origin) request set the input"
    );
    assert_eq!(findings["same_origin_status"], 200);
    assert_eq!(before["nodes"][1]["inputs"][0]["value"], 3);
    let names: Vec<&str> = sheets["sheets"]
        .as_array()
        .map(|s| s.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["default"], "no sheet was created or deleted");
    // Events: only the page's own input change (state_changed), no run.
    assert!(
        after["last_event_id"].as_u64().unwrap() <= before["last_event_id"].as_u64().unwrap() + 2,
        "{before}\n{after}"
    );
}
