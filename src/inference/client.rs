//! The HTTP side of [`super::InferenceNode`]: request shapes per task and provider,
//! response shapes, SSE token streams, errors, retries.

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use serde_json::{json, Value as Json};

use super::{ChatMessage, Endpoint, Label, Settings, Task};
use crate::hf::is_hf_host;
use crate::media::{Audio, Image};
use crate::node::NodeContext;
use crate::value::Value;
use crate::Error;

/// How a request body is sent.
enum Body {
    Json(Json),
    Bytes(Vec<u8>, String),
    Multipart(Vec<u8>, String, String),
}

/// The most we wait because of a Retry-After header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

fn remote(s: &Settings, endpoint: &str, status: Option<u16>, message: impl Into<String>) -> Error {
    Error::Remote {
        node: s.node.clone(),
        service: s.service(),
        endpoint: endpoint.to_string(),
        status,
        message: message.into(),
    }
}

/// The server's own message from an error response: `X-Error-Message`, then `{"error":
/// "…"}`, `{"error": ["…"]}`, `{"error": {"message": "…"}}`, `{"error_description"}`,
/// `{"errors": [{"message"}]}`, `{"detail": …}`, else the text (unless it is HTML).
pub fn error_message(header: Option<&str>, body: &[u8]) -> String {
    if let Some(h) = header.filter(|h| !h.is_empty()) {
        return h.to_string();
    }
    let text = String::from_utf8_lossy(body);
    if let Ok(json) = serde_json::from_slice::<Json>(body) {
        let pick = |v: &Json| -> Option<String> {
            match v {
                Json::String(s) => Some(s.clone()),
                Json::Array(items) => Some(
                    items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Json::Object(o) => o
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
                    .or_else(|| Some(v.to_string())),
                _ => None,
            }
        };
        let mut message = json.get("error").and_then(pick);
        if let Some(desc) = json.get("error_description").and_then(|d| d.as_str()) {
            message = Some(match message {
                Some(m) => format!("{m}: {desc}"),
                None => desc.to_string(),
            });
        }
        if message.is_none() {
            message = json
                .get("errors")
                .and_then(|e| e.as_array())
                .and_then(|e| e.first())
                .and_then(|e| e.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_string);
        }
        if message.is_none() {
            message = json.get("detail").and_then(pick);
        }
        if let Some(m) = message {
            return m;
        }
    }
    if text.trim_start().starts_with('<') {
        return "(an HTML error page)".into();
    }
    text.chars().take(2000).collect()
}

/// The delay a `Retry-After` header asks for (seconds form), capped.
pub fn retry_after(header: Option<&str>) -> Option<Duration> {
    let secs: f64 = header?.trim().parse().ok()?;
    (secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER))
}

