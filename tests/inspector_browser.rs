//! The inspector in a real browser (Debian's chromium driven by playwright-core): every node
//! and edge renders, run all updates statuses live, an image output shows as an image,
//! editing an input and "run this node" changes that node only, a reload keeps the sheet,
//! switching sheets works; a node's log shows live in its card and after a reload, with the
//! executor's retry lines; dragging a card moves it and its edges, survives a reload, and
//! "Reset layout" puts it back; a failed run stays in the node's history with its error and
//! log, also after a server restart; a page of another origin cannot change anything. A
//! node's card says why it recomputed (which input changed) or hit the cache; no edge passes
//! under a card, an opened card pushes the one below it down, the run menu opens beside its
//! card, the minimap tells cached from done, the history names wired inputs' values. Image,
//! audio, video, file, gallery and JSON previews load as a user gets them; the minimap, SVG
//! export and the timeline work; 5 000 nodes render (only what is in view has DOM) and run.
//! Screenshots land in `target/inspector-screenshots/`.
//! The browser and playwright-core come from `scripts/setup/browser.sh` (run here if missing).

#[path = "common/inspector.rs"]
mod inspector;
#[path = "common/test_env.rs"]
mod test_env;
use inspector::{findings_of, node_script, node_script_with, png, serve};
use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use test_env::{browser_env, repo};

use daggr::{
    constant, Audio, Cache, Configure, File, FnNode, Graph, Image, NodeContext, RetryPolicy, Video,
};
use serde_json::json;

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
    assert_eq!(findings["nodes"], 500);
    println!("500 nodes: {findings}");
}

/// 5 000 nodes: 50 layers of 100, each node reading the one before it and every tenth also
/// one five layers back (long edges, routed beside the cards). The page gets ready with only
/// the cards in view in the DOM, a full run lands, the far zoom draws on a canvas. Times are
/// printed, not asserted (`inspector/measure-big.sh` runs this and prints medians).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_nodes_render_and_update() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let nodes = big_graph(dir.path(), 50, 100);
    let pipeline = nodes.build().unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let output = tokio::task::spawn_blocking(move || {
        node_script_with("many.mjs", &url, &playwright, &["5000"])
    })
    .await
    .unwrap();
    stop.cancel();
    let findings = findings_of(&output);
    assert_eq!(findings["nodes"], 5000);
    assert!(
        findings["cards_in_dom"].as_u64().unwrap() < 1000,
        "{findings}"
    );
    println!("5000 nodes: {findings}");
}

/// `layers` x `width` nodes: node (l, i) adds 1 to node (l - 1, i), and every tenth node
/// also reads node (l - 5, i + 3): edges that cross four columns.
fn big_graph(dir: &Path, layers: usize, width: usize) -> Graph {
    let mut g = Graph::new("big").cache(Cache::open(dir.join("cache")).unwrap());
    let mut grid: Vec<Vec<daggr::Output<u64>>> = Vec::new();
    for l in 0..layers {
        let mut row = Vec::with_capacity(width);
        for i in 0..width {
            let name = format!("l{l}n{i}");
            let node = if l == 0 {
                g.add(FnNode::sync(&name, move || i as u64).inline(), ())
            } else if l >= 5 && i % 10 == 0 {
                g.add(
                    FnNode::sync(&name, |a: u64, b: u64| a + b).inline(),
                    (grid[l - 1][i], grid[l - 5][(i + 3) % width]),
                )
            } else {
                g.add(
                    FnNode::sync(&name, |a: u64| a + 1).inline(),
                    (grid[l - 1][i],),
                )
            };
            row.push(node);
        }
        grid.push(row);
    }
    g
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
        FnNode::sync("render", |size: u32| png(size, size, "tile.png")).inputs(["size"]),
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

/// A mono 16-bit PCM WAV: a 440 Hz tone of `seconds` at 8 kHz.
fn wav(seconds: f32) -> Audio {
    let rate = 8000u32;
    let samples: Vec<i16> = (0..(rate as f32 * seconds) as u32)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16)
        .collect();
    let data = samples.len() as u32 * 2;
    let mut bytes = Vec::with_capacity(44 + data as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    bytes.extend_from_slice(&2u16.to_le_bytes()); // block align
    bytes.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    Audio::named(bytes, "audio/wav", "tone.wav")
}

/// The quick start's shape (see tests/browser/layout_and_why.mjs): inputs width, height,
/// seed, sigma; scene(width, height, seed); soft(scene, sigma) blurs; outline(scene);
/// stats(soft, outline); caption(stats). Before the layered layout, sigma -> soft ran under
/// the scene card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_say_why_and_the_layout_keeps_edges_and_cards_apart() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("layout-and-why").cache(Cache::open(dir.path().join("cache")).unwrap());
    let width = g.input("width", 64u32);
    let height = g.input("height", 40u32);
    let seed = g.input("seed", 7u64);
    let sigma = g.input("sigma", 2.5f32);
    let scene = g.add(
        FnNode::sync("scene", |w: u32, h: u32, seed: u64| {
            let _ = seed;
            png(w, h, "scene.png")
        })
        .inputs(["width", "height", "seed"]),
        (width, height, seed),
    );
    let decode = |image: &Image| image::load_from_memory(image.bytes()).unwrap();
    let encode = |img: image::DynamicImage, name: &str| {
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        Image::named(bytes, "image/png", name)
    };
    let soft = g.add(
        FnNode::sync("soft", move |image: Image, sigma: f32| {
            encode(decode(&image).blur(sigma), "soft.png")
        })
        .inputs(["image", "sigma"]),
        (scene, sigma),
    );
    let outline = g.add(
        FnNode::sync("outline", move |image: Image| {
            encode(decode(&image).grayscale(), "outline.png")
        })
        .inputs(["image"]),
        (scene,),
    );
    let stats = g.add(
        FnNode::sync("stats", |blurred: Image, edge_map: Image| {
            json!({ "blurred_bytes": blurred.bytes().len(), "outline_bytes": edge_map.bytes().len() })
        })
        .inputs(["blurred", "edge_map"]),
        (soft, outline),
    );
    g.add(
        FnNode::sync("caption", |stats: serde_json::Value| {
            format!("a scene of {} bytes", stats["blurred_bytes"])
        })
        .inputs(["stats"]),
        (stats,),
    );
    let pipeline = g.build().unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let output =
        tokio::task::spawn_blocking(move || node_script("layout_and_why.mjs", &url, &playwright))
            .await
            .unwrap();
    stop.cancel();
    let findings = findings_of(&output);
    println!("layout and why: {findings}");
    assert!(findings["why"]["soft"]
        .as_str()
        .unwrap()
        .contains("input `sigma` changed (from `sigma`)"));
    assert!(findings["opened"]["moved_by"].as_f64().unwrap() > 0.0);
}

