//! Request and response shapes per task and per kind of endpoint: the Hugging Face
//! router (one adapter per provider where the providers differ), OpenAI-compatible
//! servers and Inference Endpoints.

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use super::ports::{ChatAnswer, ChatMessage, ChatRequest, Label, Usage};
use super::{Endpoint, Settings, Task};
use crate::value::media::{sniff_mime, Audio, Image};
use crate::value::Value;
use crate::Error;

/// How a request body is sent.
pub(crate) enum Body {
    Json(Json),
    /// Raw bytes with their content type (binary hf-inference tasks).
    Bytes(Vec<u8>, String),
    /// An OpenAI audio upload: the file and the other form fields.
    Multipart {
        bytes: Vec<u8>,
        mime: String,
        file_name: String,
        fields: Vec<(String, String)>,
    },
}

/// One HTTP request for one input.
pub(crate) struct Request {
    pub url: String,
    pub body: Body,
    pub accept: &'static str,
    /// Extra headers (`Prefer: wait` for Replicate).
    pub headers: Vec<(&'static str, &'static str)>,
    /// Whether the answer is a token stream.
    pub stream: bool,
    /// For progress fractions of a stream.
    pub max_tokens: Option<u32>,
    /// Whether a chat request carries images (a server's error then says so).
    pub has_images: bool,
}

/// A parsed answer, before it is split into output ports.
#[derive(Debug)]
pub(crate) enum Answer {
    Chat(ChatAnswer),
    Text(String),
    Image(Image),
    /// An image to download (without credentials) from the provider's file host.
    ImageUrl(String),
    Embedding(Vec<f32>),
    Embeddings(Vec<Vec<f32>>),
    Labels(Vec<Label>),
}

/// Where a task's hf-inference-shaped requests go: the router's `hf-inference` provider
/// or an Inference Endpoint's root.
fn hf_base(s: &Settings, base: &str) -> Option<String> {
    match &s.endpoint {
        Endpoint::Router { .. } if s.provider_or("hf-inference") == "hf-inference" => {
            Some(format!("{base}/hf-inference/models/{}", s.model))
        }
        Endpoint::Dedicated { .. } => Some(base.to_string()),
        _ => None,
    }
}

fn unsupported(s: &Settings, what: &str) -> Error {
    let task = serde_json::to_value(s.task).unwrap_or_default();
    s.remote(
        &format!("({} not sent)", task.as_str().unwrap_or("request")),
        None,
        format!(
            "{} is not supported by daggr for {what}",
            match &s.endpoint {
                Endpoint::Router { .. } => format!("provider {}", s.provider_or("hf-inference")),
                Endpoint::OpenAi(url) => format!("the OpenAI-compatible API ({url})"),
                Endpoint::Dedicated(url) => format!("the Inference Endpoint {url}"),
            }
        ),
    )
}

/// Adds `extra` fields to `body`; a `null` extra removes the field.
fn merge(body: &mut Map<String, Json>, extra: &Map<String, Json>) {
    for (k, v) in extra {
        if v.is_null() {
            body.remove(k);
        } else {
            body.insert(k.clone(), v.clone());
        }
    }
}

fn put(map: &mut Map<String, Json>, key: &str, value: Option<Json>) {
    if let Some(v) = value {
        map.insert(key.to_string(), v);
    }
}

fn wrong_input(s: &Settings, port: &str, expected: &'static str, found: &Value) -> Error {
    Error::WrongValueType {
        node: s.node.clone(),
        port: port.to_string(),
        expected,
        found: found.port_type().name(),
    }
}

/// The chat request: the input (a prompt, a conversation or a whole [`ChatRequest`]) with
/// the node's settings as defaults, and its system prompt first unless the conversation
/// has one.
fn chat_request(s: &Settings, inputs: &[Value]) -> Result<ChatRequest, Error> {
    let input = &inputs[0];
    let mut request = if let [prompt, image] = inputs {
        // `vision_chat`: a prompt and an image, sent as one user message.
        let text = prompt
            .downcast_ref::<String>()
            .ok_or_else(|| wrong_input(s, "prompt", "String", prompt))?;
        let image = image
            .downcast_ref::<Image>()
            .ok_or_else(|| wrong_input(s, "image", "Image", image))?;
        ChatRequest::new(vec![ChatMessage::user_with_images(
            text.clone(),
            [image.clone()],
        )])
    } else if let Some(text) = input.downcast_ref::<String>() {
        ChatRequest::prompt(text.clone())
    } else if let Some(messages) = input.downcast_ref::<Vec<ChatMessage>>() {
        ChatRequest::new(messages.clone())
    } else if let Some(request) = input.downcast_ref::<ChatRequest>() {
        request.clone()
    } else {
        return Err(wrong_input(
            s,
            "prompt",
            "String, Vec<ChatMessage> or ChatRequest",
            input,
        ));
    };
    let p = &s.params;
    if let Some(system) = &p.system {
        if !request.messages.iter().any(|m| m.role == "system") {
            request
                .messages
                .insert(0, ChatMessage::system(system.clone()));
        }
    }
    request.temperature = request.temperature.or(p.temperature);
    request.top_p = request.top_p.or(p.top_p);
    request.max_tokens = request.max_tokens.or(p.max_tokens);
    request.seed = request.seed.or(p.seed);
    if request.stop.is_empty() {
        request.stop = p.stop.clone();
    }
    Ok(request)
}