/// The URL and body for this task, input and endpoint.
fn request(s: &Settings, input: &Value) -> Result<(String, Body), Error> {
    let provider = s.provider.as_deref();
    let model_with_provider = match provider {
        Some(p) => format!("{}:{p}", s.model),
        None => s.model.clone(),
    };
    let p = &s.params;
    let text = || -> Result<String, Error> {
        input
            .to_owned_value::<String>()
            .and_then(Result::ok)
            .ok_or_else(|| Error::WrongValueType {
                node: s.node.clone(),
                port: "input".into(),
                expected: "String",
                found: input.port_type().name(),
            })
    };
    let openai_extra = |mut body: Json| {
        for (k, v) in [
            ("temperature", p.temperature.map(|v| json!(v))),
            ("top_p", p.top_p.map(|v| json!(v))),
            ("max_tokens", p.max_tokens.map(|v| json!(v))),
            ("seed", p.seed.map(|v| json!(v))),
            ("stop", (!p.stop.is_empty()).then(|| json!(p.stop))),
        ] {
            if let Some(v) = v {
                body[k] = v;
            }
        }
        for (k, v) in &p.extra {
            body[k.as_str()] = v.clone();
        }
        body
    };
    let (base, router) = match &s.endpoint {
        Endpoint::Router { url } => (url.clone(), true),
        Endpoint::OpenAi { url } => (url.clone(), false),
    };
    Ok(match s.task {
        Task::ChatCompletion => {
            let mut messages = match input.to_owned_value::<Vec<ChatMessage>>() {
                Some(Ok(m)) => m,
                _ => vec![ChatMessage::user(text()?)],
            };
            if let Some(system) = &p.system {
                messages.insert(0, ChatMessage::system(system.clone()));
            }
            let body = openai_extra(
                json!({ "model": if router { model_with_provider } else { s.model.clone() },
                "messages": messages, "stream": s.stream }),
            );
            let url = if router {
                format!("{base}/v1/chat/completions")
            } else {
                format!("{base}/chat/completions")
            };
            (url, Body::Json(body))
        }
        Task::TextGeneration if !router => {
            let body = openai_extra(json!({ "model": s.model, "prompt": text()? }));
            (format!("{base}/completions"), Body::Json(body))
        }
        Task::TextGeneration => {
            let mut parameters = json!({});
            if let Some(v) = p.max_tokens {
                parameters["max_new_tokens"] = json!(v);
            }
            for (k, v) in [("temperature", p.temperature), ("top_p", p.top_p)] {
                if let Some(v) = v {
                    parameters[k] = json!(v);
                }
            }
            if let Some(k) = p.top_k {
                parameters["top_k"] = json!(k);
            }
            if let Some(seed) = p.seed {
                parameters["seed"] = json!(seed);
            }
            if !p.stop.is_empty() {
                parameters["stop"] = json!(p.stop);
            }
            let url = format!(
                "{base}/{}/models/{}",
                provider.unwrap_or("hf-inference"),
                s.model
            );
            (
                url,
                Body::Json(json!({ "inputs": text()?, "parameters": parameters })),
            )
        }
        Task::TextToImage => {
            let prompt = text()?;
            match (router, provider.unwrap_or("hf-inference")) {
                (true, "hf-inference") => {
                    let mut parameters = json!({});
                    for (k, v) in [
                        ("width", p.width.map(|v| json!(v))),
                        ("height", p.height.map(|v| json!(v))),
                        ("seed", p.seed.map(|v| json!(v))),
                        (
                            "negative_prompt",
                            p.negative_prompt.as_ref().map(|v| json!(v)),
                        ),
                        (
                            "num_inference_steps",
                            p.num_inference_steps.map(|v| json!(v)),
                        ),
                        ("guidance_scale", p.guidance_scale.map(|v| json!(v))),
                    ] {
                        if let Some(v) = v {
                            parameters[k] = v;
                        }
                    }
                    (
                        format!("{base}/hf-inference/models/{}", s.model),
                        Body::Json(json!({ "inputs": prompt, "parameters": parameters })),
                    )
                }
                (true, "fal-ai") => {
                    let mut body = json!({ "prompt": prompt });
                    if let (Some(w), Some(h)) = (p.width, p.height) {
                        body["image_size"] = json!({ "width": w, "height": h });
                    }
                    if let Some(seed) = p.seed {
                        body["seed"] = json!(seed);
                    }
                    (format!("{base}/fal-ai/{}", s.model), Body::Json(body))
                }
                (true, other) => {
                    let format = if other == "together" {
                        "base64"
                    } else {
                        "b64_json"
                    };
                    let mut body =
                        json!({ "prompt": prompt, "model": s.model, "response_format": format });
                    if let (Some(w), Some(h)) = (p.width, p.height) {
                        body["width"] = json!(w);
                        body["height"] = json!(h);
                    }
                    (
                        format!("{base}/{other}/v1/images/generations"),
                        Body::Json(body),
                    )
                }
                (false, _) => {
                    let mut body = json!({ "prompt": prompt, "model": s.model, "response_format": "b64_json" });
                    if let (Some(w), Some(h)) = (p.width, p.height) {
                        body["size"] = json!(format!("{w}x{h}"));
                    }
                    (format!("{base}/images/generations"), Body::Json(body))
                }
            }
        }
        Task::FeatureExtraction => {
            let text = text()?;
            match (router, provider.unwrap_or("hf-inference")) {
                (true, "hf-inference") => (
                    format!(
                        "{base}/hf-inference/models/{}/pipeline/feature-extraction",
                        s.model
                    ),
                    Body::Json(json!({ "inputs": text })),
                ),
                (true, other) => (
                    format!("{base}/{other}/v1/embeddings"),
                    Body::Json(json!({ "input": text, "model": s.model })),
                ),
                (false, _) => (
                    format!("{base}/embeddings"),
                    Body::Json(json!({ "input": text, "model": s.model })),
                ),
            }
        }
        Task::AutomaticSpeechRecognition => {
            let audio = input
                .downcast_ref::<Audio>()
                .ok_or_else(|| Error::WrongValueType {
                    node: s.node.clone(),
                    port: "audio".into(),
                    expected: "Audio",
                    found: input.port_type().name(),
                })?;
            if router {
                let url = format!(
                    "{base}/{}/models/{}",
                    provider.unwrap_or("hf-inference"),
                    s.model
                );
                (
                    url,
                    Body::Bytes(audio.bytes().to_vec(), audio.mime().to_string()),
                )
            } else {
                let name = audio.name().unwrap_or("audio.wav").to_string();
                (
                    format!("{base}/audio/transcriptions"),
                    Body::Multipart(audio.bytes().to_vec(), audio.mime().to_string(), name),
                )
            }
        }
        Task::ImageClassification => {
            let image = input
                .downcast_ref::<Image>()
                .ok_or_else(|| Error::WrongValueType {
                    node: s.node.clone(),
                    port: "image".into(),
                    expected: "Image",
                    found: input.port_type().name(),
                })?;
            let url = format!(
                "{base}/{}/models/{}",
                provider.unwrap_or("hf-inference"),
                s.model
            );
            (
                url,
                Body::Bytes(image.bytes().to_vec(), image.mime().to_string()),
            )
        }
    })
}

