//! Map, choice and grouped-input cards in a real browser (Debian's chromium driven by
//! playwright-core; tests/browser/composite.mjs), on a pipeline built here:
//! - a map `tile` over twelve words, each item a small PNG, items two at a time (a group
//!   limit) and slow enough to be seen finishing one by one; the word `flaky` fails its
//!   first call; failed items are collected, so the map has a result. The card shows its
//!   items live and after the run, the error of the failed one, each item's image; the
//!   failed item's rerun runs the map again and only that item is computed (the item
//!   function counts its calls and logs each: the page reads the log, the test the count);
//! - a choice `caption` with variants `upper`, `reverse` and `remote` (always down) and
//!   fallback: the dropdown switches the variant (the node goes stale, alone), a run changes
//!   the result, switching back is a cache hit, `remote` falls back to `upper` and says so;
//! - a group `look` of four inputs (an enum, a bool, a ranged number, a long text): one card
//!   with a dropdown, a checkbox, a slider and a text area, laid out as one box whose edges
//!   leave from each input's row; editing one input marks exactly its readers stale.
//!
//! Screenshots land in `target/inspector-screenshots/`. The browser and playwright-core
//! come from `scripts/setup/browser.sh` (run here if missing).

#[path = "common/test_env.rs"]
mod test_env;
use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use test_env::{browser_env, repo};

use daggr::inspector::{Inspector, LaunchOptions};
use daggr::{
    each, Cache, Choice, Configure, FnNode, Graph, Image, InputHint, Map, NodeContext, Pipeline,
};
use serde::{Deserialize, Serialize};

async fn serve(pipeline: &Pipeline, dir: &Path) -> (String, tokio_util::sync::CancellationToken) {
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

/// Runs tests/browser/`script` on `url`; returns the JSON line it printed last, or panics
/// with what it said.
fn browser_script(script: &str, url: &str, playwright: &Path) -> serde_json::Value {
    let output = Command::new("node")
        .arg(repo().join("tests/browser").join(script))
        .arg(url)
        .arg(repo().join("target/inspector-screenshots"))
        .env("DAGGR_PLAYWRIGHT", playwright)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser check failed:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// A `w` x `h` PNG named `name`.
fn png(w: u32, h: u32, name: &str) -> Image {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 9) as u8, (y * 13) as u8, ((x + y) * 5) as u8])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::from(img)
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    Image::named(bytes, "image/png", name)
}

/// A Rust enum of unit variants: its input gets a dropdown of the variants.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Style {
    Photo,
    Sketch,
    Watercolor,
}