/// The largest image sent inline in a chat request (20 MiB). It is the limit OpenAI
/// documents for an image input, which OpenAI-compatible providers follow; base64 makes
/// it about 27 MiB of request body, around where servers start refusing bodies. A larger
/// image is better downscaled before the node, so it is refused before anything is sent.
pub(crate) const MAX_INLINE_IMAGE_BYTES: usize = 20 * 1024 * 1024;

/// The conversation as sent: plain string `content` for a message without images (the
/// shape every chat server accepts), else a list of content parts, the text first and
/// then each image as an `image_url` part holding a `data:` URL. `port` names the input
/// the images came from, for errors.
fn wire_messages(s: &Settings, port: &str, messages: &[ChatMessage]) -> Result<Json, Error> {
    let not_sent = |message: String| s.remote("(chat-completion not sent)", None, message);
    let mut wire = Vec::with_capacity(messages.len());
    for m in messages {
        if m.images.is_empty() {
            wire.push(json!({ "role": m.role, "content": m.content }));
            continue;
        }
        let mut parts = Vec::with_capacity(m.images.len() + 1);
        if !m.content.is_empty() {
            parts.push(json!({ "type": "text", "text": m.content }));
        }
        for image in &m.images {
            let size = image.bytes().len();
            if size > MAX_INLINE_IMAGE_BYTES {
                return Err(not_sent(format!(
                    "input `{port}`: the image is {:.1} MiB, more than the {} MiB an image \
                     may have when sent inline in a chat request; downscale it first",
                    size as f64 / (1024.0 * 1024.0),
                    MAX_INLINE_IMAGE_BYTES / (1024 * 1024)
                )));
            }
            // The declared MIME type, or the one the bytes show (an `Image` read from a
            // file with an unknown extension is `application/octet-stream`).
            let mime = if image.mime().starts_with("image/") {
                image.mime().to_string()
            } else {
                sniff_image(image.bytes(), image.mime())
            };
            if !mime.starts_with("image/") {
                return Err(not_sent(format!(
                    "input `{port}`: the image's MIME type is `{}` and its bytes are not \
                     PNG, JPEG or WebP; give the Image an image/* MIME type",
                    image.mime()
                )));
            }
            let b64 = base64::engine::general_purpose::STANDARD.encode(image.bytes());
            parts.push(json!({
                "type": "image_url",
                "image_url": { "url": format!("data:{mime};base64,{b64}") },
            }));
        }
        wire.push(json!({ "role": m.role, "content": parts }));
    }
    Ok(Json::Array(wire))
}

/// The OpenAI sampling fields of a request.
fn sampling(body: &mut Map<String, Json>, r: &ChatRequest) {
    put(body, "temperature", r.temperature.map(|v| json!(v)));
    put(body, "top_p", r.top_p.map(|v| json!(v)));
    put(body, "max_tokens", r.max_tokens.map(|v| json!(v)));
    put(body, "seed", r.seed.map(|v| json!(v)));
    put(body, "stop", (!r.stop.is_empty()).then(|| json!(r.stop)));
}

