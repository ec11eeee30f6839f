//! The workflow API (`POST /api/call`, `GET /api/openapi.json`) over real HTTP on loopback,
//! and from a client nobody here wrote: Python's `requests`, with the OpenAPI document
//! checked by `openapi-spec-validator` and every request and answer by `jsonschema` against
//! the document's own schemas (scripts/setup/api_client.sh installs them).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use daggr::inspector::{Inspector, LaunchOptions};
use daggr::{Cache, FnNode, Graph, Image, Pipeline};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Summary {
    bytes: u64,
    mime: String,
    first: Option<u8>,
}

struct Server {
    base: String,
    calls: Arc<AtomicUsize>,
    /// How many `slow` node runs were cancelled (dropped before they finished).
    cancelled: Arc<AtomicUsize>,
    stop: tokio_util::sync::CancellationToken,
    _dir: tempfile::TempDir,
}

/// Counts a node run that is dropped before it finishes (the executor cancelled it).
struct CancelCheck(Arc<AtomicUsize>, bool);

impl Drop for CancelCheck {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The text that makes `slow` hang for a minute (to be cancelled).
const HANG: &str = "hang";

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Inputs `text`, `count`, `photo`; outputs `loud` (the text shouted `count` times),
/// `inverted` (the photo's bytes inverted), `summary` (a struct) and `checked` (fails on
/// the text "boom"). `slow` sleeps `delay_ms` first (a minute on the text [`HANG`]).
async fn start(delay_ms: u64) -> Server {
    start_with(delay_ms, LaunchOptions::default()).await
}

/// [`start`] with launch options (port, browser and sheets database are the test's).
async fn start_with(delay_ms: u64, options: LaunchOptions) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let cancels = cancelled.clone();
    let mut g = Graph::new("workflow").cache(Cache::open(dir.path().join("cache")).unwrap());
    let text = g.input("text", "hello".to_string());
    let count = g.input("count", 2u32);
    let photo = g.input("photo", Image::new(vec![1u8, 2, 3], "image/png"));
    let c = calls.clone();
    let slow = g.add(
        FnNode::from_async("slow", move |t: String| {
            let c = c.clone();
            let check = CancelCheck(cancels.clone(), false);
            async move {
                // The whole guard moves in (a closure would capture the field alone).
                let mut check = check;
                c.fetch_add(1, Ordering::SeqCst);
                let delay = if t == HANG { 60_000 } else { delay_ms };
                tokio::time::sleep(Duration::from_millis(delay)).await;
                check.1 = true;
                t
            }
        }),
        (text,),
    );
    let c = calls.clone();
    let loud = g.add(
        FnNode::sync("loud", move |t: String, n: u32| {
            c.fetch_add(1, Ordering::SeqCst);
            vec![t.to_uppercase(); n as usize]
        }),
        (slow, count),
    );
    let c = calls.clone();
    let inverted = g.add(
        FnNode::sync("invert", move |i: Image| {
            c.fetch_add(1, Ordering::SeqCst);
            Image::new(
                i.bytes().iter().map(|b| 255 - b).collect::<Vec<u8>>(),
                i.mime(),
            )
        }),
        (photo,),
    );
    let c = calls.clone();
    let summary = g.add(
        FnNode::sync("summarize", move |i: Image| {
            c.fetch_add(1, Ordering::SeqCst);
            Summary {
                bytes: i.bytes().len() as u64,
                mime: i.mime().to_string(),
                first: i.bytes().first().copied(),
            }
        }),
        (photo,),
    );
    let checked = g.add(
        FnNode::try_sync("check", |t: String| {
            if t == "boom" {
                Err("the text is `boom`".to_string())
            } else {
                Ok(t.len() as u64)
            }
        }),
        (text,),
    );
    g.name_output("loud", &loud);
    g.name_output("inverted", &inverted);
    g.name_output("summary", &summary);
    g.name_output("checked", &checked);
    let pipeline: Pipeline = g.build().unwrap();
    let inspector = Inspector::bind(
        &pipeline,
        LaunchOptions {
            port: Some(0),
            open_browser: false,
            sheets_db: Some(dir.path().join("sheets.db")),
            ..options
        },
    )
    .await
    .unwrap();
    let port = inspector.local_addr().port();
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(inspector.serve(async move { s.cancelled().await }));
    Server {
        base: format!("http://127.0.0.1:{port}"),
        calls,
        cancelled,
        stop,
        _dir: dir,
    }
}

