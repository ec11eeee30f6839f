//! The inspector's HTTP API, over real HTTP on loopback: every endpoint, the security rules,
//! SSE with resume, and a bounded fuzz of malformed requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daggr::inspector::{Inspector, LaunchOptions};
use daggr::{constant, Cache, Configure, FnNode, Graph, Image};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);
impl Calls {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct Server {
    base: String,
    port: u16,
    client: reqwest::Client,
    calls: Vec<Calls>,
    stop: tokio_util::sync::CancellationToken,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `text -> upper -> count`, plus `render` (an image) fed by `size`.
async fn start(token: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let calls: Vec<Calls> = (0..3).map(|_| Calls::default()).collect();
    let mut g = Graph::new("api").cache(Cache::open(dir.path().join("cache")).unwrap());
    let text = g.input("text", "hello inspector".to_string());
    let c0 = calls[0].clone();
    let upper = g.add(
        FnNode::sync("upper", move |t: String| {
            c0.hit();
            t.to_uppercase()
        })
        .inputs(["text"]),
        (text,),
    );
    let c1 = calls[1].clone();
    g.add(
        FnNode::sync("count", move |t: String, min: u64| {
            c1.hit();
            t.split_whitespace()
                .filter(|w| w.len() as u64 >= min)
                .count() as u64
        })
        .inputs(["text", "min"]),
        (upper, constant(3u64)),
    );
    let c2 = calls[2].clone();
    g.add(
        FnNode::sync("render", move |size: u32| {
            c2.hit();
            Image::new(vec![200u8; (size * size) as usize], "image/x-raw")
        })
        .inputs(["size"]),
        (constant(8u32),),
    );
    let pipeline = g.build().unwrap();
    let mut server = serve(&pipeline, &dir.path().join("sheets.db"), token).await;
    server.calls = calls;
    server._dir = Some(dir);
    server
}

/// Serves `pipeline` with its sheets in `db`, until the server is dropped.
async fn serve(pipeline: &daggr::Pipeline, db: &std::path::Path, token: Option<&str>) -> Server {
    let inspector = Inspector::bind(
        pipeline,
        LaunchOptions {
            port: Some(0),
            open_browser: false,
            sheets_db: Some(db.to_path_buf()),
            token: token.map(str::to_string),
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
        port,
        client: reqwest::Client::new(),
        calls: Vec::new(),
        stop,
        _dir: None,
    }
}

impl Server {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn state(&self, sheet: &str) -> Value {
        let (status, state) = self.get(&format!("/api/sheets/{sheet}/state")).await;
        assert_eq!(status, 200, "{state}");
        state
    }

    /// Starts a run and waits until it is over.
    async fn run(&self, sheet: &str, body: Value) {
        let (status, reply) = self.post(&format!("/api/sheets/{sheet}/run"), body).await;
        assert_eq!(status, 202, "{reply}");
        for _ in 0..500 {
            if !self.state(sheet).await["running"].as_bool().unwrap() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the run did not finish");
    }

    async fn raw(&self, request: String) -> (u16, String) {
        self.raw_bytes(request.into_bytes()).await
    }

    /// Sends `request` as it is while reading the answer (a server may answer before the
    /// whole body is sent); stops at the end of the headers of an event stream.
    async fn raw_bytes(&self, request: Vec<u8>) -> (u16, String) {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let (mut read, mut write) = stream.into_split();
        let writer = tokio::spawn(async move {
            let _ = write.write_all(&request).await;
            write
        });
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            let mut chunk = [0u8; 8192];
            loop {
                match read.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                let text = String::from_utf8_lossy(&buf);
                if text.contains("\r\n\r\n") && text.contains("text/event-stream") {
                    break;
                }
            }
        })
        .await;
        writer.abort();
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }
}

fn node<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_has_nodes_typed_ports_edges_and_a_layout() {
    let s = start(None).await;
    let (status, graph) = s.get("/api/graph").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["text", "upper", "count", "render"]);
    let count = &graph["nodes"][2];
    assert_eq!(
        count["inputs"][1],
        json!({ "name": "min", "type": "u64", "source": "const", "widget": "integer" })
    );
    assert_eq!(count["inputs"][0]["source"], "edge");
    assert!(count["x"].as_f64().unwrap() > graph["nodes"][1]["x"].as_f64().unwrap());
    assert_eq!(graph["edges"].as_array().unwrap().len(), 2);
    assert_eq!(graph["edges"][1]["type"], "String");
    let mermaid = s
        .client
        .get(format!("{}/api/export/mermaid", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(mermaid.starts_with("flowchart LR"));
    let dot = s
        .client
        .get(format!("{}/api/export/dot", s.base))
        .send()
        .await
        .unwrap();
    assert!(dot.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/vnd.graphviz"));
    assert_eq!(s.get("/api/export/png").await.0, 400);
    let page = s.client.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    for asset in [
        "/assets/inspector.js",
        "/assets/inspector.css",
        "/favicon.svg",
    ] {
        assert_eq!(
            s.client
                .get(format!("{}{asset}", s.base))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{asset}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_edit_rerun_one_node_history_and_select() {
    let s = start(None).await;
    let state = s.state("default").await;
    assert_eq!(node(&state, "upper")["status"], "pending");
    s.run("default", json!({ "scope": "all" })).await;
    let state = s.state("default").await;
    assert_eq!(node(&state, "count")["status"], "done");
    assert_eq!(node(&state, "count")["outputs"][0]["value"], 2);
    let render = node(&state, "render");
    let media = &render["outputs"][0]["media"][0];
    assert_eq!(media["kind"], "image");
    assert!(!state["timeline"].as_array().unwrap().is_empty());

    // Edit the constant of `count` and run that node only: upstream is not recomputed.
    let (status, _) = s
        .post(
            "/api/sheets/default/inputs",
            json!({ "node": "count", "port": "min", "value": 6 }),
        )
        .await;
    assert_eq!(status, 200);
    let state = s.state("default").await;
    assert_eq!(node(&state, "count")["status"], "stale");
    assert_eq!(
        node(&state, "count")["inputs"][0],
        json!({ "port": "min", "value": 6, "overridden": true })
    );
    s.run("default", json!({ "scope": "only", "node": "count" }))
        .await;
    assert_eq!(
        s.calls.iter().map(Calls::get).collect::<Vec<_>>(),
        [1, 2, 1]
    );
    let state = s.state("default").await;
    assert_eq!(
        node(&state, "count")["outputs"][0]["value"],
        1,
        "only INSPECTOR has ≥ 6 letters"
    );
    assert_eq!(node(&state, "count")["history"]["count"], 2);

    // Editing the pipeline input makes the downstream cone stale, nothing else.
    let (status, _) = s
        .post(
            "/api/sheets/default/inputs",
            json!({ "node": "text", "port": "value", "value": "a much longer sentence" }),
        )
        .await;
    assert_eq!(status, 200);
    let state = s.state("default").await;
    let stale: Vec<&str> = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["stale"] == true)
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(stale, ["text", "upper", "count"]);

    // History and selecting an older entry.
    let (status, history) = s.get("/api/sheets/default/nodes/count/history").await;
    assert_eq!(status, 200);
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let older = entries[1]["id"].as_i64().unwrap();
    assert_eq!(
        s.post(
            "/api/sheets/default/select",
            json!({ "node": "count", "id": older })
        )
        .await
        .0,
        200
    );
    assert_eq!(
        node(&s.state("default").await, "count")["outputs"][0]["value"],
        2
    );
    assert_eq!(
        s.post(
            "/api/sheets/default/restore",
            json!({ "node": "count", "id": older })
        )
        .await
        .0,
        200
    );
    let state = s.state("default").await;
    assert_eq!(node(&state, "count")["inputs"][0]["value"], 3);
    // Clearing an input goes back to the default.
    let r = s
        .client
        .delete(format!("{}/api/sheets/default/inputs/text/value", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        node(&s.state("default").await, "text")["inputs"][0]["value"],
        "hello inspector"
    );
    assert_eq!(
        s.post(
            "/api/sheets/default/viewport",
            json!({ "x": 1, "y": 2, "zoom": 0.5 })
        )
        .await
        .0,
        200
    );
    assert_eq!(s.state("default").await["viewport"]["zoom"], 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_and_commands_get_clear_4xx_errors() {
    let s = start(None).await;
    let cases = [
        (
            "/api/sheets/default/inputs",
            json!({ "node": "count", "port": "min", "value": "three" }),
            400,
            "takes a `u64`",
        ),
        (
            "/api/sheets/default/inputs",
            json!({ "node": "count", "port": "mni", "value": 3 }),
            400,
            "no input port `mni`",
        ),
        (
            "/api/sheets/default/inputs",
            json!({ "node": "count", "port": "text", "value": "x" }),
            400,
            "wired from another node",
        ),
        (
            "/api/sheets/default/inputs",
            json!({ "node": "cuont", "port": "min", "value": 3 }),
            404,
            "did you mean `count`",
        ),
        (
            "/api/sheets/default/run",
            json!({ "scope": "sideways" }),
            400,
            "unknown scope",
        ),
        (
            "/api/sheets/default/run",
            json!({ "scope": "to" }),
            400,
            "needs a `node`",
        ),
        (
            "/api/sheets/nope/run",
            json!({ "scope": "all" }),
            404,
            "no sheet named `nope`",
        ),
        (
            "/api/sheets/default/select",
            json!({ "node": "count", "id": 999 }),
            404,
            "history entry 999",
        ),
        (
            "/api/sheets/default/viewport",
            json!({ "x": 1, "y": 2, "zoom": -1 }),
            400,
            "zoom must be positive",
        ),
        ("/api/sheets", json!({ "name": "" }), 400, "1 to 200"),
        (
            "/api/sheets",
            json!({ "nam": "x" }),
            400,
            "invalid JSON body",
        ),
    ];
    for (path, body, status, message) in cases {
        let (got, reply) = s.post(path, body.clone()).await;
        assert_eq!(got, status, "{path} {body}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains(message),
            "{path} {body}: {reply}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheets_can_be_created_renamed_forked_and_deleted() {
    let s = start(None).await;
    s.run("default", json!({ "scope": "all" })).await;
    assert_eq!(s.post("/api/sheets", json!({ "name": "exp" })).await.0, 201);
    assert_eq!(s.post("/api/sheets", json!({ "name": "exp" })).await.0, 409);
    assert_eq!(
        node(&s.state("exp").await, "count")["status"],
        "pending",
        "a new sheet starts empty"
    );
    assert_eq!(
        s.post("/api/sheets/default/fork", json!({ "to": "copy" }))
            .await
            .0,
        201
    );
    assert_eq!(
        node(&s.state("copy").await, "count")["outputs"][0]["value"],
        2,
        "a fork keeps results"
    );
    assert_eq!(
        s.post("/api/sheets/exp/rename", json!({ "to": "renamed" }))
            .await
            .0,
        200
    );
    assert_eq!(s.get("/api/sheets/exp/state").await.0, 404);
    let (_, list) = s.get("/api/sheets").await;
    let names: Vec<&str> = list["sheets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["copy", "default", "renamed"]);
    let r = s
        .client
        .delete(format!("{}/api/sheets/renamed", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.get("/api/sheets/renamed/state").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_content_addressed_typed_and_support_ranges() {
    let s = start(None).await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let r = s
        .client
        .post(format!("{}/api/blobs", s.base))
        .header("content-type", "audio/wav")
        .header("x-daggr-filename", "../../etc/clip.wav")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let reference: Value = r.json().await.unwrap();
    assert_eq!(reference["kind"], "audio");
    assert_eq!(reference["size"], 1000);
    assert_eq!(
        reference["name"], "....etcclip.wav",
        "no path separators survive"
    );
    let blob = reference["blob"].as_str().unwrap();
    let encoded = blob
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D");
    let url = format!("{}/api/blobs/{encoded}?mime=audio%2Fwav", s.base);
    let full = s.client.get(&url).send().await.unwrap();
    assert_eq!(full.headers()["content-type"], "audio/wav");
    assert_eq!(full.bytes().await.unwrap().to_vec(), bytes);
    let part = s
        .client
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(part.bytes().await.unwrap().to_vec(), bytes[10..20].to_vec());
    let bad = s
        .client
        .get(&url)
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);
    let html = s
        .client
        .get(format!("{}/api/blobs/{encoded}?mime=text%2Fhtml", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(html.headers()["content-disposition"], "attachment");
    assert!(html.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    // No path-based access, and unknown hashes are 404.
    assert_eq!(s.get("/api/blobs/..%2F..%2Fetc%2Fpasswd").await.0, 400);
    assert_eq!(
        s.get("/api/blobs/sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .await
            .0,
        404
    );
    // The uploaded file can be set as a media input: an Image port rejects nothing here,
    // but a u32 port rejects the reference with a clear error.
    let (status, reply) = s
        .post(
            "/api/sheets/default/inputs",
            json!({ "node": "render", "port": "size", "value": reference }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(reply["error"].as_str().unwrap().contains("takes a `u32`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_stream_and_resume_with_last_event_id() {
    let s = start(None).await;
    let response = s
        .client
        .get(format!("{}/api/sheets/default/events", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let reader = tokio::spawn(async move {
        let mut response = response;
        let mut text = String::new();
        while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .unwrap_or(Ok(None))
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: run_finished") {
                break;
            }
        }
        text
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.run("default", json!({ "scope": "all" })).await;
    let text = reader.await.unwrap();
    for name in [
        "run_started",
        "node_started",
        "node_finished",
        "run_finished",
    ] {
        assert!(
            text.contains(&format!("event: {name}")),
            "{name} missing in {text}"
        );
    }
    assert!(
        text.contains("\"node\":\"upper\""),
        "events are small per-node deltas: {text}"
    );
    // Resume: ask for everything after event 2.
    let mut resumed = s
        .client
        .get(format!("{}/api/sheets/default/events", s.base))
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("event: run_finished") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resumed.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("id: 3\n"), "{text}");
    // A cached rerun reports node_cached.
    s.run("default", json!({ "scope": "all" })).await;
    let state = s.state("default").await;
    assert_eq!(node(&state, "count")["status"], "cached");
}

/// Reads an event stream until `until` shows up (or 5 s pass).
async fn read_events(mut response: reqwest::Response, until: &str) -> String {
    let mut text = String::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .unwrap_or(Ok(None))
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains(until) {
            break;
        }
    }
    text
}

fn texts(lines: &Value) -> Vec<&str> {
    lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_logs_stream_live_and_are_served_per_result_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sheets.db");
    let mut g = Graph::new("logs").cache(Cache::open(dir.path().join("cache")).unwrap());
    let n = g.input("n", 2u64);
    g.add(
        FnNode::with_context("chatty", |ctx: daggr::NodeContext, n: u64| async move {
            ctx.log(format!("n = {n}"));
            ctx.progress(Some(1.0), "all done");
            ctx.log("bye");
            Ok::<_, std::io::Error>(n)
        }),
        (n,),
    );
    g.add(FnNode::try_sync("broken", || Err::<u64, _>("nope")), ());
    let pipeline = g.build().unwrap();
    let s = serve(&pipeline, &db, None).await;

    // Live: every line is a `node_log` event.
    let events = s
        .client
        .get(format!("{}/api/sheets/default/events", s.base))
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_events(events, "event: run_finished"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.run("default", json!({ "scope": "all" })).await;
    let text = reader.await.unwrap();
    assert!(text.contains("event: node_log"), "{text}");
    assert!(
        text.contains(r#""line":"progress 100%: all done","node":"chatty""#),
        "{text}"
    );

    // The current result's log, and the failed node's live one (it has no result).
    let (status, log) = s.get("/api/sheets/default/nodes/chatty/logs").await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["source"], "result");
    assert_eq!(
        texts(&log["lines"]),
        ["n = 2", "progress 100%: all done", "bye"]
    );
    assert!(log["lines"][0]["unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(log["dropped"], 0);
    assert!(log["last_event_id"].as_u64().unwrap() > 0);
    let (_, log) = s.get("/api/sheets/default/nodes/broken/logs").await;
    assert_eq!(log["source"], "live");
    assert_eq!(texts(&log["lines"]), ["failed: node `broken` failed: nope"]);
    let state = s.state("default").await;
    assert_eq!(node(&state, "chatty")["log_lines"], 3);
    assert_eq!(node(&state, "broken")["log_lines"], 1);

    // Each history entry has its own log.
    let (status, _) = s
        .post(
            "/api/sheets/default/inputs",
            json!({ "node": "n", "port": "value", "value": 3 }),
        )
        .await;
    assert_eq!(status, 200);
    s.run("default", json!({ "scope": "to", "node": "chatty" }))
        .await;
    let (_, history) = s.get("/api/sheets/default/nodes/chatty/history").await;
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e["log_lines"] == 3));
    let older = entries[1]["id"].as_i64().unwrap();
    let (status, log) = s
        .get(&format!(
            "/api/sheets/default/nodes/chatty/logs?entry={older}"
        ))
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(
        (log["source"].as_str(), log["entry"].as_i64()),
        (Some("entry"), Some(older))
    );
    assert_eq!(texts(&log["lines"])[0], "n = 2");
    assert_eq!(s.get("/api/sheets/default/nodes/nope/logs").await.0, 404);
    assert_eq!(
        s.get("/api/sheets/default/nodes/chatty/logs?entry=x")
            .await
            .0,
        400
    );
    assert_eq!(
        s.get("/api/sheets/default/nodes/chatty/logs?entry=999999")
            .await
            .0,
        404
    );
    drop(s);

    // A restarted server serves the logs the sheet stored.
    let s = serve(&pipeline, &db, None).await;
    let (_, log) = s.get("/api/sheets/default/nodes/chatty/logs").await;
    assert_eq!(log["source"], "result");
    assert_eq!(texts(&log["lines"])[0], "n = 3");
    let (_, log) = s
        .get(&format!(
            "/api/sheets/default/nodes/chatty/logs?entry={older}"
        ))
        .await;
    assert_eq!(texts(&log["lines"])[0], "n = 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_in_the_history_with_their_logs_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sheets.db");
    let mut g = Graph::new("failures").cache(Cache::open(dir.path().join("cache")).unwrap());
    let n = g.input("n", 1u64);
    g.add(
        FnNode::with_context("remote", |ctx: daggr::NodeContext, n: u64| async move {
            ctx.log(format!("calling with {n}"));
            if n == 2 {
                Err(std::io::Error::other(
                    "503 service unavailable\n<html>busy</html>",
                ))
            } else {
                Ok(n * 10)
            }
        })
        .retry(daggr::RetryPolicy::new(1, Duration::from_millis(1))),
        (n,),
    );
    let pipeline = g.build().unwrap();
    let s = serve(&pipeline, &db, None).await;
    s.run("default", json!({ "scope": "all" })).await;
    let (status, _) = s
        .post(
            "/api/sheets/default/inputs",
            json!({ "node": "n", "port": "value", "value": 2 }),
        )
        .await;
    assert_eq!(status, 200);
    s.run("default", json!({ "scope": "all" })).await;
    assert_eq!(
        node(&s.state("default").await, "remote")["status"],
        "failed"
    );
    drop(s);

    // After a restart the failure is still in the history, with its error and its log.
    let s = serve(&pipeline, &db, None).await;
    let error = "node `remote` failed: 503 service unavailable\n<html>busy</html>";
    let (status, history) = s.get("/api/sheets/default/nodes/remote/history").await;
    assert_eq!(status, 200, "{history}");
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{history}");
    let (failed, good) = (&entries[0], &entries[1]);
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["run"], 2);
    assert_eq!(failed["error"], error);
    assert_eq!(failed["attempts"], 2);
    assert_eq!(failed["outputs"], json!([]));
    assert_eq!(failed["selected"], false);
    assert_eq!(failed["log_lines"], 4);
    assert_ne!(
        failed["inputs"][0]["hash"], good["inputs"][0]["hash"],
        "what it was computing from: n = 2"
    );
    assert_eq!(
        (good["outcome"].as_str(), &good["error"], &good["selected"]),
        (Some("computed"), &Value::Null, &json!(true))
    );
    let id = failed["id"].as_i64().unwrap();
    let (status, log) = s
        .get(&format!("/api/sheets/default/nodes/remote/logs?entry={id}"))
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["source"], "entry");
    assert_eq!(
        texts(&log["lines"]),
        [
            "calling with 2".to_string(),
            format!("attempt 1 of 2 failed, retrying in 1ms: {error}"),
            "calling with 2".to_string(),
            format!("failed: {error}"),
        ]
    );
    // The current-result panel still shows the last good result (stale: `n` changed since).
    let state = s.state("default").await;
    let remote = node(&state, "remote");
    assert_eq!(remote["status"], "stale");
    assert_eq!(remote["outputs"][0]["value"], 10);
    assert_eq!(remote["error"], Value::Null);
    assert_eq!(
        remote["history"],
        json!({ "count": 1, "selected_id": good["id"], "position": 1, "failed": 1 })
    );
    let (_, log) = s.get("/api/sheets/default/nodes/remote/logs").await;
    assert_eq!(
        (log["source"].as_str(), texts(&log["lines"])),
        (Some("result"), vec!["calling with 1"])
    );
    // A failed entry cannot be selected.
    let (status, reply) = s
        .post(
            "/api/sheets/default/select",
            json!({ "node": "remote", "id": id }),
        )
        .await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("cannot be selected: it is the failed execution of run 2"),
        "{reply}"
    );
    assert_eq!(
        node(&s.state("default").await, "remote")["outputs"][0]["value"],
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_positions_are_stored_per_sheet_and_reset() {
    let s = start(None).await;
    assert_eq!(s.state("default").await["positions"], json!({}));
    let moved = json!({ "count": { "x": 812.5, "y": 40.0 }, "render": { "x": 0.0, "y": 700.0 } });
    let (status, reply) = s.post("/api/sheets/default/positions", moved.clone()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(s.state("default").await["positions"], moved);
    let (status, _) = s.post("/api/sheets", json!({ "name": "other" })).await;
    assert_eq!(status, 201);
    assert_eq!(s.state("other").await["positions"], json!({}), "per sheet");
    for bad in [
        json!({ "nope": { "x": 1, "y": 2 } }),
        json!({ "count": { "x": 1e300, "y": 2 } }),
        json!({ "count": { "x": "left", "y": 2 } }),
        json!({ "count": { "x": 1 } }),
        json!([1, 2]),
    ] {
        let (status, reply) = s.post("/api/sheets/default/positions", bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {reply}");
        assert!(reply["error"].is_string());
    }
    assert_eq!(s.state("default").await["positions"], moved, "unchanged");
    let reset = s
        .client
        .delete(format!("{}/api/sheets/default/positions", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(s.state("default").await["positions"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_headers_are_refused() {
    let s = start(None).await;
    let (status, text) = s
        .raw("GET /api/graph HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n".into())
        .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("is not served here"));
    let (status, _) = s
        .raw(format!(
            "GET /api/graph HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            s.port
        ))
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .raw("GET /api/graph HTTP/1.1\r\nConnection: close\r\n\r\n".into())
        .await;
    assert_eq!(status, 403, "no Host at all is refused too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_configured() {
    let s = start(Some("s3cret")).await;
    assert_eq!(s.get("/api/graph").await.0, 401);
    assert_eq!(s.get("/api/graph?token=wrong").await.0, 401);
    assert_eq!(s.get("/api/graph?token=s3cret").await.0, 200);
    let r = s
        .client
        .get(format!("{}/api/graph", s.base))
        .header("x-daggr-token", "s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.get("/?token=s3cret").await.0, 200);
    let asset = s
        .client
        .get(format!("{}/assets/inspector.js", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200, "static assets carry nothing private");
}

/// A seeded fuzz over every route: each method, malformed, oversized and odd bodies, and odd
/// headers (foreign origins, wrong types, huge event ids, broken ranges). The server never
/// answers 5xx (a caught panic would be a 500), always answers in JSON on errors, stays up,
/// and a normal request works at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_fuzz_of_malformed_requests_never_gets_a_5xx() {
    use rand::{Rng, SeedableRng};
    let s = start(None).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let long = "n".repeat(300);
    let paths = [
        "/".to_string(),
        "/api/graph".into(),
        "/api/export/mermaid".into(),
        "/api/export/%00".into(),
        "/api/sheets".into(),
        "/api/sheets/default".into(),
        "/api/sheets/fuzz".into(),
        "/api/sheets/default/rename".into(),
        "/api/sheets/default/fork".into(),
        "/api/sheets/default/state".into(),
        "/api/sheets/%ZZ/state".into(),
        format!("/api/sheets/{long}/state"),
        "/api/sheets/default/nodes/x/history".into(),
        "/api/sheets/default/nodes/count/history".into(),
        "/api/sheets/default/nodes/count/logs?entry=-1".into(),
        "/api/sheets/default/nodes/count/logs?entry=%FF".into(),
        "/api/sheets/default/nodes/count/logs?entry=99999999999999999999".into(),
        "/api/sheets/default/run".into(),
        "/api/sheets/default/cancel".into(),
        "/api/sheets/default/inputs".into(),
        "/api/sheets/default/inputs/count/min".into(),
        format!("/api/sheets/default/inputs/{long}/min"),
        "/api/sheets/default/select".into(),
        "/api/sheets/default/restore".into(),
        "/api/sheets/default/viewport".into(),
        "/api/sheets/default/positions".into(),
        "/api/sheets/default/events?last_event_id=abc".into(),
        "/api/sheets/default/events?last_event_id=18446744073709551615".into(),
        "/api/sheets/default/events".into(),
        "/api/blobs".into(),
        "/api/blobs/sha256-!!".into(),
        "/api/blobs/sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=?mime=%0d%0a".into(),
        "/assets/inspector.js".into(),
        "/favicon.ico".into(),
        format!("/{}", "x".repeat(5000)),
        "/nope".into(),
    ];
    let bodies = [
        String::new(),
        "{".into(),
        "null".into(),
        "[]".into(),
        "{\"scope\": 5}".into(),
        "{\"scope\":\"all\"}".into(),
        "{\"node\": null, \"port\": [], \"value\": {}}".into(),
        "{\"node\":\"count\",\"port\":\"min\",\"value\":1e400}".into(),
        "{\"node\":\"count\",\"port\":\"min\",\"value\":-1}".into(),
        "{\"name\": \"\\u0000\"}".into(),
        "{\"name\": \"fuzz\"}".into(),
        "{\"to\": 7}".into(),
        "{\"to\": \"fuzz\"}".into(),
        "{\"x\": \"1\", \"y\": 2, \"zoom\": 1}".into(),
        "{\"x\": 1e308, \"y\": 2, \"zoom\": 1e-308}".into(),
        "{\"node\":\"count\",\"id\":\"x\"}".into(),
        "{\"node\":\"count\",\"id\":9223372036854775807}".into(),
        "{\"count\": {\"x\": null, \"y\": 1}}".into(),
        "{\"count\": {\"x\": 1e300, \"y\": 1}}".into(),
        "\u{fffd}\u{fffd}".into(),
        "{\"scope\":\"only\",\"node\":\"ghost\"}".into(),
        format!("{{\"scope\":\"only\",\"node\":\"{long}\"}}"),
        "[".repeat(10_000),
        format!("{{\"name\":\"{}\"}}", "a".repeat(100_000)),
        "x".repeat(200_000),
    ];
    let headers = [
        "Content-Type: application/json\r\n",
        "Content-Type: application/json\r\n",
        "Content-Type: application/json\r\n",
        "Content-Type: application/json\r\n",
        "Content-Type: application/json; charset=utf-8\r\n",
        "",
        "Content-Type: text/plain\r\n",
        "Content-Type: image/png\r\nx-daggr-filename: a/../b.png\r\n",
        "Content-Type: application/json\r\nOrigin: http://evil.example\r\n",
        "Content-Type: application/json\r\nSec-Fetch-Site: cross-site\r\n",
        "Content-Type: application/json\r\nLast-Event-ID: 18446744073709551615\r\n",
        "Content-Type: application/json\r\nRange: bytes=99999999999999999999-\r\n",
        "Content-Type: application/json\r\nx-daggr-token: \r\n",
        "Content-Type: \r\nOrigin: \r\nSec-Fetch-Site: \r\n",
    ];
    // Weighted toward what reaches the handlers: JSON bodies, GET and POST.
    let methods = [
        "GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "DELETE", "PATCH", "HEAD", "OPTIONS",
    ];
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..600 {
        let path = &paths[rng.random_range(0..paths.len())];
        let body = &bodies[rng.random_range(0..bodies.len())];
        let header = headers[rng.random_range(0..headers.len())];
        let method = methods[rng.random_range(0..methods.len())];
        let (status, text) = s.raw(request(&s, method, path, header, body)).await;
        *seen.entry(status).or_insert(0) += 1;
        let short = |t: &str| t.chars().take(200).collect::<String>();
        assert!(
            (200..500).contains(&status),
            "{method} {path} {header:?} {:?} → {status}\n{}",
            short(body),
            short(&text)
        );
        if status >= 400 && method != "HEAD" {
            assert!(
                text.contains("\"error\""),
                "{method} {path} {header:?} {:?}: a JSON error body\n{}",
                short(body),
                short(&text)
            );
        }
    }
    println!("fuzz answers by status: {seen:?}");
    assert_eq!(
        s.get("/api/graph").await.0,
        200,
        "the server is still healthy"
    );
    let (_, sheets) = s.get("/api/sheets").await;
    let first = sheets["sheets"][0]["name"].as_str().unwrap().to_string();
    s.run(&first, json!({ "scope": "all" })).await;
}

/// A raw request to `s` with extra header lines (each ending in `\r\n`) and a body.
fn request(s: &Server, method: &str, path: &str, headers: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        s.port,
        body.len()
    )
}

/// What a page of another origin can send without the user (forms, `no-cors` fetches) or
/// with a foreign `Origin` / `Sec-Fetch-Site` is refused, and changes nothing; the same
/// request as JSON from the server's own origin works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_are_refused_and_change_nothing() {
    let s = start(None).await;
    let before = s.state("default").await;
    let run = r#"{"scope":"all","x":"="}"#;
    let input = r#"{"node":"count","port":"min","value":99,"x":"="}"#;
    let other = format!("http://127.0.0.1:{}", s.port + 1);
    let attempts = [
        (
            "POST",
            "/api/sheets/default/run",
            "Content-Type: text/plain\r\n".to_string(),
            run,
            "application/json",
        ),
        (
            "POST",
            "/api/sheets/default/inputs",
            "Content-Type: text/plain;charset=UTF-8\r\n".into(),
            input,
            "application/json",
        ),
        (
            "POST",
            "/api/sheets",
            "Content-Type: application/x-www-form-urlencoded\r\n".into(),
            "name=evil",
            "application/json",
        ),
        (
            "POST",
            "/api/sheets",
            "Content-Type: multipart/form-data; boundary=x\r\n".into(),
            "--x--",
            "application/json",
        ),
        (
            "POST",
            "/api/sheets/default/run",
            String::new(),
            r#"{"scope":"all"}"#,
            "application/json",
        ),
        (
            "POST",
            "/api/sheets/default/cancel",
            "Content-Type: text/plain\r\n".into(),
            "",
            "application/json",
        ),
        (
            "POST",
            "/api/sheets/default/run",
            format!("Content-Type: application/json\r\nOrigin: {other}\r\n"),
            r#"{"scope":"all"}"#,
            "Origin",
        ),
        (
            "POST",
            "/api/sheets/default/inputs",
            "Content-Type: application/json\r\nOrigin: null\r\n".into(),
            input,
            "Origin",
        ),
        (
            "POST",
            "/api/sheets",
            "Content-Type: application/json\r\nOrigin: http://evil.example\r\n".into(),
            r#"{"name":"evil"}"#,
            "Origin",
        ),
        (
            "DELETE",
            "/api/sheets/default",
            format!("Origin: {other}\r\n"),
            "",
            "Origin",
        ),
        (
            "POST",
            "/api/sheets/default/run",
            "Content-Type: application/json\r\nSec-Fetch-Site: same-site\r\n".into(),
            r#"{"scope":"all"}"#,
            "Sec-Fetch-Site",
        ),
        (
            "POST",
            "/api/sheets",
            "Content-Type: application/json\r\nSec-Fetch-Site: cross-site\r\n".into(),
            r#"{"name":"evil"}"#,
            "Sec-Fetch-Site",
        ),
        (
            "POST",
            "/api/blobs",
            "Content-Type: multipart/form-data; boundary=x\r\n".into(),
            "--x--",
            "not a form",
        ),
        (
            "POST",
            "/api/blobs",
            "Content-Type: text/plain\r\n".into(),
            "evil",
            "x-daggr-filename",
        ),
        (
            "POST",
            "/api/blobs",
            format!("Content-Type: image/png\r\nOrigin: {other}\r\n"),
            "evil",
            "Origin",
        ),
    ];
    for (method, path, headers, body, why) in &attempts {
        let (status, text) = s.raw(request(&s, method, path, headers, body)).await;
        assert_eq!(status, 403, "{method} {path} {headers:?}: {text}");
        assert!(
            text.contains(why),
            "{method} {path}: the reason names {why}\n{text}"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = s.state("default").await;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(
        s.calls.iter().map(Calls::get).sum::<usize>(),
        0,
        "no run started"
    );
    let (_, sheets) = s.get("/api/sheets").await;
    assert_eq!(sheets["sheets"].as_array().unwrap().len(), 1, "{sheets}");

    // The page's own requests: same origin, JSON (a bodyless POST needs no type).
    let own = format!(
        "Origin: http://127.0.0.1:{}\r\nSec-Fetch-Site: same-origin\r\n",
        s.port
    );
    let json = format!("{own}Content-Type: application/json\r\n");
    let (status, text) = s
        .raw(request(
            &s,
            "POST",
            "/api/sheets/default/inputs",
            &json,
            r#"{"node":"count","port":"min","value":4}"#,
        ))
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = s
        .raw(request(&s, "POST", "/api/sheets/default/cancel", &own, ""))
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = s
        .raw(request(
            &s,
            "POST",
            "/api/blobs",
            &format!("{own}Content-Type: text/plain\r\nx-daggr-filename: notes.txt\r\n"),
            "notes",
        ))
        .await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = s
        .raw(request(
            &s,
            "POST",
            "/api/sheets/default/run",
            &format!("{json}Sec-Fetch-Site: none\r\n"),
            r#"{"scope":"all"}"#,
        ))
        .await;
    assert_eq!(status, 202, "typed in the address bar or a tool: {text}");
    assert_eq!(
        node(&s.state("default").await, "count")["inputs"][0]["value"],
        4
    );
}

/// `Last-Event-ID: u64::MAX` (query or header) used to overflow under the live log's lock:
/// a panic that poisoned it and broke the sheet for every later request. Now the stream
/// opens, and the sheet's state, runs and events all still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_last_event_id_breaks_nothing() {
    let s = start(None).await;
    let max = u64::MAX;
    let (status, text) = s
        .raw(request(
            &s,
            "GET",
            &format!("/api/sheets/default/events?last_event_id={max}"),
            "",
            "",
        ))
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = s
        .raw(request(
            &s,
            "GET",
            "/api/sheets/default/events",
            &format!("Last-Event-ID: {max}\r\n"),
            "",
        ))
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = s
        .raw(request(
            &s,
            "GET",
            "/api/sheets/default/events?last_event_id=99999999999999999999",
            "",
            "",
        ))
        .await;
    assert_eq!(status, 400, "beyond u64: {text}");
    // The sheet still works: its state, a run, and the events of that run.
    s.state("default").await;
    s.run("default", json!({ "scope": "all" })).await;
    assert_eq!(node(&s.state("default").await, "count")["status"], "done");
    let stream = s
        .client
        .get(format!(
            "{}/api/sheets/default/events?last_event_id=0",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let text = read_events(stream, "run_finished").await;
    assert!(text.contains("node_finished"), "{text}");
}

/// A 10 MB node name (it kept a worker busy 39 s computing "did you mean") is refused before
/// any work: 400 naming the limit where the body fits the route, 413 where it does not;
/// meanwhile the server answers other requests. Uploads have their own, configurable limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_names_and_bodies_are_refused_before_any_work() {
    let s = start(None).await;
    let huge = "n".repeat(10 * 1024 * 1024);
    let big_input = json!({ "node": huge, "port": "min", "value": 3 }).to_string();
    let big_run = json!({ "scope": "only", "node": huge }).to_string();
    let t = std::time::Instant::now();
    let json_type = "Content-Type: application/json\r\n";
    let input_request = request(
        &s,
        "POST",
        "/api/sheets/default/inputs",
        json_type,
        &big_input,
    );
    let run_request = request(&s, "POST", "/api/sheets/default/run", json_type, &big_run);
    let (input, run, meanwhile) = tokio::join!(s.raw(input_request), s.raw(run_request), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.get("/api/sheets/default/state").await.0
    });
    println!(
        "10 MB names: /inputs {} and /run {} answered within {:?}",
        input.0,
        run.0,
        t.elapsed()
    );
    assert_eq!(input.0, 400, "{}", input.1);
    assert!(input.1.contains("longer than 256 bytes"), "{}", input.1);
    assert_eq!(run.0, 413, "{}", run.1);
    assert!(
        run.1.contains("larger than this route accepts"),
        "{}",
        run.1
    );
    assert_eq!(meanwhile, 200, "another request is served meanwhile");
    // A long sheet name in the path, an overlong path, a long name in a small body.
    let long = "s".repeat(300);
    let (status, reply) = s.get(&format!("/api/sheets/{long}/state")).await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("256 bytes"));
    let (status, _) = s
        .get(&format!("/api/sheets/{}/state", "s".repeat(5000)))
        .await;
    assert_eq!(status, 414);
    let (status, reply) = s
        .post(
            "/api/sheets/default/run",
            json!({ "scope": "only", "node": long }),
        )
        .await;
    assert_eq!(status, 400, "{reply}");

    // Uploads: a limit set per launch.
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("uploads").cache(Cache::open(dir.path().join("cache")).unwrap());
    g.input("x", 1u32);
    let pipeline = g.build().unwrap();
    let inspector = Inspector::bind(
        &pipeline,
        LaunchOptions {
            port: Some(0),
            open_browser: false,
            sheets_db: Some(dir.path().join("sheets.db")),
            max_upload_bytes: Some(1000),
            ..LaunchOptions::default()
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", inspector.local_addr());
    let stop = tokio_util::sync::CancellationToken::new();
    let st = stop.clone();
    tokio::spawn(inspector.serve(async move { st.cancelled().await }));
    let upload = |n: usize| {
        s.client
            .post(format!("{base}/api/blobs"))
            .header("content-type", "image/png")
            .body(vec![7u8; n])
            .send()
    };
    assert_eq!(upload(1000).await.unwrap().status(), 201);
    let refused = upload(1001).await.unwrap();
    assert_eq!(refused.status(), 413);
    assert!(refused.text().await.unwrap().contains("\"error\""));
    stop.cancel();
}

/// Off loopback the token is the protection: with it, any `Host` (a LAN address, a name) is
/// served, unless hosts are listed, and then only those. `?token=` is compared after
/// percent-decoding, as the page encodes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_any_host_is_served_and_the_query_token_is_decoded() {
    let token = "s3 cr/t+&é";
    let s = start(Some(token)).await;
    let lan = "Host: 192.168.1.77:7860\r\n";
    let get = |host: &str, query: &str, header: &str| {
        format!("GET /api/graph{query} HTTP/1.1\r\n{host}{header}Connection: close\r\n\r\n")
    };
    let (status, text) = s.raw(get(lan, "", "")).await;
    assert_eq!(status, 401, "no token: {text}");
    let encoded = "s3%20cr%2Ft%2B%26%C3%A9";
    let (status, text) = s.raw(get(lan, &format!("?token={encoded}"), "")).await;
    assert_eq!(status, 200, "a LAN host with the token: {text}");
    let (status, _) = s
        .raw(get("Host: box.lan\r\n", &format!("?token={encoded}"), ""))
        .await;
    assert_eq!(status, 200, "a host name with the token");
    let (status, _) = s.raw(get(lan, "?token=s3%20cr%2Ft%2B%26", "")).await;
    assert_eq!(status, 401, "a prefix of the token");
    let (status, _) = s.raw(get(lan, "?token=s3+cr%2Ft%2B%26%C3%A9", "")).await;
    assert_eq!(
        status, 401,
        "`+` is no space: the page encodes with encodeURIComponent"
    );

    // A listed set of hosts narrows it again.
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("hosts").cache(Cache::open(dir.path().join("cache")).unwrap());
    g.input("x", 1u32);
    let pipeline = g.build().unwrap();
    let inspector = Inspector::bind(
        &pipeline,
        LaunchOptions {
            port: Some(0),
            open_browser: false,
            sheets_db: Some(dir.path().join("sheets.db")),
            token: Some("t".into()),
            allowed_hosts: vec!["box.lan".into(), "10.0.0.5:7860".into()],
            ..LaunchOptions::default()
        },
    )
    .await
    .unwrap();
    let port = inspector.local_addr().port();
    let stop = tokio_util::sync::CancellationToken::new();
    let st = stop.clone();
    tokio::spawn(inspector.serve(async move { st.cancelled().await }));
    let listed = Server {
        base: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::new(),
        calls: Vec::new(),
        stop,
        _dir: None,
    };
    for (host, wanted) in [
        ("box.lan:9999", 200),
        ("BOX.LAN", 200),
        ("10.0.0.5:7860", 200),
        ("10.0.0.5:7861", 403),
        ("192.168.1.77:7860", 403),
        (&*format!("127.0.0.1:{port}"), 200),
    ] {
        let (status, text) = listed
            .raw(get(&format!("Host: {host}\r\n"), "?token=t", ""))
            .await;
        assert_eq!(status, wanted, "{host}: {text}");
    }
}

/// Values the port's type cannot hold (an f32 of 1e39 would become +inf, 1e-50 zero) and
/// viewports the page cannot show are refused, and the stored ones are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_and_viewports_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("ranges").cache(Cache::open(dir.path().join("cache")).unwrap());
    g.add(
        FnNode::sync("scale", |factor: f32, by: Vec<f64>| {
            by.iter().map(|b| b * factor as f64).sum::<f64>()
        })
        .inputs(["factor", "by"]),
        (constant(1.5f32), constant(vec![1.0f64])),
    );
    let pipeline = g.build().unwrap();
    let s = serve(&pipeline, &dir.path().join("sheets.db"), None).await;
    let set = |port: &str, value: Value| {
        s.post(
            "/api/sheets/default/inputs",
            json!({ "node": "scale", "port": port, "value": value }),
        )
    };
    for (port, value) in [
        ("factor", json!(1e39)),
        ("factor", json!(-1e39)),
        ("factor", json!(1e-50)),
    ] {
        let (status, reply) = set(port, value.clone()).await;
        assert_eq!(status, 400, "{port} = {value}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains("out of range"),
            "{reply}"
        );
    }
    let inputs = |state: &Value| node(state, "scale")["inputs"].clone();
    assert_eq!(inputs(&s.state("default").await)[0]["value"], 1.5);
    assert_eq!(
        set("factor", json!(3.0e38)).await.0,
        200,
        "the largest f32s fit"
    );
    assert_eq!(set("factor", json!(0)).await.0, 200, "zero is zero");
    assert_eq!(set("by", json!([1e300, -2.5])).await.0, 200);
    assert_eq!(set("by", json!([1, "x"])).await.0, 400);

    let viewport = s.state("default").await["viewport"].clone();
    for bad in [
        json!({ "x": 1e308, "y": 0, "zoom": 1 }),
        json!({ "x": 0, "y": -2e6, "zoom": 1 }),
        json!({ "x": 0, "y": 0, "zoom": 1e-300 }),
        json!({ "x": 0, "y": 0, "zoom": 1000 }),
        json!({ "x": 0, "y": 0, "zoom": 0 }),
    ] {
        let (status, reply) = s.post("/api/sheets/default/viewport", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {reply}");
    }
    assert_eq!(s.state("default").await["viewport"], viewport, "unchanged");
    let fine = json!({ "x": -1e5, "y": 250.5, "zoom": 0.04 });
    assert_eq!(
        s.post("/api/sheets/default/viewport", fine.clone()).await.0,
        200
    );
    assert_eq!(s.state("default").await["viewport"], fine);
}

/// The page never deletes the last sheet; neither does the API (409, saying why).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_sheet_cannot_be_deleted() {
    let s = start(None).await;
    let delete = |name: &str| {
        s.client
            .delete(format!("{}/api/sheets/{name}", s.base))
            .send()
    };
    let refused = delete("default").await.unwrap();
    assert_eq!(refused.status(), 409);
    let reply: Value = refused.json().await.unwrap();
    assert!(
        reply["error"].as_str().unwrap().contains("last sheet"),
        "{reply}"
    );
    s.state("default").await;
    assert_eq!(
        s.post("/api/sheets", json!({ "name": "other" })).await.0,
        201
    );
    assert_eq!(delete("default").await.unwrap().status(), 200);
    assert_eq!(
        delete("other").await.unwrap().status(),
        409,
        "now the last one"
    );
    assert_eq!(s.get("/api/sheets").await.1["sheets"][0]["name"], "other");
}

/// A run posted while one executes is refused (409); a run posted as soon as the page sees
/// `run_finished`, while the previous run is still saving its results (here a 24 MiB image
/// going to the cache and its fsync), is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_posted_right_after_run_finished_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("drain").cache(Cache::open(dir.path().join("cache")).unwrap());
    let seed = g.input("seed", 1u32);
    let image = g.add(
        FnNode::sync("big", |s: u32| {
            let bytes: Vec<u8> = (0..24u32 << 20).map(|i| (i ^ s) as u8).collect();
            Image::new(bytes, "image/x-raw")
        }),
        (seed,),
    );
    g.add(
        FnNode::from_async("slow", |i: Image| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            i.bytes().len() as u64
        }),
        (image,),
    );
    let pipeline = g.build().unwrap();
    let s = serve(&pipeline, &dir.path().join("sheets.db"), None).await;
    for round in 0..3 {
        let events = s
            .client
            .get(format!("{}/api/sheets/default/events", s.base))
            .send()
            .await
            .unwrap();
        let reader = tokio::spawn(read_events(events, "event: run_finished"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A new seed each round: the image is computed and written again.
        let (status, reply) = s
            .post(
                "/api/sheets/default/inputs",
                json!({ "node": "seed", "port": "value", "value": round + 10 }),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        let (status, reply) = s
            .post("/api/sheets/default/run", json!({ "scope": "all" }))
            .await;
        assert_eq!(status, 202, "{reply}");
        let (status, reply) = s
            .post("/api/sheets/default/run", json!({ "scope": "all" }))
            .await;
        assert_eq!(status, 409, "still executing: {reply}");
        assert!(reply.to_string().contains("in progress"), "{reply}");
        let text = reader.await.unwrap();
        assert!(text.contains("event: run_finished"), "{text}");
        let (status, reply) = s
            .post("/api/sheets/default/run", json!({ "scope": "all" }))
            .await;
        assert_eq!(
            status, 202,
            "round {round}: posted right after run_finished: {reply}"
        );
        for _ in 0..1000 {
            if !s.state("default").await["running"].as_bool().unwrap() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `x` (input) -> `blur` -> `stats`, with `blur`'s code fingerprint and parameters given:
/// the same program as it is edited between two openings of a sheet.
fn edited_program(dir: &std::path::Path, code: &str, model: &str) -> daggr::Pipeline {
    let mut g = Graph::new("edited").cache(Cache::open(dir.join("cache")).unwrap());
    let x = g.input("x", 2u64);
    let blur = g.add(
        FnNode::sync("blur", |x: u64| x * 3)
            .inputs(["x"])
            .code_fingerprint(code)
            .params(json!({ "model": model, "steps": 4 })),
        (x,),
    );
    g.add(
        FnNode::sync("stats", |b: u64| b + 1).inputs(["blurred"]),
        (blur,),
    );
    g.build().unwrap()
}

/// A sheet reopened by a program whose node changed (its code, then a parameter): the node
/// is stale and its card says what changed, the node below names it, and after a run the
/// why line says the parameter made it recompute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_reopened_after_a_code_or_parameter_change_says_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sheets.db");
    let s = serve(&edited_program(dir.path(), "v1", "small"), &db, None).await;
    s.run("default", json!({ "scope": "all" })).await;
    let state = s.state("default").await;
    assert_eq!(node(&state, "blur")["status"], "done");
    drop(s);

    // The same program again: nothing is stale.
    let s = serve(&edited_program(dir.path(), "v1", "small"), &db, None).await;
    let state = s.state("default").await;
    assert_eq!(node(&state, "blur")["status"], "done", "{state}");
    assert_eq!(node(&state, "stats")["status"], "done", "{state}");
    drop(s);

    // Its code changed.
    let s = serve(&edited_program(dir.path(), "v2", "small"), &db, None).await;
    let state = s.state("default").await;
    let (blur, stats) = (node(&state, "blur"), node(&state, "stats"));
    assert_eq!(
        (&blur["status"], &blur["stale"]),
        (&json!("stale"), &json!(true))
    );
    assert_eq!(blur["stale_because"], "code of `blur` changed");
    assert_eq!(node(&state, "x")["status"], "done");
    assert_eq!(stats["status"], "stale");
    assert_eq!(
        stats["stale_because"],
        "input `blurred` is out of date: code of `blur` changed"
    );
    drop(s);

    // A parameter changed (the sheet still holds the result made with `small`).
    let s = serve(&edited_program(dir.path(), "v1", "large"), &db, None).await;
    let state = s.state("default").await;
    assert_eq!(
        node(&state, "blur")["stale_because"],
        "parameter `model` of `blur` changed: \"small\" → \"large\""
    );
    // A run computes it again (stale agreed), and the why line names the parameter.
    s.run("default", json!({ "scope": "all" })).await;
    let state = s.state("default").await;
    assert_eq!(node(&state, "blur")["status"], "done", "{state}");
    assert!(node(&state, "blur")["stale_because"].is_null());
    let (status, why) = s.get("/api/sheets/default/nodes/blur/why").await;
    assert_eq!(status, 200, "{why}");
    assert_eq!(why["outcome"], "computed", "{why}");
    assert_eq!(
        why["summary"], "recomputed: parameters changed: model",
        "{why}"
    );
}

/// `bytes` decoded by the system's gzip (the test package has no gzip decoder of its own).
fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "not gzip");
    out.stdout
}

/// The JSON answers and the page's script come gzip-compressed when the request accepts it,
/// plain otherwise; the event stream is never compressed (its events arrive as
/// they happen), nor are images or stored blobs (served for ranges).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_compressed_when_accepted_but_not_events_or_blobs() {
    let s = start(None).await;
    s.run("default", json!({ "scope": "all" })).await;
    let get = |path: &str, encoding: Option<&str>| {
        let mut r = s.client.get(format!("{}{path}", s.base));
        if let Some(e) = encoding {
            r = r.header("accept-encoding", e);
        }
        r.send()
    };
    let encoding_of = |r: &reqwest::Response| {
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string())
    };

    // Without Accept-Encoding: plain JSON.
    let plain = get("/api/graph", None).await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(encoding_of(&plain), None);
    let plain = plain.bytes().await.unwrap();
    let graph: Value = serde_json::from_slice(&plain).unwrap();
    assert!(graph["nodes"].as_array().unwrap().len() >= 4);

    // With gzip: the same JSON, compressed.
    let gz = get("/api/graph", Some("gzip")).await.unwrap();
    assert_eq!(encoding_of(&gz).as_deref(), Some("gzip"));
    assert_eq!(gz.headers()["content-type"], "application/json");
    let gz = gz.bytes().await.unwrap();
    assert!(gz.len() < plain.len(), "{} >= {}", gz.len(), plain.len());
    let decoded: Value = serde_json::from_slice(&gunzip(&gz)).unwrap();
    assert_eq!(decoded, graph);
    let state = get("/api/sheets/default/state", Some("gzip"))
        .await
        .unwrap();
    assert_eq!(encoding_of(&state).as_deref(), Some("gzip"));
    let state: Value = serde_json::from_slice(&gunzip(&state.bytes().await.unwrap())).unwrap();
    assert_eq!(node(&state, "count")["status"], "done");

    // A browser's list: gzip is the one taken; an encoding not offered gets plain JSON.
    let browser = "gzip, deflate, br, zstd";
    let listed = get("/api/graph", Some(browser)).await.unwrap();
    assert_eq!(encoding_of(&listed).as_deref(), Some("gzip"));
    let decoded: Value = serde_json::from_slice(&gunzip(&listed.bytes().await.unwrap())).unwrap();
    assert_eq!(decoded, graph);
    let other = get("/api/graph", Some("br")).await.unwrap();
    assert_eq!(encoding_of(&other), None);
    assert_eq!(other.bytes().await.unwrap(), plain);
    let script = get("/assets/inspector.js", Some("gzip")).await.unwrap();
    assert_eq!(encoding_of(&script).as_deref(), Some("gzip"));
    let page = get("/", Some("gzip")).await.unwrap();
    assert_eq!(encoding_of(&page).as_deref(), Some("gzip"));

    // The event stream: not compressed, and its events arrive while the stream is open.
    let events = get("/api/sheets/default/events", Some(browser))
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    assert_eq!(encoding_of(&events), None);
    let reader = tokio::spawn(read_events(events, "event: run_finished"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let (status, _) = s
        .post(
            "/api/sheets/default/inputs",
            json!({ "node": "text", "port": "value", "value": "compressed or not" }),
        )
        .await;
    assert_eq!(status, 200);
    s.run("default", json!({ "scope": "all" })).await;
    let text = reader.await.unwrap();
    assert!(text.contains("event: run_finished"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "events held back: {:?}",
        started.elapsed()
    );

    // An image output, and a stored JSON blob (served for ranges): as they are.
    let state = s.state("default").await;
    let media = &node(&state, "render")["outputs"][0]["media"][0];
    let url = media["url"].as_str().expect("the image has a URL");
    let image = get(url, Some(browser)).await.unwrap();
    assert_eq!(image.status(), 200, "{url}");
    assert_eq!(encoding_of(&image), None);
    let document = serde_json::to_vec(&json!({ "rows": vec!["the same row"; 200] })).unwrap();
    let uploaded: Value = s
        .client
        .post(format!("{}/api/blobs", s.base))
        .header("content-type", "application/json")
        .body(document.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let blob = uploaded["blob"]
        .as_str()
        .unwrap()
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D");
    let stored = get(
        &format!("/api/blobs/{blob}?mime=application%2Fjson"),
        Some(browser),
    )
    .await
    .unwrap();
    assert_eq!(encoding_of(&stored), None);
    assert_eq!(stored.headers()["accept-ranges"], "bytes");
    assert_eq!(stored.bytes().await.unwrap().to_vec(), document);
}