/// The URL, body and headers for one input.
pub(crate) fn build(s: &Settings, inputs: &[Value]) -> Result<Request, Error> {
    // Every task but vision chat has one input.
    let input = &inputs[0];
    let base = s.endpoint.url().to_string();
    let p = &s.params;
    let text = |port: &str| -> Result<String, Error> {
        input
            .downcast_ref::<String>()
            .cloned()
            .ok_or_else(|| wrong_input(s, port, "String", input))
    };
    let json_request = |url: String, body: Map<String, Json>| Request {
        url,
        body: Body::Json(Json::Object(body)),
        accept: "application/json",
        headers: Vec::new(),
        stream: false,
        max_tokens: None,
        has_images: false,
    };
    Ok(match s.task {
        Task::ChatCompletion => {
            let r = chat_request(s, inputs)?;
            let (url, model) = match (&s.endpoint, &s.provider_model, &s.provider) {
                // Server-side provider selection: `org/model` or `org/model:provider`.
                (Endpoint::Router { .. }, None, provider) => (
                    format!("{base}/v1/chat/completions"),
                    match provider {
                        Some(p) => format!("{}:{p}", s.model),
                        None => s.model.clone(),
                    },
                ),
                // The provider's own model id, on the provider's route.
                (Endpoint::Router { .. }, Some(id), _) => match s.provider_or("hf-inference") {
                    "hf-inference" => (
                        format!("{base}/hf-inference/models/{id}/v1/chat/completions"),
                        id.clone(),
                    ),
                    provider => (format!("{base}/{provider}/v1/chat/completions"), id.clone()),
                },
                (Endpoint::OpenAi { .. }, _, _) => {
                    (format!("{base}/chat/completions"), s.model.clone())
                }
                (Endpoint::Dedicated { .. }, _, _) => {
                    (format!("{base}/v1/chat/completions"), s.model.clone())
                }
            };
            let mut body = Map::new();
            body.insert("model".into(), json!(model));
            let port = match inputs.len() {
                2 => "image",
                _ if input.downcast_ref::<ChatRequest>().is_some() => "request",
                _ => "messages",
            };
            body.insert("messages".into(), wire_messages(s, port, &r.messages)?);
            body.insert("stream".into(), json!(s.stream));
            if s.stream {
                body.insert("stream_options".into(), json!({ "include_usage": true }));
            }
            sampling(&mut body, &r);
            merge(&mut body, &p.extra);
            Request {
                has_images: r.messages.iter().any(|m| !m.images.is_empty()),
                accept: if s.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
                stream: s.stream,
                max_tokens: r.max_tokens,
                ..json_request(url, body)
            }
        }
        Task::TextGeneration => {
            let prompt = text("prompt")?;
            let mut request = if let Some(hf) = hf_base(s, &base) {
                // The hf-inference / TGI shape.
                let mut parameters = Map::new();
                put(
                    &mut parameters,
                    "max_new_tokens",
                    p.max_tokens.map(|v| json!(v)),
                );
                put(
                    &mut parameters,
                    "temperature",
                    p.temperature.map(|v| json!(v)),
                );
                put(&mut parameters, "top_p", p.top_p.map(|v| json!(v)));
                put(&mut parameters, "top_k", p.top_k.map(|v| json!(v)));
                put(&mut parameters, "seed", p.seed.map(|v| json!(v)));
                put(
                    &mut parameters,
                    "stop",
                    (!p.stop.is_empty()).then(|| json!(p.stop)),
                );
                merge(&mut parameters, &p.extra);
                let mut body = Map::new();
                body.insert("inputs".into(), json!(prompt));
                body.insert("parameters".into(), Json::Object(parameters));
                if s.stream {
                    body.insert("stream".into(), json!(true));
                }
                json_request(hf, body)
            } else {
                // OpenAI completions, on the provider's route or the server.
                let url = match &s.endpoint {
                    Endpoint::Router { .. } => {
                        format!("{base}/{}/v1/completions", s.provider_or("hf-inference"))
                    }
                    _ => format!("{base}/completions"),
                };
                let mut body = Map::new();
                body.insert("model".into(), json!(s.provider_model_id()));
                body.insert("prompt".into(), json!(prompt));
                body.insert("stream".into(), json!(s.stream));
                let r = ChatRequest {
                    temperature: p.temperature,
                    top_p: p.top_p,
                    max_tokens: p.max_tokens,
                    seed: p.seed,
                    stop: p.stop.clone(),
                    ..ChatRequest::default()
                };
                sampling(&mut body, &r);
                put(&mut body, "top_k", p.top_k.map(|v| json!(v)));
                merge(&mut body, &p.extra);
                json_request(url, body)
            };
            if s.stream {
                request.accept = "text/event-stream";
                request.stream = true;
                request.max_tokens = p.max_tokens;
            }
            request
        }
        Task::TextToImage => {
            let prompt = text("prompt")?;
            let mut image_params = Map::new();
            put(&mut image_params, "width", p.width.map(|v| json!(v)));
            put(&mut image_params, "height", p.height.map(|v| json!(v)));
            put(&mut image_params, "seed", p.seed.map(|v| json!(v)));
            put(
                &mut image_params,
                "negative_prompt",
                p.negative_prompt.as_ref().map(|v| json!(v)),
            );
            put(
                &mut image_params,
                "num_inference_steps",
                p.num_inference_steps.map(|v| json!(v)),
            );
            put(
                &mut image_params,
                "guidance_scale",
                p.guidance_scale.map(|v| json!(v)),
            );
            if let Some(hf) = hf_base(s, &base) {
                // hf-inference and Inference Endpoints: raw image bytes come back.
                merge(&mut image_params, &p.extra);
                let mut body = Map::new();
                body.insert("inputs".into(), json!(prompt));
                body.insert("parameters".into(), Json::Object(image_params));
                return Ok(Request {
                    accept: "image/png",
                    ..json_request(hf, body)
                });
            }
            let id = s.provider_model_id();
            match (&s.endpoint, s.provider_or("hf-inference")) {
                (Endpoint::Router { .. }, "fal-ai") => {
                    // {"images": [{"url": …}]}
                    let mut body = Map::new();
                    body.insert("prompt".into(), json!(prompt));
                    if let (Some(w), Some(h)) = (p.width, p.height) {
                        body.insert("image_size".into(), json!({ "width": w, "height": h }));
                    }
                    for k in [
                        "seed",
                        "negative_prompt",
                        "num_inference_steps",
                        "guidance_scale",
                    ] {
                        put(&mut body, k, image_params.get(k).cloned());
                    }
                    merge(&mut body, &p.extra);
                    json_request(format!("{base}/fal-ai/{id}"), body)
                }
                (Endpoint::Router { .. }, "replicate") => {
                    // {"output": "url" | ["url", …]}; `Prefer: wait` answers synchronously.
                    merge(&mut image_params, &p.extra);
                    image_params.insert("prompt".into(), json!(prompt));
                    let (url, version) = match id.split_once(':') {
                        Some((_, version)) => {
                            (format!("{base}/replicate/v1/predictions"), Some(version))
                        }
                        None => (format!("{base}/replicate/v1/models/{id}/predictions"), None),
                    };
                    let mut body = Map::new();
                    put(&mut body, "version", version.map(|v| json!(v)));
                    body.insert("input".into(), Json::Object(image_params));
                    Request {
                        headers: vec![("prefer", "wait")],
                        ..json_request(url, body)
                    }
                }
                (endpoint, provider) => {
                    // OpenAI images: {"data": [{"b64_json": …}]} (or `url`).
                    let url = match endpoint {
                        Endpoint::Router { .. } => {
                            format!("{base}/{provider}/v1/images/generations")
                        }
                        _ => format!("{base}/images/generations"),
                    };
                    let format = if provider == "together" && endpoint.is_router() {
                        "base64"
                    } else {
                        "b64_json"
                    };
                    let mut body = Map::new();
                    body.insert("prompt".into(), json!(prompt));
                    body.insert("model".into(), json!(id));
                    body.insert("response_format".into(), json!(format));
                    if let (Some(w), Some(h)) = (p.width, p.height) {
                        if endpoint.is_router() {
                            body.insert("width".into(), json!(w));
                            body.insert("height".into(), json!(h));
                        } else {
                            body.insert("size".into(), json!(format!("{w}x{h}")));
                        }
                    }
                    for k in ["seed", "negative_prompt", "guidance_scale"] {
                        put(&mut body, k, image_params.get(k).cloned());
                    }
                    put(&mut body, "steps", p.num_inference_steps.map(|v| json!(v)));
                    merge(&mut body, &p.extra);
                    json_request(url, body)
                }
            }
        }
        Task::FeatureExtraction => {
            let inputs = if let Some(t) = input.downcast_ref::<String>() {
                json!(t)
            } else if let Some(ts) = input.downcast_ref::<Vec<String>>() {
                json!(ts)
            } else {
                return Err(wrong_input(s, "text", "String or Vec<String>", input));
            };
            let mut body = Map::new();
            match (&s.endpoint, hf_base(s, &base)) {
                (Endpoint::Router { .. }, Some(hf)) => {
                    body.insert("inputs".into(), inputs);
                    merge(&mut body, &p.extra);
                    json_request(format!("{hf}/pipeline/feature-extraction"), body)
                }
                (_, Some(hf)) => {
                    body.insert("inputs".into(), inputs);
                    merge(&mut body, &p.extra);
                    json_request(hf, body)
                }
                (endpoint, None) => {
                    let url = match (endpoint, s.provider_or("hf-inference")) {
                        (Endpoint::Router { .. }, "deepinfra") => {
                            format!("{base}/deepinfra/v1/openai/embeddings")
                        }
                        (Endpoint::Router { .. }, provider) => {
                            format!("{base}/{provider}/v1/embeddings")
                        }
                        _ => format!("{base}/embeddings"),
                    };
                    body.insert("input".into(), inputs);
                    body.insert("model".into(), json!(s.provider_model_id()));
                    merge(&mut body, &p.extra);
                    json_request(url, body)
                }
            }
        }
        Task::AutomaticSpeechRecognition => {
            let audio = input
                .downcast_ref::<Audio>()
                .ok_or_else(|| wrong_input(s, "audio", "Audio", input))?;
            if let Some(hf) = hf_base(s, &base) {
                binary_request(hf, audio.bytes(), audio.mime(), &p.extra)
            } else if s.endpoint.is_router() && s.provider_or("") == "fal-ai" {
                let b64 = base64::engine::general_purpose::STANDARD.encode(audio.bytes());
                let mut body = Map::new();
                body.insert(
                    "audio_url".into(),
                    json!(format!("data:{};base64,{b64}", audio.mime())),
                );
                merge(&mut body, &p.extra);
                json_request(format!("{base}/fal-ai/{}", s.provider_model_id()), body)
            } else if let Endpoint::OpenAi { .. } = s.endpoint {
                let mut fields = vec![("model".to_string(), s.model.clone())];
                for (k, v) in &p.extra {
                    fields.push((
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    ));
                }
                Request {
                    body: Body::Multipart {
                        bytes: audio.bytes().to_vec(),
                        mime: audio.mime().to_string(),
                        file_name: audio.name().unwrap_or("audio.wav").to_string(),
                        fields,
                    },
                    ..json_request(format!("{base}/audio/transcriptions"), Map::new())
                }
            } else {
                return Err(unsupported(s, "automatic speech recognition"));
            }
        }
        Task::ImageClassification => {
            let image = input
                .downcast_ref::<Image>()
                .ok_or_else(|| wrong_input(s, "image", "Image", input))?;
            let Some(hf) = hf_base(s, &base) else {
                return Err(unsupported(s, "image classification"));
            };
            let mut extra = p.extra.clone();
            if let Some(k) = p.top_k {
                extra.insert("top_k".into(), json!(k));
            }
            binary_request(hf, image.bytes(), image.mime(), &extra)
        }
    })
}

