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
    stop: tokio_util::sync::CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Inputs `text`, `count`, `photo`; outputs `loud` (the text shouted `count` times),
/// `inverted` (the photo's bytes inverted), `summary` (a struct) and `checked` (fails on
/// the text "boom"). `slow` sleeps `delay_ms` first.
async fn start(delay_ms: u64) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut g = Graph::new("workflow").cache(Cache::open(dir.path().join("cache")).unwrap());
    let text = g.input("text", "hello".to_string());
    let count = g.input("count", 2u32);
    let photo = g.input("photo", Image::new(vec![1u8, 2, 3], "image/png"));
    let c = calls.clone();
    let slow = g.add(
        FnNode::from_async("slow", move |t: String| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
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
            ..LaunchOptions::default()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_driven_by_the_openapi_document_calls_it_media_in_and_out() {
    let s = start(0).await;
    let python = client_python().clone();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/workflow_client.py");
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).arg(base).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        report["loud"],
        json!(["FROM PYTHON", "FROM PYTHON", "FROM PYTHON"])
    );
    assert_eq!(report["inverted_ok"], true);
    assert_eq!(report["second_computed"], json!([]));
}