/// Whether the token goes with a request to `url`.
fn token_for<'a>(s: &'a Settings, url: &str) -> Option<&'a str> {
    let token = s.token.as_ref()?;
    (s.token_explicit || is_hf_host(url)).then(|| token.expose())
}

/// Calls the endpoint for one input value and returns the output value.
pub(crate) async fn call(s: &Settings, ctx: &NodeContext, input: Value) -> Result<Value, Error> {
    let (url, body) = request(s, &input)?;
    let endpoint = url
        .split_once("://")
        .map_or(url.as_str(), |(_, rest)| {
            rest.split_once('/').map_or("/", |(_, p)| p)
        })
        .to_string();
    let endpoint = format!("/{endpoint}");
    let mut attempt = 0;
    let response = loop {
        let mut request = s.http.post(&url).timeout(s.request_timeout);
        if let Some(token) = token_for(s, &url) {
            request = request.bearer_auth(token);
        }
        request = match &body {
            Body::Json(json) => {
                let accept = if s.task == Task::TextToImage {
                    "image/png, application/json"
                } else {
                    "application/json, text/event-stream"
                };
                request.header("accept", accept).json(json)
            }
            Body::Bytes(bytes, mime) => request
                .header("content-type", mime.as_str())
                .body(bytes.clone()),
            Body::Multipart(bytes, mime, name) => {
                let part = reqwest::multipart::Part::bytes(bytes.clone())
                    .file_name(name.clone())
                    .mime_str(mime)
                    .map_err(|e| remote(s, &endpoint, None, e.to_string()))?;
                request.multipart(
                    reqwest::multipart::Form::new()
                        .part("file", part)
                        .text("model", s.model.clone()),
                )
            }
        };
        let sent = tokio::select! {
            r = request.send() => r,
            _ = ctx.cancelled() => return Err(Error::Cancelled { node: s.node.clone() }),
        };
        let retry_in = match &sent {
            Ok(r) if r.status().as_u16() == 429 || r.status().as_u16() == 503 => Some(retry_after(
                r.headers().get("retry-after").and_then(|h| h.to_str().ok()),
            )),
            Err(e) if e.is_connect() => Some(None),
            _ => None,
        };
        match retry_in {
            Some(wait) if attempt < s.retries => {
                attempt += 1;
                let wait = wait
                    .unwrap_or_else(|| Duration::from_millis(500 * (1 << (attempt - 1).min(6))));
                ctx.progress(
                    None,
                    format!(
                        "retrying in {:.1} s (attempt {attempt} of {})",
                        wait.as_secs_f64(),
                        s.retries
                    ),
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ctx.cancelled() => return Err(Error::Cancelled { node: s.node.clone() }),
                }
            }
            _ => break sent,
        }
    };
    let response = response.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out".to_string()
        } else {
            crate::event::error_chain(&e)
        };
        remote(s, &endpoint, None, what)
    })?;
    let status = response.status();
    if !status.is_success() {
        let header = response
            .headers()
            .get("x-error-message")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await.unwrap_or_default();
        return Err(remote(
            s,
            &endpoint,
            Some(status.as_u16()),
            error_message(header.as_deref(), &bytes),
        ));
    }
    let is_stream = response
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if s.task == Task::ChatCompletion && is_stream {
        let text = read_stream(s, ctx, &endpoint, response).await?;
        return encode(s, text);
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = tokio::select! {
        b = response.bytes() => b.map_err(|e| remote(s, &endpoint, Some(status.as_u16()), format!("reading the response: {e}")))?,
        _ = ctx.cancelled() => return Err(Error::Cancelled { node: s.node.clone() }),
    };
    parse(s, &endpoint, &content_type, &bytes).await
}