/// A binary hf-inference task: the raw bytes with their content type, or, when there are
/// parameters, `{"inputs": "<base64>", "parameters": {…}}`.
fn binary_request(
    url: String,
    bytes: &[u8],
    mime: &str,
    parameters: &Map<String, Json>,
) -> Request {
    let body = if parameters.is_empty() {
        Body::Bytes(bytes.to_vec(), mime.to_string())
    } else {
        Body::Json(json!({
            "inputs": base64::engine::general_purpose::STANDARD.encode(bytes),
            "parameters": parameters,
        }))
    };
    Request {
        url,
        body,
        accept: "application/json",
        headers: Vec::new(),
        stream: false,
        max_tokens: None,
        has_images: false,
    }
}

/// What went wrong reading a successful response: expected shape and what came.
pub(crate) fn bad_shape(what: &str, body: &[u8]) -> String {
    let shown: String = String::from_utf8_lossy(body).chars().take(300).collect();
    format!("unexpected response: expected {what}, got {shown}")
}

/// Parses a (non-streamed) successful response body.
pub(crate) fn parse(
    task: Task,
    batch: bool,
    content_type: &str,
    bytes: &[u8],
) -> Result<Answer, String> {
    let json = || serde_json::from_slice::<Json>(bytes).ok();
    match task {
        Task::ChatCompletion => {
            let j = json().ok_or_else(|| bad_shape("a chat completion (JSON)", bytes))?;
            let choice = &j["choices"][0];
            let text = choice["message"]["content"]
                .as_str()
                .ok_or_else(|| bad_shape("choices[0].message.content", bytes))?;
            Ok(Answer::Chat(ChatAnswer {
                text: text.to_string(),
                usage: j
                    .get("usage")
                    .filter(|u| u.is_object())
                    .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok()),
                finish_reason: choice["finish_reason"].as_str().map(str::to_string),
            }))
        }
        Task::TextGeneration => {
            let j = json().ok_or_else(|| bad_shape("JSON", bytes))?;
            j["choices"][0]["text"]
                .as_str()
                .or_else(|| j[0]["generated_text"].as_str())
                .or_else(|| j["generated_text"].as_str())
                .map(|t| Answer::Text(t.to_string()))
                .ok_or_else(|| bad_shape("generated text", bytes))
        }
        Task::TextToImage => {
            if content_type.starts_with("image/") {
                return Ok(Answer::Image(Image::new(
                    bytes.to_vec(),
                    sniff_image(bytes, content_type),
                )));
            }
            let j = json().ok_or_else(|| bad_shape("an image or JSON", bytes))?;
            let b64 = j["data"][0]["b64_json"]
                .as_str()
                .or_else(|| j["data"][0]["base64"].as_str());
            if let Some(b64) = b64 {
                return decode_b64_image(b64).ok_or_else(|| bad_shape("valid base64", bytes));
            }
            let url = j["data"][0]["url"]
                .as_str()
                .or_else(|| j["images"][0]["url"].as_str())
                .or_else(|| j["images"][0].as_str())
                .or_else(|| j["image"]["url"].as_str())
                .or_else(|| j["output"].as_str())
                .or_else(|| j["output"][0].as_str())
                .ok_or_else(|| {
                    bad_shape(
                        "data[0].b64_json, data[0].url, images[0].url or output",
                        bytes,
                    )
                })?;
            match url.strip_prefix("data:") {
                Some(data) => data
                    .split_once(";base64,")
                    .and_then(|(_, b64)| decode_b64_image(b64))
                    .ok_or_else(|| bad_shape("a base64 data URL", bytes)),
                None => Ok(Answer::ImageUrl(url.to_string())),
            }
        }
        Task::FeatureExtraction => {
            let j = json().ok_or_else(|| bad_shape("JSON", bytes))?;
            let rows = embedding_rows(&j).ok_or_else(|| {
                bad_shape(
                    "embeddings: data[].embedding, [[numbers]] or [numbers]",
                    bytes,
                )
            })?;
            if batch {
                Ok(Answer::Embeddings(rows))
            } else {
                match <[Vec<f32>; 1]>::try_from(rows) {
                    Ok([row]) => Ok(Answer::Embedding(row)),
                    Err(rows) => Err(format!(
                        "expected one embedding for one text, got {} rows (a token-level model? use a sentence-embedding model or feature_extraction_batch)",
                        rows.len()
                    )),
                }
            }
        }
        Task::AutomaticSpeechRecognition => {
            if !content_type.contains("json") && !content_type.is_empty() {
                if let Ok(text) = std::str::from_utf8(bytes) {
                    return Ok(Answer::Text(text.trim().to_string()));
                }
            }
            let j = json().ok_or_else(|| bad_shape("{\"text\": …}", bytes))?;
            j["text"]
                .as_str()
                .or_else(|| j[0]["text"].as_str())
                .or_else(|| j.as_str())
                .map(|t| Answer::Text(t.to_string()))
                .ok_or_else(|| bad_shape("{\"text\": …}", bytes))
        }
        Task::ImageClassification => {
            let j = json().ok_or_else(|| bad_shape("[{label, score}]", bytes))?;
            let list = if j[0].is_array() { &j[0] } else { &j };
            serde_json::from_value::<Vec<Label>>(list.clone())
                .map(Answer::Labels)
                .map_err(|_| bad_shape("[{label, score}]", bytes))
        }
    }
}