impl Server {
    async fn call(&self, inputs: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/call", self.base))
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_returns_typed_outputs_and_a_repeat_runs_nothing() {
    let s = start(0).await;
    let (status, reply) = s.call(json!({ "text": "hi", "count": 3 })).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["outputs"]["loud"], json!(["HI", "HI", "HI"]));
    assert_eq!(reply["outputs"]["checked"], json!(2));
    assert_eq!(
        reply["outputs"]["summary"],
        json!({ "bytes": 3, "mime": "image/png", "first": 1 })
    );
    let inverted = &reply["outputs"]["inverted"];
    assert_eq!(inverted["kind"], "image");
    let url = inverted["url"].as_str().unwrap();
    let bytes = reqwest::get(format!("{}{url}", s.base))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], &[254, 253, 252]);
    let ran = s.calls.load(Ordering::SeqCst);
    assert_eq!(ran, 4, "slow, loud, invert, summarize");

    // The same inputs again: every node from the cache.
    let (status, again) = s.call(json!({ "count": 3, "text": "hi" })).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["outputs"], reply["outputs"]);
    assert_eq!(again["computed"], json!([]), "{again}");
    assert_eq!(s.calls.load(Ordering::SeqCst), ran, "no node call");
    // One input changed: only its readers run.
    let (status, third) = s.call(json!({ "text": "hi", "count": 1 })).await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["computed"], json!(["loud"]), "{third}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_400_naming_the_input_and_a_failed_node_names_itself() {
    let s = start(0).await;
    let (status, reply) = s.call(json!({ "txt": "hi" })).await;
    assert_eq!(status, 400, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.contains("unknown input `txt`; did you mean `text`?"),
        "{error}"
    );
    let (status, reply) = s.call(json!({ "count": "three" })).await;
    assert_eq!(status, 400, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.contains("input `count` takes a `u32`"), "{error}");
    let (status, reply) = s.call(json!({ "count": -1 })).await;
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = s.call(json!({ "photo": "not an image" })).await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("input `photo`"),
        "{reply}"
    );
    // Unknown fields beside `inputs` are refused too.
    let r = reqwest::Client::new()
        .post(format!("{}/api/call", s.base))
        .json(&json!({ "inputs": {}, "input": { "text": "x" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(s.calls.load(Ordering::SeqCst), 0, "nothing ran");

    let (status, reply) = s.call(json!({ "text": "boom" })).await;
    assert_eq!(status, 500, "{reply}");
    assert_eq!(reply["error"], "node `check` failed");
    assert_eq!(reply["failed"][0]["node"], "check");
    assert!(
        reply["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("the text is `boom`"),
        "{reply}"
    );
    assert_eq!(reply["missing_outputs"], json!(["checked"]));
    assert_eq!(
        reply["outputs"]["loud"],
        json!(["BOOM", "BOOM"]),
        "the rest is there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_queue_gets_429_with_retry_after() {
    let s = Arc::new(start(400).await);
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..80 {
        let (client, base) = (client.clone(), s.base.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/api/call"))
                .json(&json!({ "inputs": { "text": format!("call {i}") } }))
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (429, Some(retry)) => {
                assert_eq!(retry, "1");
                refused += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(refused >= 1, "{ok} answered, none refused");
    assert!(ok >= 68, "4 running and 64 waiting are answered: {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_another_origin_is_refused_and_runs_nothing() {
    let s = start(0).await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/call", s.base))
        .header("origin", "http://evil.example")
        .json(&json!({ "inputs": { "text": "x" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = reqwest::Client::new()
        .post(format!("{}/api/call", s.base))
        .header("content-type", "text/plain")
        .body(r#"{"inputs":{"text":"x"}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(s.calls.load(Ordering::SeqCst), 0);
}

fn client_python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join("../scripts/setup/api_client.sh"))
            .output()
            .expect("running scripts/setup/api_client.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::env::var_os("DAGGR_TEST_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/daggr-test-env")
            });
        env.join("api-client-venv/bin/python")
    })
}

/// Runs tests/fixtures/workflow_client.py against `s` (with `key`, if given); its report.
async fn python_client(s: &Server, key: Option<&str>) -> Value {
    let python = client_python().clone();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/workflow_client.py");
    let mut args = vec![s.base.clone()];
    args.extend(key.map(str::to_string));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_driven_by_the_openapi_document_calls_it_media_in_and_out() {
    // The client's file server is on loopback: these servers allow private URLs.
    let open = start_with(
        0,
        LaunchOptions {
            fetch_private_urls: true,
            ..LaunchOptions::default()
        },
    )
    .await;
    let keyed = start_with(
        0,
        LaunchOptions {
            api_keys: vec!["python-key".into()],
            fetch_private_urls: true,
            ..LaunchOptions::default()
        },
    )
    .await;
    for (s, key) in [(&open, None), (&keyed, Some("python-key"))] {
        let report = python_client(s, key).await;
        assert_eq!(
            report["loud"],
            json!(["FROM PYTHON", "FROM PYTHON", "FROM PYTHON"])
        );
        assert_eq!(report["inverted_ok"], true, "{report}");
        assert_eq!(report["second_computed"], json!([]));
        assert_eq!(report["data_url_ok"], true, "{report}");
        assert_eq!(report["http_url_ok"], true, "{report}");
        assert_eq!(report["output_url_ok"], true, "{report}");
        assert_eq!(report["key_required"], key.is_some());
        assert_eq!(report["streamed_loud"], json!(["STREAMED"]));
        let started = report["streamed_started"].as_array().unwrap();
        for node in ["slow", "loud", "check"] {
            assert!(started.contains(&json!(node)), "{report}");
        }
    }
}

/// One server-sent event: its name and JSON data.
type SseEvent = (String, Value);

/// Reads server-sent events off a streamed answer.
struct Events {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buffer: String,
}

impl Events {
    fn of(response: reqwest::Response) -> Events {
        use futures::StreamExt;
        Events {
            body: Box::pin(response.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` at the end of the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_string();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let chunk = self.body.next().await?.unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    async fn all(mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}

impl Server {
    /// `POST /api/call` asking for the streaming form.
    async fn stream(&self, inputs: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/api/call", self.base))
            .header("accept", "text/event-stream")
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_call_sends_its_node_events_then_the_result() {
    let s = start(0).await;
    let r = s.stream(json!({ "text": "streamed", "count": 2 })).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = Events::of(r).all().await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"run_started"), "{names:?}");
    let (last, result) = events.last().unwrap();
    assert_eq!(last, "result", "{names:?}");
    assert_eq!(result["outputs"]["loud"], json!(["STREAMED", "STREAMED"]));
    assert!(result["outputs"]["inverted"]["url"].is_string(), "{result}");
    let nodes_that = |what: &str| -> Vec<String> {
        events
            .iter()
            .filter(|(n, _)| n == what)
            .map(|(_, d)| d["node"].as_str().unwrap().to_string())
            .collect()
    };
    for node in ["slow", "loud", "check"] {
        assert!(
            nodes_that("node_started").contains(&node.to_string()),
            "{names:?}"
        );
        assert!(
            nodes_that("node_finished").contains(&node.to_string()),
            "{names:?}"
        );
    }
    let finished = names.iter().position(|n| *n == "run_finished").unwrap();
    assert_eq!(finished, names.len() - 2, "run_finished, then the result");
    // The same call again: every node from the cache, said so per node.
    let again = Events::of(s.stream(json!({ "text": "streamed", "count": 2 })).await)
        .all()
        .await;
    let cached: Vec<&str> = again
        .iter()
        .filter(|(n, _)| n == "node_cached")
        .map(|(_, d)| d["node"].as_str().unwrap())
        .collect();
    for node in ["slow", "loud", "invert", "summarize", "check"] {
        assert!(cached.contains(&node), "{cached:?}");
    }
    assert_eq!(again.last().unwrap().1["computed"], json!([]));

    // A failed node: its event names it, and the stream ends with the JSON form's 500 body.
    let failed = Events::of(s.stream(json!({ "text": "boom" })).await)
        .all()
        .await;
    let node_failed = failed.iter().find(|(n, _)| n == "node_failed").unwrap();
    assert_eq!(node_failed.1["node"], "check");
    let (last, body) = failed.last().unwrap();
    assert_eq!(last, "error");
    assert_eq!(body["error"], "node `check` failed");
    assert_eq!(body["failed"][0]["node"], "check");
    assert_eq!(body["missing_outputs"], json!(["checked"]));

    // Refused before the run: the status and JSON body of the plain form, no stream.
    let r = s.stream(json!({ "txt": "x" })).await;
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("unknown input `txt`"));
}

/// Waits (at most 10 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_streamed_call_cancels_its_run_and_frees_its_slot() {
    let s = start(0).await;
    // Four hanging calls take every running slot.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut events = Events::of(s.stream(json!({ "text": HANG })).await);
        loop {
            let (name, data) = events.next().await.expect("the stream goes on");
            if name == "node_started" && data["node"] == "slow" {
                break;
            }
        }
        streams.push(events);
    }
    assert_eq!(s.cancelled.load(Ordering::SeqCst), 0);
    drop(streams); // the client goes away
    eventually("the four hanging nodes are cancelled", || {
        s.cancelled.load(Ordering::SeqCst) == 4
    })
    .await;
    // Their slots are free: a call answers at once instead of waiting a minute in line.
    let answered = tokio::time::timeout(Duration::from_secs(10), s.call(json!({ "text": "next" })))
        .await
        .expect("a following call is not blocked by the cancelled ones");
    assert_eq!(answered.0, 200, "{}", answered.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_plain_call_cancels_its_run_too() {
    let s = start(0).await;
    // The nodes the hanging call does not change run (and are cached) first: then `slow`
    // is the only node that call starts.
    assert_eq!(s.call(json!({})).await.0, 200);
    let ran = s.calls.load(Ordering::SeqCst);
    let base = s.base.clone();
    let call = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{base}/api/call"))
            .json(&json!({ "inputs": { "text": HANG } }))
            .send()
            .await
    });
    eventually("the hanging node starts", || {
        s.calls.load(Ordering::SeqCst) == ran + 1
    })
    .await;
    call.abort(); // drops the request and its connection
    eventually("the hanging node is cancelled", || {
        s.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
}

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_a_named_sheet_is_in_its_history() {
    let s = start(0).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/sheets", s.base))
        .json(&json!({ "name": "experiments" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let call_on = |sheet: &str, inputs: Value| {
        client
            .post(format!("{}/api/call?sheet={sheet}", s.base))
            .json(&json!({ "inputs": inputs }))
            .send()
    };
    let r = call_on("experiments", json!({ "text": "on a sheet", "count": 1 }))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["outputs"]["loud"], json!(["ON A SHEET"]));

    // The run is in the sheet's history, its inputs are the sheet's now.
    let history = get_json(format!(
        "{}/api/sheets/experiments/nodes/loud/history",
        s.base
    ))
    .await;
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{history}");
    assert_eq!(entries[0]["outputs"][0], json!(["ON A SHEET"]));
    let state = get_json(format!("{}/api/sheets/experiments/state", s.base)).await;
    let text = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "text")
        .unwrap();
    assert_eq!(text["inputs"][0]["value"], "on a sheet", "{text}");
    assert_eq!(state["running"], false, "the slot is released");
    // The other sheet saw nothing.
    let other = get_json(format!("{}/api/sheets/default/nodes/loud/history", s.base)).await;
    assert_eq!(other["entries"], json!([]), "{other}");

    // A second call on the sheet: its history grows, the page's Run is free again.
    let r = call_on("experiments", json!({ "count": 2 })).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let history = get_json(format!(
        "{}/api/sheets/experiments/nodes/loud/history",
        s.base
    ))
    .await;
    assert_eq!(history["entries"].as_array().unwrap().len(), 2, "{history}");
    let r = client
        .post(format!("{}/api/sheets/experiments/run", s.base))
        .json(&json!({ "scope": "all" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);

    // An unknown sheet: 404 naming it and the closest one; nothing ran.
    let ran = s.calls.load(Ordering::SeqCst);
    let r = call_on("experimnts", json!({ "text": "nowhere" }))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = r.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("`experimnts`") && error.contains("did you mean `experiments`"),
        "{error}"
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), ran);
}

/// A small HTTP server for media by URL: `/pic.png` (the bytes 1..=4, `image/png`),
/// `/unlabelled` (a real PNG with no type), anything else 404.
async fn file_server() -> String {
    use axum::routing::get;
    let mut png = Vec::new();
    image::RgbImage::new(2, 2)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/pic.png",
            get(|| async { ([("content-type", "image/png")], vec![1u8, 2, 3, 4]) }),
        )
        .route("/unlabelled", get(move || async move { png.clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_urls_of_private_addresses_are_refused_unless_the_server_allows_them() {
    use axum::routing::get;
    // A server only this machine reaches, as a cloud metadata service or an internal app
    // would be: a caller must not read it through the workflow API.
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/pic.png",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { ([("content-type", "image/png")], vec![1u8, 2, 3, 4]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = start(0).await;
    let ran = s.calls.load(Ordering::SeqCst);
    for url in [
        format!("http://127.0.0.1:{port}/pic.png"),
        format!("http://localhost:{port}/pic.png"),
        format!("http://[::ffff:127.0.0.1]:{port}/pic.png"),
        format!("http://0.0.0.0:{port}/pic.png"),
        format!("http://2130706433:{port}/pic.png"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/pic.png".to_string(),
    ] {
        let (status, reply) = s.call(json!({ "photo": { "url": url } })).await;
        assert_eq!(status, 400, "{url}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(
            error.starts_with("input `photo`") && error.contains("not a public address"),
            "{url}: {error}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no request reached the server"
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), ran, "nothing ran");

    // A server that allows private addresses fetches it.
    let open = start_with(
        0,
        LaunchOptions {
            fetch_private_urls: true,
            ..LaunchOptions::default()
        },
    )
    .await;
    let (status, reply) = open
        .call(json!({ "photo": { "url": format!("http://127.0.0.1:{port}/pic.png") } }))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_inputs_by_data_url_blob_url_and_http_url() {
    use base64::Engine as _;
    // The file server is on loopback: allowed here (see the next test for the default).
    let s = start_with(
        0,
        LaunchOptions {
            fetch_private_urls: true,
            ..LaunchOptions::default()
        },
    )
    .await;
    // An upload inside the call: a base64 data URL.
    let data = base64::engine::general_purpose::STANDARD.encode([10u8, 20, 30]);
    let (status, reply) = s
        .call(json!({ "photo": { "url": format!("data:image/png;base64,{data}"), "name": "in.png" } }))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["outputs"]["summary"],
        json!({ "bytes": 3, "mime": "image/png", "first": 10 })
    );
    // An output of this server fed back by its url (relative, then absolute).
    let url = reply["outputs"]["inverted"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    for given in [url.clone(), format!("{}{url}", s.base)] {
        let (status, back) = s.call(json!({ "photo": { "url": given } })).await;
        assert_eq!(status, 200, "{back}");
        assert_eq!(
            back["outputs"]["summary"],
            json!({ "bytes": 3, "mime": "image/png", "first": 245 })
        );
    }
    // Fetched over http: the type from the server, or from the bytes when it gives none.
    let files = file_server().await;
    let (status, fetched) = s
        .call(json!({ "photo": { "url": format!("{files}/pic.png") } }))
        .await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(
        fetched["outputs"]["summary"],
        json!({ "bytes": 4, "mime": "image/png", "first": 1 })
    );
    assert_eq!(fetched["outputs"]["inverted"]["mime"], "image/png");
    let (status, sniffed) = s
        .call(json!({ "photo": { "url": format!("{files}/unlabelled") } }))
        .await;
    assert_eq!(status, 200, "{sniffed}");
    assert_eq!(sniffed["outputs"]["summary"]["mime"], "image/png");

    // What cannot be read is a 400 naming the input, and nothing runs.
    let ran = s.calls.load(Ordering::SeqCst);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for (url, expected) in [
        (format!("{files}/missing.png"), "404 Not Found".to_string()),
        (
            format!("http://127.0.0.1:{closed}/x.png"),
            "fetching".to_string(),
        ),
        (
            "data:image/png;base64,@@@".to_string(),
            "base64".to_string(),
        ),
        (
            "/api/blobs/sha256-nothing".to_string(),
            "integrity".to_string(),
        ),
        (
            "ftp://example.com/x.png".to_string(),
            "not a URL this server reads".to_string(),
        ),
    ] {
        let (status, reply) = s.call(json!({ "photo": { "url": url } })).await;
        assert_eq!(status, 400, "{url}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(
            error.starts_with("input `photo`") && error.contains(&expected),
            "{url}: {error}"
        );
    }
    let (status, reply) = s
        .call(json!({ "photo": { "url": "data:,x", "colour": "red" } }))
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("colour"),
        "{reply}"
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), ran, "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_required_when_configured() {
    let s = start_with(
        0,
        LaunchOptions {
            api_keys: vec!["key-one".into(), "key-two".into()],
            ..LaunchOptions::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let call = |key: Option<&str>| {
        let mut r = client
            .post(format!("{}/api/call", s.base))
            .json(&json!({ "inputs": { "text": "keyed" } }));
        if let Some(key) = key {
            r = r.bearer_auth(key);
        }
        r.send()
    };
    for key in [None, Some("key-three"), Some("")] {
        let r = call(key).await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{key:?}");
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    }
    assert_eq!(s.calls.load(Ordering::SeqCst), 0, "nothing ran");
    for key in ["key-one", "key-two"] {
        let r = call(Some(key)).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{key}");
    }
    // The document says so.
    let doc = get_json(format!("{}/api/openapi.json", s.base)).await;
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    assert_eq!(
        doc["paths"]["/api/call"]["post"]["security"],
        json!([{ "bearerAuth": [] }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_token_is_a_key_and_keys_open_the_blob_routes_only() {
    let s = start_with(
        0,
        LaunchOptions {
            token: Some("the-token".into()),
            api_keys: vec!["a-key".into()],
            ..LaunchOptions::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let post = |path: &str| client.post(format!("{}{path}", s.base));
    // The call: a key or the token, as a bearer or the inspector's way.
    let body = json!({ "inputs": { "text": "token" } });
    let r = post("/api/call").json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    for r in [
        post("/api/call").bearer_auth("a-key"),
        post("/api/call").bearer_auth("the-token"),
        post("/api/call").header("x-daggr-token", "the-token"),
    ] {
        let r = r.json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // A key opens the blob routes and the document, which the token guards here…
    let r = post("/api/blobs")
        .bearer_auth("a-key")
        .header("content-type", "image/png")
        .body(vec![1u8, 2])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = post("/api/blobs")
        .header("content-type", "image/png")
        .body(vec![1u8, 2])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(format!("{}/api/openapi.json", s.base))
        .bearer_auth("a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // …but not the inspector's own routes.
    let r = client
        .get(format!("{}/api/sheets", s.base))
        .bearer_auth("a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
