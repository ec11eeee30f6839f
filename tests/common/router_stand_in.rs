//! A **protocol stand-in** of the Hugging Face inference router, written for these tests:
//! an in-process axum server implementing the request and response shapes documented in
//! `shared/reference/hf-inference-protocol.md` (§2–§7a) for the routes no offline server
//! speaks. It is not the real service and runs no model: its answers are deterministic
//! (chat echoes `echo: <last user text>`, images are a fixed PNG, embeddings are derived
//! from the text's length).
//!
//! Routes, each with its provider's response shape:
//! * `POST /v1/chat/completions` (`model` = `org/m` or `org/m:provider`; plain JSON, or an
//!   SSE stream ending in `data: [DONE]`), and `POST /{provider}/v1/chat/completions`;
//!   a user message may be a list of content parts (vision): the echo then holds its
//!   text parts and `[image/png, 69 bytes]` per decoded `image_url` data URL;
//! * `POST /hf-inference/models/{model}`: text to image → raw PNG bytes; text generation
//!   `{"inputs": "…"}` → `[{"generated_text"}]`; audio bytes → `{"text"}`; image bytes →
//!   `[{label, score}]`; `{"inputs": "<base64>", "parameters"}` for either with parameters;
//! * `POST /hf-inference/models/{model}/pipeline/feature-extraction`: a string → one flat
//!   vector, a list → nested vectors;
//! * `POST /{provider}/v1/embeddings` (and deepinfra's `/v1/openai/embeddings`) → OpenAI
//!   `{"data": [{"embedding"}]}`;
//! * `POST /{together,nscale,…}/v1/images/generations` → `{"data": [{"b64_json"}]}`;
//! * `POST /fal-ai/{model}` → `{"images": [{"url"}]}` (then `GET /files/{name}`), or for
//!   an `audio_url` → `{"text"}`;
//! * `POST /replicate/v1/models/{model}/predictions` (with `Prefer: wait`) → `{"output": ["url"]}`.
//!
//! Error hooks, by model id `error/<case>`: `404`, `422` (list of messages), `500` (plain
//! text), `502` (an HTML page), `header` (`X-Error-Message`), `description`
//! (`error_description`), `errors` (`{"errors": [{"message"}]}`), `openai` (an error
//! object), `503` (always loading, `Retry-After: 0`), `loading` (503 with
//! `estimated_time`, then fine), `429-then-ok` (twice 429 with `Retry-After: 0`, then
//! fine), `429-slow` (429 with `Retry-After: 1`, then fine), `stream` (a stream that
//! fails midway with `{"error", "error_type"}`), `slow` (answers after 3 s). With `require_token`, requests without
//! `Authorization: Bearer hf_…` get 401. Every request is recorded (path, headers, body).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};

/// A 1×1 PNG.
pub const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xDE, 0, 0, 0, 0x0C, 0x49, 0x44, 0x41, 0x54,
    0x08, 0xD7, 0x63, 0xF8, 0xCF, 0xC0, 0, 0, 0x03, 0x01, 0x01, 0, 0x18, 0xDD, 0x8D, 0xB0, 0, 0, 0,
    0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `POST /v1/chat/completions`.
    pub route: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body (JSON when it was JSON, else `{"bytes": n}`).
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The `authorization` header, if any.
    pub fn auth(&self) -> Option<String> {
        self.headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
    }
}

#[derive(Default)]
struct Inner {
    base: String,
    require_token: bool,
    log: Vec<Recorded>,
    attempts: HashMap<String, u32>,
}

/// A running stand-in.
#[derive(Clone, Default)]
pub struct RouterStandIn {
    inner: Arc<Mutex<Inner>>,
    /// Its base URL, `http://127.0.0.1:PORT` (give it to `router_url`).
    pub url: String,
}

impl RouterStandIn {
    /// Starts one on a free loopback port.
    pub async fn start() -> RouterStandIn {
        Self::start_with(false).await
    }

    /// Starts one that answers 401 unless the request carries `Bearer hf_…`.
    pub async fn start_requiring_token() -> RouterStandIn {
        Self::start_with(true).await
    }