fn encode<T: crate::PortValue>(s: &Settings, value: T) -> Result<Value, Error> {
    Value::new(value).map_err(|source| Error::Codec {
        node: s.node.clone(),
        port: "output".into(),
        type_name: std::any::type_name::<T>(),
        source,
    })
}

fn bad_shape(s: &Settings, endpoint: &str, what: &str, body: &[u8]) -> Error {
    let shown: String = String::from_utf8_lossy(body).chars().take(300).collect();
    remote(
        s,
        endpoint,
        None,
        format!("unexpected response: expected {what}, got {shown}"),
    )
}

async fn parse(
    s: &Settings,
    endpoint: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<Value, Error> {
    let json = || serde_json::from_slice::<Json>(bytes).ok();
    match s.task {
        Task::ChatCompletion => {
            let text = json()
                .and_then(|j| {
                    j["choices"][0]["message"]["content"]
                        .as_str()
                        .map(str::to_string)
                })
                .ok_or_else(|| bad_shape(s, endpoint, "a chat completion", bytes))?;
            encode(s, text)
        }
        Task::TextGeneration => {
            let j = json().ok_or_else(|| bad_shape(s, endpoint, "JSON", bytes))?;
            let text = j["choices"][0]["text"]
                .as_str()
                .or_else(|| j[0]["generated_text"].as_str())
                .or_else(|| j["generated_text"].as_str())
                .map(str::to_string)
                .ok_or_else(|| bad_shape(s, endpoint, "generated text", bytes))?;
            encode(s, text)
        }
        Task::TextToImage => {
            if content_type.starts_with("image/") {
                let mime = content_type
                    .split(';')
                    .next()
                    .unwrap_or("image/png")
                    .to_string();
                return encode(s, Image::new(bytes.to_vec(), mime));
            }
            let j = json().ok_or_else(|| bad_shape(s, endpoint, "an image or JSON", bytes))?;
            if let Some(b64) = j["data"][0]["b64_json"].as_str() {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| bad_shape(s, endpoint, &format!("base64 ({e})"), bytes))?;
                return encode(s, Image::new(data, sniff_image(&[], "image/png")));
            }
            let url = j["data"][0]["url"]
                .as_str()
                .or_else(|| j["images"][0]["url"].as_str())
                .or_else(|| j["output"].as_str())
                .or_else(|| j["output"][0].as_str())
                .ok_or_else(|| bad_shape(s, endpoint, "b64_json or an image URL", bytes))?;
            // Fetched without credentials: the URL is the provider's file host.
            let response = s
                .http
                .get(url)
                .timeout(s.request_timeout)
                .send()
                .await
                .map_err(|e| remote(s, url, None, format!("downloading the image: {e}")))?;
            if !response.status().is_success() {
                return Err(remote(
                    s,
                    url,
                    Some(response.status().as_u16()),
                    "downloading the image failed",
                ));
            }
            let mime = response
                .headers()
                .get("content-type")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("image/png")
                .to_string();
            let data = response
                .bytes()
                .await
                .map_err(|e| remote(s, url, None, e.to_string()))?;
            encode(s, Image::new(data.to_vec(), sniff_image(&data, &mime)))
        }
        Task::FeatureExtraction => {
            let j = json().ok_or_else(|| bad_shape(s, endpoint, "JSON", bytes))?;
            let vector = j["data"][0]["embedding"]
                .as_array()
                .or_else(|| {
                    j[0].as_array()
                        .filter(|a| a.first().is_some_and(Json::is_array))
                        .and_then(|_| j[0].as_array())
                })
                .or_else(|| {
                    j.as_array()
                        .filter(|a| a.first().is_some_and(Json::is_array))
                        .and_then(|a| a[0].as_array())
                })
                .or_else(|| j.as_array())
                .ok_or_else(|| bad_shape(s, endpoint, "an embedding", bytes))?;
            let floats: Option<Vec<f32>> = vector
                .iter()
                .map(|v| v.as_f64().map(|f| f as f32))
                .collect();
            encode(
                s,
                floats.ok_or_else(|| bad_shape(s, endpoint, "a vector of numbers", bytes))?,
            )
        }
        Task::AutomaticSpeechRecognition => {
            let text = json()
                .and_then(|j| j["text"].as_str().map(str::to_string))
                .ok_or_else(|| bad_shape(s, endpoint, "{\"text\": …}", bytes))?;
            encode(s, text)
        }
        Task::ImageClassification => {
            let labels: Vec<Label> = serde_json::from_slice(bytes)
                .map_err(|_| bad_shape(s, endpoint, "[{label, score}]", bytes))?;
            encode(s, labels)
        }
    }
}