/// One node per kind of preview (tests/browser/previews.mjs), then the minimap, SVG export
/// and the timeline on the same page. The video is recorded by Chromium itself
/// (tests/browser/make_video.mjs): the test machine has no ffmpeg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_minimap_export_and_timeline_work() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let clip_path = dir.path().join("clip.webm");
    let made = Command::new("node")
        .arg(repo().join("tests/browser/make_video.mjs"))
        .arg(&clip_path)
        .env("DAGGR_PLAYWRIGHT", &playwright)
        .output()
        .expect("node runs");
    assert!(
        made.status.success(),
        "recording the video failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let clip = std::fs::read(&clip_path).unwrap();
    assert_eq!(&clip[..4], &[0x1a, 0x45, 0xdf, 0xa3], "a WebM (EBML) file");

    let mut g = Graph::new("previews").cache(Cache::open(dir.path().join("cache")).unwrap());
    let size = g.input("size", 48u32);
    let picture = g.add(
        FnNode::sync("picture", |size: u32| {
            png(size, size * 2 / 3, "picture.png")
        })
        .inputs(["size"]),
        (size,),
    );
    let tiles = g.add(
        FnNode::sync("tiles", |picture: Image| {
            let img = image::load_from_memory(picture.bytes()).unwrap();
            [1u32, 2, 4]
                .iter()
                .map(|k| {
                    png(
                        img.width() / k,
                        img.height() / k,
                        &format!("tile-{}.png", img.width() / k),
                    )
                })
                .collect::<Vec<Image>>()
        })
        .inputs(["picture"]),
        (picture,),
    );
    g.add(
        FnNode::sync("summary", |tiles: Vec<Image>| {
            let widths: Vec<u32> = tiles
                .iter()
                .map(|t| image::load_from_memory(t.bytes()).unwrap().width())
                .collect();
            json!({ "count": tiles.len(), "widths": widths })
        })
        .inputs(["tiles"]),
        (tiles,),
    );
    g.add(FnNode::sync("tone", || wav(0.5)), ());
    g.add(
        FnNode::sync("clip", move || {
            Video::named(clip.clone(), "video/webm", "clip.webm")
        }),
        (),
    );
    g.add(
        FnNode::sync("table", || {
            File::named(b"name,value\na,1\nb,2\n".to_vec(), "text/csv", "table.csv")
        }),
        (),
    );
    let pipeline = g.build().unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let output =
        tokio::task::spawn_blocking(move || node_script("previews.mjs", &url, &playwright))
            .await
            .unwrap();
    stop.cancel();
    let findings = findings_of(&output);
    println!("previews: {findings}");
    assert_eq!(findings["video"]["w"], 64);
    assert_eq!(findings["svg"]["paths"], 3);
    assert_eq!(findings["timeline"]["rows"], 7);
}