    async fn start_with(require_token: bool) -> RouterStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = RouterStandIn {
            inner: Arc::new(Mutex::new(Inner {
                base: url.clone(),
                require_token,
                ..Inner::default()
            })),
            url,
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/hf-inference/models/{*model}", post(hf_inference))
            .route("/files/{name}", get(file))
            .route("/{provider}/{*rest}", post(provider_route))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        state
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().log.clone()
    }

    /// The requests whose route ends with `suffix`.
    pub fn requests_to(&self, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.route.ends_with(suffix))
            .collect()
    }

    /// How many times the error hook `error/<case>` was called.
    pub fn attempts(&self, case: &str) -> u32 {
        self.inner
            .lock()
            .unwrap()
            .attempts
            .get(case)
            .copied()
            .unwrap_or(0)
    }

    /// Records a request; answers 401 if a token is required and missing.
    fn record(&self, route: String, headers: &HeaderMap, body: &Bytes) -> Option<Response> {
        let json = serde_json::from_slice(body).unwrap_or_else(|_| json!({ "bytes": body.len() }));
        let mut inner = self.inner.lock().unwrap();
        inner.log.push(Recorded {
            route,
            headers: headers.clone(),
            body: json,
            at: Instant::now(),
        });
        let authorized = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer hf_"));
        (inner.require_token && !authorized).then(|| {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "error": "Invalid credentials in Authorization header" })),
            )
                .into_response()
        })
    }

    /// The answer of an error hook, or `None` when the case lets the request through.
    fn error_hook(&self, case: &str) -> Option<Response> {
        let attempt = {
            let mut inner = self.inner.lock().unwrap();
            let n = inner.attempts.entry(case.to_string()).or_default();
            *n += 1;
            *n
        };
        let json_error =
            |status: StatusCode, body: Value| (status, axum::Json(body)).into_response();
        Some(match case {
            "404" => json_error(
                StatusCode::NOT_FOUND,
                json!({ "error": "Model error/404 does not exist" }),
            ),
            "422" => json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": ["inputs must be a string", "parameters.width too large"] }),
            ),
            "500" => (StatusCode::INTERNAL_SERVER_ERROR, "plain text failure").into_response(),
            "502" => (
                StatusCode::BAD_GATEWAY,
                [("content-type", "text/html")],
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response(),
            "header" => (
                StatusCode::BAD_REQUEST,
                [
                    ("x-error-message", "told in a header"),
                    ("x-request-id", "standin-42"),
                ],
                "",
            )
                .into_response(),
            "description" => json_error(
                StatusCode::FORBIDDEN,
                json!({ "error": "forbidden", "error_description": "this token cannot call providers" }),
            ),
            "errors" => json_error(
                StatusCode::PAYMENT_REQUIRED,
                json!({ "errors": [{ "message": "credits exhausted" }] }),
            ),
            "openai" => json_error(
                StatusCode::BAD_REQUEST,
                json!({ "error": { "message": "max_tokens is too large", "type": "invalid_request_error", "param": "max_tokens", "code": null } }),
            ),
            "503" => (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "0")],
                axum::Json(json!({ "error": "Model error/503 is currently loading" })),
            )
                .into_response(),
            "loading" if attempt == 1 => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "Model error/loading is currently loading", "estimated_time": 0.05 }),
            ),
            "429-then-ok" if attempt <= 2 => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0")],
                axum::Json(json!({ "error": "Rate limit reached" })),
            )
                .into_response(),
            "429-slow" if attempt == 1 => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                axum::Json(json!({ "error": "Rate limit reached" })),
            )
                .into_response(),
            _ => return None,
        })
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
}

fn png() -> Response {
    ([("content-type", "image/png")], PNG_1X1).into_response()
}

/// A deterministic embedding: `[len, 0.5, -0.25]`.
fn embed(text: &str) -> Value {
    json!([text.len() as f64, 0.5, -0.25])
}