fn sniff_image(bytes: &[u8], fallback: &str) -> String {
    if bytes.starts_with(b"\x89PNG") {
        "image/png".into()
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        "image/jpeg".into()
    } else {
        fallback.split(';').next().unwrap_or(fallback).to_string()
    }
}

/// Reads an OpenAI chat stream (`data: {chunk}` … `data: [DONE]`), reporting tokens.
async fn read_stream(
    s: &Settings,
    ctx: &NodeContext,
    endpoint: &str,
    response: reqwest::Response,
) -> Result<String, Error> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut text = String::new();
    let mut chunks = 0usize;
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = ctx.cancelled() => return Err(Error::Cancelled { node: s.node.clone() }),
        };
        let Some(bytes) = next else {
            return Err(remote(s, endpoint, None, "the stream ended before [DONE]"));
        };
        let bytes =
            bytes.map_err(|e| remote(s, endpoint, None, format!("the stream broke: {e}")))?;
        buffer.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buffer.find('\n') {
            let line = buffer[..end].trim_end_matches('\r').to_string();
            buffer.drain(..=end);
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                return Ok(text);
            }
            let chunk: Json = serde_json::from_str(data)
                .map_err(|e| remote(s, endpoint, None, format!("bad stream chunk: {e}")))?;
            if let Some(error) = chunk.get("error") {
                return Err(remote(
                    s,
                    endpoint,
                    None,
                    error_message(None, error.to_string().as_bytes()).replace('"', ""),
                ));
            }
            if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
                text.push_str(delta);
                chunks += 1;
                ctx.progress(None, format!("{chunks} tokens"));
                ctx.partial(json!({ "text": text }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_shape_gives_the_servers_message() {
        assert_eq!(error_message(Some("from header"), b"{}"), "from header");
        assert_eq!(
            error_message(None, br#"{"error": "Model x does not exist"}"#),
            "Model x does not exist"
        );
        assert_eq!(error_message(None, br#"{"error": ["a", "b"]}"#), "a; b");
        assert_eq!(
            error_message(None, br#"{"error": {"message": "bad", "type": "x"}}"#),
            "bad"
        );
        assert_eq!(
            error_message(None, br#"{"error": "e", "error_description": "why"}"#),
            "e: why"
        );
        assert_eq!(
            error_message(None, br#"{"errors": [{"message": "m"}]}"#),
            "m"
        );
        assert_eq!(
            error_message(None, br#"{"detail": "missing field"}"#),
            "missing field"
        );
        assert_eq!(
            error_message(None, b"plain text failure"),
            "plain text failure"
        );
        assert_eq!(
            error_message(None, b"<html><body>502</body></html>"),
            "(an HTML error page)"
        );
    }

    #[test]
    fn retry_after_is_read_and_capped() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(Some("3600")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
    }
}
