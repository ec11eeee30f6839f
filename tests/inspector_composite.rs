//! Map, choice and grouped-input cards in a real browser (Debian's chromium driven by
//! playwright-core; tests/browser/composite.mjs), on a pipeline built here:
//! - a map `tile` over twelve words, each item a small PNG, items two at a time (a group
//!   limit) and slow enough to be seen finishing one by one; the word `flaky` fails its
//!   first call; failed items are collected, so the map has a result. The card shows its
//!   items live and after the run, the error of the failed one, each item's image; the
//!   failed item's rerun runs the map again and only that item is computed, and a cached
//!   item's own rerun (`item-run-tile-2`) computes that item alone (the item function counts
//!   its calls and logs each: the page reads the log, the test the count);
//! - a choice `caption` with variants `upper`, `reverse` and `remote` (always down) and
//!   fallback: the dropdown switches the variant (the node goes stale, alone), a run changes
//!   the result, switching back is a cache hit, `remote` falls back to `upper` and says so;
//! - a group `look` of four inputs (an enum, a bool, a ranged number, a long text): one card
//!   with a dropdown, a checkbox, a slider and a text area, laid out as one box whose edges
//!   leave from each input's row; editing one input marks exactly its readers stale.
//!
//! Without a browser, the item route of the inspector's API (one item computed again, bad
//! node or item, another origin, a run in progress) on a map of its own.
//!
//! Screenshots land in `target/inspector-screenshots/`. The browser and playwright-core
//! come from `scripts/setup/browser.sh` (run here if missing).

#[path = "common/inspector.rs"]
mod inspector;
#[path = "common/test_env.rs"]
mod test_env;
use inspector::{findings_of, node_script, png, serve};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use test_env::browser_env;

use daggr::{each, Cache, Choice, Configure, FnNode, Graph, InputHint, Map, NodeContext};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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
        findings_of(&node_script("composite.mjs", &script_url, &playwright))
    })
    .await
    .unwrap();
    stop.cancel();
    println!("composite cards: {findings}");

    // Twelve calls on the first run, one on the rerun of the failed item, one on item 2's.
    assert_eq!(calls.load(Ordering::SeqCst), 14);
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
    assert_eq!(
        findings["items_after_item_run"]["computed"],
        serde_json::json!([2])
    );
    assert_eq!(findings["item_run_log"], serde_json::json!(["call 14: w2"]));
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

/// The inspector's item route on a map `stamp` over six words (each call answers with the
/// word and the call's number): `POST /api/sheets/{sheet}/nodes/{node}/items/{item}/run`
/// computes that item alone again (one call; the other items are cache hits; the sheet's
/// history has the run); a bad sheet, node or item is a 404 or 400 that names it; another
/// origin is refused; a run in progress makes it a 409. Nothing refused calls anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_item_of_a_map_runs_again_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("items api").cache(Cache::open(dir.path().join("cache")).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let list = g.input("words", (0..6).map(|i| format!("w{i}")).collect::<Vec<_>>());
    g.map(
        FnNode::sync("stamp", move |w: String| {
            format!("{w}#{}", counted.fetch_add(1, Ordering::SeqCst) + 1)
        }),
        (each(list),),
    );
    let text = g.input("text", "slow".to_string());
    g.add(
        FnNode::from_async("slow", |t: String| async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            t.len() as u64
        }),
        (text,),
    );
    let pipeline = g.build().unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let base = url
        .split('?')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let client = reqwest::Client::new();
    let post = |path: String, headers: Vec<(&'static str, &'static str)>| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let mut request = client.post(format!("{base}{path}"));
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let get = |path: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let idle = || async {
        for _ in 0..1000 {
            if get("/api/sheets/default/state".into()).await["running"] == false {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the run did not finish");
    };
    let stamp_state = || async {
        let state = get("/api/sheets/default/state".into()).await;
        state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "stamp")
            .unwrap()
            .clone()
    };
    let item_path =
        |node: &str, item: &str| format!("/api/sheets/default/nodes/{node}/items/{item}/run");

    let (status, reply) = client
        .post(format!("{base}/api/sheets/default/run"))
        .json(&json!({ "scope": "all" }))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 202, "{:?}", reply.text().await);
    idle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 6);

    // Item 3 again: one call, the other five are cache hits, the output has the new value.
    let (status, reply) = post(item_path("stamp", "3"), vec![]).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(
        (&reply["node"], &reply["item"]),
        (&json!("stamp"), &json!(3))
    );
    let run = reply["run"].as_u64().unwrap();
    idle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 7);
    let stamp = stamp_state().await;
    assert_eq!(stamp["status"], "done", "{stamp}");
    let outcomes: Vec<&str> = stamp["parts"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 6, "{stamp}");
    assert_eq!(outcomes[3], "computed", "{stamp}");
    assert!(
        outcomes
            .iter()
            .enumerate()
            .all(|(i, o)| i == 3 || *o == "memory"),
        "{stamp}"
    );
    assert_eq!(stamp["outputs"][0]["value"][3], "w3#7", "{stamp}");
    assert_eq!(stamp["outputs"][0]["value"][2], "w2#3", "{stamp}");
    // The sheet's history has the run (its writes end a moment after the run).
    let mut recorded = false;
    for _ in 0..200 {
        let history = get("/api/sheets/default/nodes/stamp/history".into()).await;
        if history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["run"] == run && e["selected"] == true)
        {
            recorded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(recorded, "the history has no entry of run {run}");

    // What is wrong is named, and nothing runs.
    let runs = pipeline.runs_started();
    let refused = [
        (item_path("stmp", "0"), 404, "stmp"),
        (
            item_path("slow", "0"),
            400,
            "node `slow` has no items to run: it is not a map",
        ),
        (
            item_path("stamp", "6"),
            404,
            "map `stamp` has 6 items (items 0 to 5): there is no item 6",
        ),
        (
            item_path("stamp", "three"),
            400,
            "`three` is not an item of map `stamp`",
        ),
        (
            item_path("stamp", "-1"),
            400,
            "`-1` is not an item of map `stamp`",
        ),
        (
            "/api/sheets/nope/nodes/stamp/items/0/run".to_string(),
            404,
            "nope",
        ),
    ];
    for (path, expected, says) in refused {
        let (status, reply) = post(path.clone(), vec![]).await;
        assert_eq!(status, expected, "{path}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{path}: {error}");
    }
    // Another origin (a page elsewhere posting to this server) is refused.
    for header in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let (status, reply) = post(item_path("stamp", "0"), vec![header]).await;
        assert_eq!(status, 403, "{header:?}: {reply}");
    }
    // A form post (no preflight needed cross-origin) is refused too.
    let (status, reply) = post(
        item_path("stamp", "0"),
        vec![("content-type", "application/x-www-form-urlencoded")],
    )
    .await;
    assert!(status == 403 || status == 415, "{status}: {reply}");
    assert_eq!(pipeline.runs_started(), runs);

    // While a run is in progress: 409 (`slow` runs: its input changed).
    let response = client
        .post(format!("{base}/api/sheets/default/inputs"))
        .json(&json!({ "node": "text", "port": "value", "value": "slower" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .post(format!("{base}/api/sheets/default/run"))
        .json(&json!({ "scope": "to", "node": "slow" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let (status, reply) = post(item_path("stamp", "0"), vec![]).await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("a run is in progress"),
        "{reply}"
    );
    idle().await;
    stop.cancel();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        7,
        "nothing refused called the item"
    );
}

fn ensure_slash(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    }
}