/// The text of a user message's `content`: a string as it is; a list of content parts
/// (vision requests) as its text parts, then `[image/png, 69 bytes]` for each
/// `image_url` part whose `data:` URL decodes (else `[bad image_url …]`), so a test sees
/// from the answer that the image arrived whole.
fn user_text(content: &Value) -> String {
    if let Some(text) = content.as_str() {
        return text.to_string();
    }
    let parts = content.as_array().cloned().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for part in &parts {
        match part["type"].as_str() {
            Some("text") => out.push(part["text"].as_str().unwrap_or("").to_string()),
            Some("image_url") => {
                let url = part["image_url"]["url"].as_str().unwrap_or("");
                let decoded = url
                    .strip_prefix("data:")
                    .and_then(|rest| rest.split_once(";base64,"))
                    .and_then(|(mime, b64)| {
                        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                        Some(format!("[{mime}, {} bytes]", bytes.len()))
                    });
                out.push(decoded.unwrap_or_else(|| format!("[bad image_url {url:.40}]")));
            }
            other => out.push(format!("[unknown part {other:?}]")),
        }
    }
    out.join(" ")
}

/// OpenAI chat completion, plain or streamed.
async fn chat(State(s): State<RouterStandIn>, headers: HeaderMap, body: Bytes) -> Response {
    chat_answer(&s, "/v1/chat/completions".into(), headers, body)
}

fn chat_answer(s: &RouterStandIn, route: String, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = s.record(format!("POST {route}"), &headers, &body) {
        return r;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = request["model"].as_str().unwrap_or("").to_string();
    // `org/model:provider` selects a provider; the hooks go by the model.
    let model = model.split(':').next().unwrap_or("").to_string();
    if let Some(case) = model.strip_prefix("error/") {
        if case != "stream" {
            if let Some(r) = s.error_hook(case) {
                return r;
            }
        }
    }
    let last_user = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| user_text(&m["content"]))
        .unwrap_or_default();
    let text = format!("echo: {last_user}");
    if request["stream"] == true {
        let mut events = vec![
            json!({ "choices": [{ "index": 0, "delta": { "role": "assistant" }, "finish_reason": null }] }),
        ];
        for (i, word) in text.split_inclusive(' ').enumerate() {
            if model == "error/stream" && i == 1 {
                events.push(json!({ "error": "stream failed", "error_type": "generation" }));
                break;
            }
            events.push(json!({ "choices": [{ "index": 0, "delta": { "content": word }, "finish_reason": null }] }));
        }
        events.push(json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }],
                            "usage": { "prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7 } }));
        let mut sse: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        sse.push_str("data: [DONE]\n\n");
        return ([("content-type", "text/event-stream")], Body::from(sse)).into_response();
    }
    axum::Json(json!({
        "id": "standin-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7 },
    }))
    .into_response()
}