/// The words the map goes over: twelve, the sixth of which (`flaky`) fails its first call.
fn words() -> Vec<String> {
    (0..12)
        .map(|i| {
            if i == 5 {
                "flaky".to_string()
            } else {
                format!("w{i}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_choice_and_grouped_input_cards_work_in_a_real_browser() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("composite")
        .cache(Cache::open(dir.path().join("cache")).unwrap())
        .group_limit("tiles", 2);

    // A group of inputs, each with its own reader.
    let style = g.input("style", Style::Photo);
    let bold = g.input("bold", false);
    let scale = g.input("scale", 1.5f64);
    let note = g.input(
        "note",
        "A long note about the look.\nIt spans two lines.".to_string(),
    );
    g.input_hint(&scale, InputHint::range(0.5, 4.0).step(0.5));
    g.input_hint(&note, InputHint::multiline());
    g.group_inputs(
        "look",
        &[
            style.node_id(),
            bold.node_id(),
            scale.node_id(),
            note.node_id(),
        ],
    );
    g.add(
        FnNode::sync("styled", |style: Style, bold: bool| {
            format!("{style:?}{}", if bold { " (bold)" } else { "" })
        })
        .inputs(["style", "bold"]),
        (style, bold),
    );
    g.add(
        FnNode::sync("scaled", |scale: f64| scale * 100.0).inputs(["scale"]),
        (scale,),
    );
    g.add(
        FnNode::sync("noted", |note: String| note.lines().count() as u64).inputs(["note"]),
        (note,),
    );

    // A map over twelve words, one of which fails once; its calls are counted and logged.
    let list = g.input("words", words());
    let calls = Arc::new(AtomicUsize::new(0));
    let failed_once = Arc::new(AtomicBool::new(false));
    let counted = calls.clone();
    let tile = FnNode::with_context("tile", move |ctx: NodeContext, word: String| {
        let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = word == "flaky" && !failed_once.swap(true, Ordering::SeqCst);
        async move {
            ctx.log(format!("call {n}: {word}"));
            tokio::time::sleep(Duration::from_millis(150)).await;
            if fail {
                return Err(std::io::Error::other("503: the tile service is busy"));
            }
            let width = 8 + 4 * word.len() as u32;
            Ok(png(width, 8, &format!("{word}.png")))
        }
    })
    .inputs(["word"])
    .group("tiles");
    g.add_map(Map::new(tile).collect_errors(), (each(list),));

    // A choice of three variants, the last always down, with fallback.
    let title = g.input("title", "composite nodes".to_string());
    g.choose(
        Choice::new(
            "caption",
            "upper",
            FnNode::sync("upper", |t: String| t.to_uppercase()),
        )
        .or(
            "reverse",
            FnNode::sync("reverse", |t: String| t.chars().rev().collect::<String>()),
        )
        .or(
            "remote",
            FnNode::try_sync("remote", |_t: String| {
                Err::<String, _>("503: the Space is down".to_string())
            }),
        )
        .fallback(),
        (title,),
    );
    let pipeline = g.build().unwrap();

    // The graph's JSON: the group as one box, the widgets the inputs need.
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let graph: serde_json::Value = reqwest::get(format!("{}api/graph", ensure_slash(&url)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node = |name: &str| {
        graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    let group = &graph["groups"][0];
    assert_eq!(group["name"], "look");
    assert_eq!(
        group["members"],
        serde_json::json!(["style", "bold", "scale", "note"])
    );
    for member in ["style", "bold", "scale", "note"] {
        let n = node(member);
        assert_eq!((&n["x"], &n["y"]), (&group["x"], &group["y"]), "{member}");
        assert_eq!(n["group"], "look");
    }
    let widget = |name: &str| node(name)["inputs"][0].clone();
    assert_eq!(widget("style")["widget"], "choice");
    assert_eq!(
        widget("style")["hint"]["choices"],
        serde_json::json!(["Photo", "Sketch", "Watercolor"])
    );
    assert_eq!(widget("bold")["widget"], "bool");
    assert_eq!(widget("scale")["widget"], "range");
    assert_eq!(widget("scale")["hint"]["maximum"], 4.0);
    assert_eq!(widget("note")["widget"], "textarea");
    let variant = node("caption")["inputs"][1].clone();
    assert_eq!(variant["name"], "variant");
    assert_eq!(variant["widget"], "choice");
    assert_eq!(
        variant["hint"]["choices"],
        serde_json::json!(["upper", "reverse", "remote"])
    );
    assert_eq!(node("tile")["failures"], "collect");

    let script_url = url.clone();
    let findings = tokio::task::spawn_blocking(move || {
        browser_script("composite.mjs", &script_url, &playwright)
    })
    .await
    .unwrap();
    stop.cancel();
    println!("composite cards: {findings}");

    // Twelve calls on the first run, one on the rerun of the failed item.
    assert_eq!(calls.load(Ordering::SeqCst), 13);
    assert_eq!(findings["rerun_log"], serde_json::json!(["call 13: flaky"]));
    assert!(
        findings["live"]["finished"].as_u64().unwrap() < 12,
        "{findings}"
    );
    assert_eq!(
        findings["items_after_run"]["failed"],
        serde_json::json!([5])
    );
    assert_eq!(
        findings["items_after_rerun"]["computed"],
        serde_json::json!([5])
    );
    assert_eq!(
        findings["items_after_rerun"]["cached"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    assert_eq!(findings["item_image_width"], 16);
    assert_eq!(findings["stale_after_scale"], serde_json::json!(["scaled"]));
    assert_eq!(findings["stale_after_bold"], serde_json::json!(["styled"]));
    assert_eq!(findings["stale_after_note"], serde_json::json!(["noted"]));
    assert_eq!(
        findings["stale_after_variant"],
        serde_json::json!(["caption"])
    );
    assert_eq!(
        findings["captions"],
        serde_json::json!(["COMPOSITE NODES", "sedon etisopmoc", "COMPOSITE NODES"])
    );
    assert_eq!(findings["switched_back_status"], "cached");
    assert_eq!(findings["fallback"]["used"], "upper");
    assert_eq!(findings["fallback"]["failed"], "remote");
    assert_eq!(findings["outputs"]["styled"], "Sketch (bold)");
    assert_eq!(findings["outputs"]["scaled"], "400");
    // Hits under the map's and the choice's own keys (no parts) still show items and variant.
    assert_eq!(findings["whole_hits"]["items"], "12 items · 12 cached");
    assert_eq!(findings["whole_hits"]["note"], "result from upper");
}

fn ensure_slash(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    }
}