/// Rows of an embeddings answer: OpenAI `data[].embedding` (in `index` order), nested
/// arrays `[[…], …]`, or one flat vector `[…]` (a sentence-transformers answer to one text).
fn embedding_rows(j: &Json) -> Option<Vec<Vec<f32>>> {
    let row = |v: &Json| -> Option<Vec<f32>> {
        v.as_array()?
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect()
    };
    if let Some(data) = j.get("data").and_then(Json::as_array) {
        let mut items: Vec<(u64, &Json)> = data
            .iter()
            .enumerate()
            .map(|(i, d)| (d["index"].as_u64().unwrap_or(i as u64), &d["embedding"]))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        return items.into_iter().map(|(_, e)| row(e)).collect();
    }
    let outer = j.as_array()?;
    if outer.first().is_some_and(Json::is_array) {
        outer.iter().map(row).collect()
    } else {
        Some(vec![row(j)?])
    }
}

fn decode_b64_image(b64: &str) -> Option<Answer> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let mime = sniff_image(&bytes, "image/png");
    Some(Answer::Image(Image::new(bytes, mime)))
}

/// The image's MIME type from its magic bytes, else from the content type.
pub(crate) fn sniff_image(bytes: &[u8], content_type: &str) -> String {
    if let Some(mime) = sniff_mime(bytes).filter(|m| m.starts_with("image/")) {
        return mime.to_string();
    }
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if ct.starts_with("image/") {
        ct.to_string()
    } else {
        "application/octet-stream".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedding(j: Json, batch: bool) -> Result<Answer, String> {
        parse(
            Task::FeatureExtraction,
            batch,
            "application/json",
            j.to_string().as_bytes(),
        )
    }

    #[test]
    fn every_embedding_shape() {
        let flat = json!([0.5, 1.0]);
        let nested = json!([[0.5, 1.0]]);
        let openai = json!({"data": [{"embedding": [0.5, 1.0], "index": 0}]});
        for shape in [flat, nested, openai] {
            assert!(
                matches!(embedding(shape.clone(), false), Ok(Answer::Embedding(v)) if v == [0.5, 1.0]),
                "{shape}"
            );
            assert!(
                matches!(embedding(shape.clone(), true), Ok(Answer::Embeddings(v)) if v == [vec![0.5, 1.0]]),
                "{shape}"
            );
        }
        let out_of_order =
            json!({"data": [{"embedding": [2.0], "index": 1}, {"embedding": [1.0], "index": 0}]});
        assert!(
            matches!(embedding(out_of_order, true), Ok(Answer::Embeddings(v)) if v == [vec![1.0], vec![2.0]])
        );
        let token_level = json!([[0.1, 0.2], [0.3, 0.4]]);
        assert!(embedding(token_level, false)
            .unwrap_err()
            .contains("got 2 rows"));
        assert!(embedding(json!({"vectors": []}), false)
            .unwrap_err()
            .starts_with("unexpected response"));
    }

    #[test]
    fn every_image_shape() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        let raw = parse(Task::TextToImage, false, "image/png", png).unwrap();
        assert!(matches!(raw, Answer::Image(i) if i.mime() == "image/png"));
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        for body in [
            json!({"data": [{"b64_json": b64}]}),
            json!({"images": [{"url": format!("data:image/png;base64,{b64}")}]}),
        ] {
            let a = parse(
                Task::TextToImage,
                false,
                "application/json",
                body.to_string().as_bytes(),
            );
            assert!(
                matches!(a, Ok(Answer::Image(i)) if i.bytes() == png),
                "{body}"
            );
        }
        for body in [
            json!({"data": [{"url": "https://files.example/a.png"}]}),
            json!({"images": [{"url": "https://files.example/a.png"}]}),
            json!({"output": "https://files.example/a.png"}),
            json!({"output": ["https://files.example/a.png"]}),
        ] {
            let a = parse(
                Task::TextToImage,
                false,
                "application/json",
                body.to_string().as_bytes(),
            );
            assert!(
                matches!(&a, Ok(Answer::ImageUrl(u)) if u == "https://files.example/a.png"),
                "{body}: {a:?}"
            );
        }
    }

    #[test]
    fn labels_and_transcripts() {
        let labels = json!([[{"label": "cat", "score": 0.75}]]);
        let a = parse(
            Task::ImageClassification,
            false,
            "application/json",
            labels.to_string().as_bytes(),
        );
        assert!(matches!(a, Ok(Answer::Labels(l)) if l[0].label == "cat"));
        let a = parse(
            Task::AutomaticSpeechRecognition,
            false,
            "text/plain",
            b" hello\n",
        );
        assert!(matches!(a, Ok(Answer::Text(t)) if t == "hello"));
        let a = parse(
            Task::AutomaticSpeechRecognition,
            false,
            "application/json",
            br#"{"text": "hi", "chunks": []}"#,
        );
        assert!(matches!(a, Ok(Answer::Text(t)) if t == "hi"));
    }

    #[test]
    fn unsupported_combinations_are_named_before_anything_is_sent() {
        let node = crate::InferenceNode::image_classification("labels", "org/vit:together");
        let image = Value::new(Image::new(vec![1u8], "image/png")).unwrap();
        let Err(e) = build(&node.settings, std::slice::from_ref(&image)) else {
            panic!()
        };
        assert_eq!(
            e.to_string(),
            "node `labels` failed: model org/vit (provider together) (image-classification not sent): provider together is not supported by daggr for image classification"
        );
        let node = crate::InferenceNode::speech_recognition("asr", "org/w")
            .inference_endpoint("https://x.endpoints.huggingface.cloud");
        let audio = Value::new(Audio::new(vec![1u8], "audio/wav")).unwrap();
        let request = build(&node.settings, std::slice::from_ref(&audio)).unwrap();
        assert_eq!(request.url, "https://x.endpoints.huggingface.cloud");
        assert!(matches!(request.body, Body::Bytes(_, ref m) if m == "audio/wav"));
    }

    #[test]
    fn chat_answers_carry_usage_and_finish_reason() {
        let body = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "length"}],
                          "usage": {"prompt_tokens": 36, "completion_tokens": 16, "total_tokens": 52}});
        let a = parse(
            Task::ChatCompletion,
            false,
            "application/json",
            body.to_string().as_bytes(),
        )
        .unwrap();
        let Answer::Chat(c) = a else { panic!() };
        assert_eq!(c.text, "Hello");
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        assert_eq!(c.usage.unwrap().total_tokens, 52);
        let without = json!({"choices": [{"message": {"content": "x"}}]});
        let Ok(Answer::Chat(c)) = parse(
            Task::ChatCompletion,
            false,
            "application/json",
            without.to_string().as_bytes(),
        ) else {
            panic!()
        };
        assert_eq!((c.usage, c.finish_reason), (None, None));
    }

    fn chat_body(
        node: &crate::InferenceNode<impl crate::graph::ArgTuple, super::super::ChatOutputs>,
        inputs: &[Value],
    ) -> Json {
        let request = build(&node.settings, inputs).unwrap();
        let Body::Json(body) = request.body else {
            panic!()
        };
        body
    }

    #[test]
    fn text_only_messages_are_sent_as_before() {
        // Byte for byte what `json!(messages)` sent before messages could hold images.
        let node = crate::InferenceNode::chat_messages("c", "org/m").base_url("http://x/v1");
        let messages_json = || json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]);
        let messages = vec![ChatMessage::system("Be brief."), ChatMessage::user("Hi")];
        let body = chat_body(&node, &[Value::new(messages).unwrap()]);
        // What the derived encoding gave (`json!(messages)`), text and key order alike.
        assert_eq!(
            body["messages"].to_string(),
            serde_json::to_string(&messages_json()).unwrap()
        );
        // And the port value of a text-only message encodes as before (same cache keys).
        assert_eq!(
            serde_json::to_value(ChatMessage::user("Hi")).unwrap(),
            json!({"role": "user", "content": "Hi"})
        );
    }

    #[test]
    fn images_become_data_url_parts_after_the_text() {
        let node = crate::InferenceNode::vision_chat("caption", "org/vlm")
            .base_url("http://x/v1")
            .system("One sentence.");
        let png = Image::new(vec![0x89, b'P', b'N', b'G', 1, 2], "image/png");
        let inputs = [
            Value::new("What is this?".to_string()).unwrap(),
            Value::new(png).unwrap(),
        ];
        let request = build(&node.settings, &inputs).unwrap();
        assert!(request.has_images);
        let Body::Json(body) = request.body else {
            panic!()
        };
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "One sentence."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORwEC"}},
                ]},
            ])
        );
        // A file of unknown extension is `application/octet-stream`: the bytes tell.
        let jpeg = Image::new(vec![0xFF, 0xD8, 0xFF, 0xE0], "application/octet-stream");
        let m = ChatMessage::user_with_images("", [jpeg]);
        let node = crate::InferenceNode::chat_messages("c", "org/vlm");
        let body = chat_body(&node, &[Value::new(vec![m]).unwrap()]);
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A=="}}])
        );
    }

    #[test]
    fn images_too_large_or_not_images_are_refused_before_sending() {
        let node = crate::InferenceNode::vision_chat("caption", "org/vlm").base_url("http://x/v1");
        let big = Image::new(vec![0u8; MAX_INLINE_IMAGE_BYTES + 1], "image/png");
        let inputs = [
            Value::new("Describe.".to_string()).unwrap(),
            Value::new(big).unwrap(),
        ];
        let Err(e) = build(&node.settings, &inputs) else {
            panic!()
        };
        assert_eq!(
            e.to_string(),
            "node `caption` failed: model org/vlm at http://x/v1 (chat-completion not sent): input `image`: the image is 20.0 MiB, more than the 20 MiB an image may have when sent inline in a chat request; downscale it first"
        );
        let text = Image::new(b"hello".to_vec(), "text/plain");
        let inputs = [
            Value::new("Describe.".to_string()).unwrap(),
            Value::new(text).unwrap(),
        ];
        let Err(e) = build(&node.settings, &inputs) else {
            panic!()
        };
        assert!(
            e.to_string()
                .contains("input `image`: the image's MIME type is `text/plain`"),
            "{e}"
        );
    }
}