/// The hf-inference provider's routes.
async fn hf_inference(
    State(s): State<RouterStandIn>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if model.ends_with("/v1/chat/completions") {
        return chat_answer(&s, format!("/hf-inference/models/{model}"), headers, body);
    }
    if let Some(r) = s.record(
        format!("POST /hf-inference/models/{model}"),
        &headers,
        &body,
    ) {
        return r;
    }
    if model == "error/slow" {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        return png();
    }
    if let Some(case) = model.strip_prefix("error/") {
        if let Some(r) = s.error_hook(case) {
            return r;
        }
    }
    if let Some(_m) = model.strip_suffix("/pipeline/feature-extraction") {
        let request: Value = serde_json::from_slice(&body).unwrap();
        return match &request["inputs"] {
            Value::String(t) => axum::Json(embed(t)).into_response(),
            Value::Array(ts) => axum::Json(Value::Array(
                ts.iter().map(|t| embed(t.as_str().unwrap())).collect(),
            ))
            .into_response(),
            _ => (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({ "error": "inputs must be a string or a list" })),
            )
                .into_response(),
        };
    }
    let ct = content_type(&headers);
    if ct.starts_with("audio/") {
        return axum::Json(json!({ "text": format!("{} bytes of speech", body.len()) }))
            .into_response();
    }
    if ct.starts_with("image/") {
        return axum::Json(
            json!([{ "label": "tabby cat", "score": 0.9 }, { "label": "tiger", "score": 0.1 }]),
        )
        .into_response();
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "body is not JSON" })),
            )
                .into_response()
        }
    };
    let Some(inputs) = request["inputs"].as_str() else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "error": "inputs is required" })),
        )
            .into_response();
    };
    // Binary tasks with parameters send their bytes base64-encoded.
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(inputs) {
        if bytes.starts_with(b"\x89PNG") {
            let top_k = request["parameters"]["top_k"].as_u64().unwrap_or(2) as usize;
            let labels = [
                json!({ "label": "tabby cat", "score": 0.9 }),
                json!({ "label": "tiger", "score": 0.1 }),
            ];
            return axum::Json(Value::Array(labels[..top_k.min(2)].to_vec())).into_response();
        }
        if bytes.starts_with(b"RIFF") {
            return axum::Json(
                json!({ "text": format!("{} bytes of speech, with parameters", bytes.len()) }),
            )
            .into_response();
        }
    }
    // Text to image asks for an image (`accept: image/png`); text generation for JSON.
    let accept = headers
        .get("accept")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if accept.starts_with("image/") {
        return png();
    }
    axum::Json(json!([{ "generated_text": format!("{inputs} and so on") }])).into_response()
}

/// Provider routes other than hf-inference.
async fn provider_route(
    State(s): State<RouterStandIn>,
    Path((provider, rest)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if rest == "v1/chat/completions" {
        return chat_answer(&s, format!("/{provider}/{rest}"), headers, body);
    }
    if let Some(r) = s.record(format!("POST /{provider}/{rest}"), &headers, &body) {
        return r;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let base = s.inner.lock().unwrap().base.clone();
    match (provider.as_str(), rest.as_str()) {
        (_, "v1/images/generations") => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(PNG_1X1);
            axum::Json(json!({ "data": [{ "b64_json": b64 }] })).into_response()
        }
        ("fal-ai", _) if request.get("audio_url").is_some() => {
            let url = request["audio_url"].as_str().unwrap();
            let b64 = url.split_once(";base64,").unwrap().1;
            let n = base64::engine::general_purpose::STANDARD.decode(b64).unwrap().len();
            axum::Json(json!({ "text": format!("{n} bytes of speech via fal") })).into_response()
        }
        ("fal-ai", _) => {
            axum::Json(json!({ "images": [{ "url": format!("{base}/files/out.png"), "content_type": "image/png" }] }))
                .into_response()
        }
        ("replicate", _) if rest.ends_with("/predictions") => {
            if headers.get("prefer").and_then(|h| h.to_str().ok()) != Some("wait") {
                return axum::Json(json!({ "status": "starting", "output": null })).into_response();
            }
            axum::Json(json!({ "status": "succeeded", "output": [format!("{base}/files/out.png")] }))
                .into_response()
        }
        (_, "v1/embeddings") | ("deepinfra", "v1/openai/embeddings") => {
            let inputs: Vec<String> = match &request["input"] {
                Value::String(t) => vec![t.clone()],
                Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap().to_string()).collect(),
                _ => vec![],
            };
            // Listed in reverse, with their index, as servers may.
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .rev()
                .map(|(i, t)| json!({ "object": "embedding", "index": i, "embedding": embed(t) }))
                .collect();
            axum::Json(json!({ "object": "list", "data": data, "model": request["model"] })).into_response()
        }
        (_, "v1/completions") => axum::Json(json!({
            "choices": [{ "index": 0, "text": format!("{} and so on", request["prompt"].as_str().unwrap_or("")), "finish_reason": "stop" }]
        }))
        .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": { "message": format!("no route /{provider}/{rest}"), "type": "not_found" } })),
        )
            .into_response(),
    }
}

async fn file(
    State(s): State<RouterStandIn>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.record(format!("GET /files/{name}"), &headers, &Bytes::new());
    png()
}
