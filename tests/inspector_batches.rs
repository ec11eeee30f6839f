//! Batches in the inspector: a pipeline `squares` (input `n`, node `square` that fails on
//! 13) is run over a batch through the library (`SheetStore::batch` + `Pipeline::run_batch`)
//! on the sheet database the inspector serves, then
//! - the API: `GET /api/batches` counts each batch's items by status, `GET /api/batches/{name}`
//!   pages through its items (outputs, the failed item's error, the status filter, paging),
//!   an unknown batch is a 404 naming it, a bad query a 400;
//! - the page, in a real browser (tests/browser/batches.mjs): the Batches panel lists the
//!   batches with their counts, opens one, shows the failed item's error, filters by
//!   status, and follows a batch that runs while it is open.
//!
//! Screenshots land in `target/inspector-screenshots/`. The browser and playwright-core
//! come from `scripts/setup/browser.sh` (run here if missing).

#[path = "common/inspector.rs"]
mod inspector;
#[path = "common/test_env.rs"]
mod test_env;

use std::path::Path;
use std::time::Duration;

use daggr::inspector::{Inspector, LaunchOptions};
use daggr::sheet::batch::BatchOptions;
use daggr::sheet::SheetStore;
use daggr::{Cache, FnNode, Graph, Pipeline};
use inspector::{findings_of, node_script_with, serve};
use serde_json::{json, Map, Value};
use test_env::browser_env;

/// `square = n * n`, failing on 13 (an item of the batch fails, the others do not).
fn squares(dir: &Path) -> Pipeline {
    let mut g = Graph::new("squares").cache(Cache::open(dir.join("cache")).unwrap());
    let n = g.input("n", 0u64);
    let square = g.add(
        FnNode::try_sync("square", |n: u64| {
            if n == 13 {
                Err(format!("{n} is unlucky"))
            } else {
                Ok(n * n)
            }
        }),
        (n,),
    );
    g.name_output("square", &square);
    g.build().unwrap()
}

fn input_sets(ns: &[u64]) -> Vec<Map<String, Value>> {
    ns.iter()
        .map(|n| json!({ "n": n }).as_object().unwrap().clone())
        .collect()
}

/// Runs batch `name` over `ns` on the sheet database in `dir`, as `cargo daggr run --batch`
/// would.
async fn run_batch(pipeline: &Pipeline, dir: &Path, name: &str, ns: &[u64]) {
    let store = SheetStore::open(dir.join("sheets.db")).unwrap();
    let batch = store.batch(pipeline, name, &input_sets(ns)).unwrap();
    pipeline
        .run_batch(&batch, BatchOptions::default().worker("test-worker"))
        .await
        .unwrap();
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_batches_and_pages_through_their_items() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = squares(dir.path());
    run_batch(&pipeline, dir.path(), "first", &[1, 2, 3, 13, 5, 6]).await;
    // A batch nobody ran yet: every item pending.
    let store = SheetStore::open(dir.path().join("sheets.db")).unwrap();
    store
        .batch(&pipeline, "later", &input_sets(&[7, 8]))
        .unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let api = format!("{}/api", url.trim_end_matches('/'));

    let (status, list) = get(&format!("{api}/batches")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["pipeline"], "squares");
    assert_eq!(
        list["batches"],
        json!([
            { "name": "first", "total": 6, "pending": 0, "claimed": 0, "done": 5, "failed": 1 },
            { "name": "later", "total": 2, "pending": 2, "claimed": 0, "done": 0, "failed": 0 },
        ])
    );

    // Every item of `first`, in order: outputs, the failed one's error, who ran them.
    let (status, first) = get(&format!("{api}/batches/first")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["counts"],
        json!({ "total": 6, "pending": 0, "claimed": 0, "done": 5, "failed": 1 })
    );
    assert_eq!(
        (first["matched"].as_u64(), first["limit"].as_u64()),
        (Some(6), Some(200))
    );
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(items[2]["item"], 2);
    assert_eq!(items[2]["status"], "done");
    assert_eq!(items[2]["inputs"], json!({ "n": 3 }));
    assert_eq!(items[2]["outputs"], json!({ "square": 9 }));
    assert_eq!(items[2]["worker"], "test-worker");
    assert_eq!(items[2]["attempts"], 1);
    assert!(
        items[2]["elapsed_ms"].as_f64().unwrap() >= 0.0,
        "{}",
        items[2]
    );
    assert!(items[2]["finished_ms"].as_i64().unwrap() >= items[2]["started_ms"].as_i64().unwrap());
    assert_eq!(items[3]["status"], "failed");
    assert_eq!(items[3]["outputs"], Value::Null);
    let error = items[3]["error"].as_str().unwrap();
    assert!(error.contains("13 is unlucky"), "{error}");

    // The status filter, then paging through what it kept.
    let (_, failed) = get(&format!("{api}/batches/first?status=failed")).await;
    assert_eq!(failed["matched"], 1);
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    assert_eq!(failed["items"][0]["item"], 3);
    assert_eq!(failed["counts"]["done"], 5, "the counts are the batch's");
    let (_, page) = get(&format!("{api}/batches/first?status=done&offset=2&limit=2")).await;
    assert_eq!(page["matched"], 5);
    let numbers: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["item"])
        .collect();
    assert_eq!(
        numbers,
        [&json!(2), &json!(4)],
        "done items 0, 1, 2, 4, 5 from the third"
    );
    let (_, past) = get(&format!("{api}/batches/first?offset=10")).await;
    assert_eq!(past["items"], json!([]));
    let (_, later) = get(&format!("{api}/batches/later?status=pending")).await;
    assert_eq!(later["matched"], 2);
    assert_eq!(later["items"][0]["worker"], Value::Null);

    // What is refused, and why.
    let (status, unknown) = get(&format!("{api}/batches/frist")).await;
    assert_eq!(status, 404, "{unknown}");
    let message = unknown["error"].as_str().unwrap();
    assert!(message.contains("unknown batch `frist`"), "{message}");
    assert!(message.contains("first"), "a suggestion: {message}");
    let (status, bad) = get(&format!("{api}/batches/first?status=lost")).await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("`lost`"), "{bad}");
    let (status, bad) = get(&format!("{api}/batches/first?limit=0")).await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = get(&format!("{api}/batches/first?limit=5000")).await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = get(&format!("{api}/batches/first?offset=-1")).await;
    assert_eq!(status, 400, "{bad}");
    stop.cancel();
}

/// A pipeline without batches lists none (the batch tables need not exist yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_without_batches_lists_none() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = squares(dir.path());
    let (url, stop) = serve(&pipeline, dir.path()).await;
    let (status, list) = get(&format!("{}/api/batches", url.trim_end_matches('/'))).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["batches"], json!([]));
    stop.cancel();
}

/// Like every route, the batch routes need the token when the server has one (they are
/// reads: another origin's GET passes the cross-site check, not the token), and an
/// API-only server does not serve them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_routes_are_guarded_like_the_other_reads() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = squares(dir.path());
    run_batch(&pipeline, dir.path(), "first", &[1, 13]).await;
    let serve_with = |api_only: bool| {
        Inspector::bind(
            &pipeline,
            LaunchOptions {
                port: Some(0),
                open_browser: false,
                sheets_db: Some(dir.path().join("sheets.db")),
                token: Some("s3cret".into()),
                api_only,
                ..LaunchOptions::default()
            },
        )
    };
    let inspector = serve_with(false).await.unwrap();
    let base = format!("http://{}", inspector.local_addr());
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(inspector.serve(async move { s.cancelled().await }));
    let client = reqwest::Client::new();
    for route in ["/api/batches", "/api/batches/first"] {
        let bare = client.get(format!("{base}{route}")).send().await.unwrap();
        assert_eq!(bare.status(), 401, "{route} without the token");
        let with = client
            .get(format!("{base}{route}"))
            .header("x-daggr-token", "s3cret")
            .header("origin", "http://elsewhere.example")
            .send()
            .await
            .unwrap();
        assert_eq!(with.status(), 200, "{route} with the token");
        let query = client
            .get(format!("{base}{route}?token=s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(query.status(), 200, "{route} with ?token=");
    }
    stop.cancel();

    let inspector = serve_with(true).await.unwrap();
    let base = format!("http://{}", inspector.local_addr());
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(inspector.serve(async move { s.cancelled().await }));
    let answer = client
        .get(format!("{base}/api/batches"))
        .header("x-daggr-token", "s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404, "an API-only server serves no batches");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batches_panel_shows_counts_items_and_errors_in_a_real_browser() {
    let playwright = browser_env();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = squares(dir.path());
    run_batch(&pipeline, dir.path(), "first", &[1, 2, 3, 13, 5, 6]).await;
    let store = SheetStore::open(dir.path().join("sheets.db")).unwrap();
    store
        .batch(&pipeline, "later", &input_sets(&[7, 8, 9]))
        .unwrap();
    let (url, stop) = serve(&pipeline, dir.path()).await;

    // The script writes `go` once it shows `later` all pending; the batch then runs, and the
    // open panel must follow it to done by itself.
    let go = dir.path().join("go");
    let runner = {
        let (pipeline, dir, go) = (pipeline.clone(), dir.path().to_path_buf(), go.clone());
        tokio::spawn(async move {
            for _ in 0..600 {
                if go.exists() {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    run_batch(&pipeline, &dir, "later", &[7, 8, 9]).await;
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        })
    };
    let go_arg = go.to_string_lossy().to_string();
    let output = tokio::task::spawn_blocking(move || {
        node_script_with("batches.mjs", &url, &playwright, &[&go_arg])
    })
    .await
    .unwrap();
    stop.cancel();
    let findings = findings_of(&output);
    println!("batches panel: {findings}");
    assert!(runner.await.unwrap(), "the script never asked for the run");

    assert_eq!(findings["names"], json!(["first", "later"]));
    assert_eq!(findings["first_counts"], "5 done · 1 failed · 6 items");
    assert_eq!(findings["rows"], 6);
    assert!(
        findings["error"]
            .as_str()
            .unwrap()
            .contains("13 is unlucky"),
        "{findings}"
    );
    assert_eq!(findings["done_output"], "square: 9");
    assert_eq!(findings["failed_rows"], json!(["3"]));
    assert_eq!(findings["later_before"], "3 pending · 3 items");
    assert_eq!(findings["later_after"], "3 done · 3 items");
    assert_eq!(
        findings["later_outputs"],
        json!(["square: 49", "square: 64", "square: 81"])
    );
}
