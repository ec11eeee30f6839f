//! [`InferenceNode`]: Hugging Face inference providers (through the router) and any
//! OpenAI-compatible server.
//!
//! Each task is a typed constructor, declared with the node (no Hub look-up at run time):
//!
//! | constructor | input | output |
//! |---|---|---|
//! | [`InferenceNode::chat`] | `String` (the user message) | `String` |
//! | [`InferenceNode::chat_messages`] | `Vec<ChatMessage>` | `String` |
//! | [`InferenceNode::text_generation`] | `String` | `String` |
//! | [`InferenceNode::text_to_image`] | `String` | [`Image`] |
//! | [`InferenceNode::feature_extraction`] | `String` | `Vec<f32>` |
//! | [`InferenceNode::speech_recognition`] | [`Audio`] | `String` |
//! | [`InferenceNode::image_classification`] | [`Image`] | `Vec<Label>` |
//!
//! ```no_run
//! use daggr::{Graph, InferenceNode};
//! let mut g = Graph::new("llm");
//! let prompt = g.input("prompt", "Name a colour.".to_string());
//! let answer = g.add(
//!     InferenceNode::chat("answer", "HuggingFaceTB/SmolLM2-135M-Instruct")
//!         .base_url("http://127.0.0.1:8080/v1") // any OpenAI-compatible server
//!         .system("Answer in one word.")
//!         .temperature(0.0)
//!         .max_tokens(8),
//!     (prompt,),
//! );
//! # let _ = answer;
//! ```
//!
//! The model id may carry a provider (`org/model:provider`). By default requests go to the
//! Hugging Face router (`$HF_ROUTER_URL`, default `https://router.huggingface.co`); the HF
//! token (see [`crate::hf`]) is sent only when the request goes to a Hugging Face host, or
//! when set explicitly with [`InferenceNode::token`]. It is never logged, never part of a
//! cache key, and never stored.

mod client;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::BoxError;
use crate::graph::{ArgTuple, Output, TypedNode};
use crate::hf::HfToken;
use crate::media::{Audio, Image};
use crate::node::{Configure, Inputs, Node, NodeConfig, NodeContext, NodeSpec, PortSpec};
use crate::value::{PortValue, Value};

pub use client::{error_message, retry_after};

/// The default router.
pub const DEFAULT_ROUTER: &str = "https://router.huggingface.co";
/// Environment variable overriding the router URL.
pub const ROUTER_ENV: &str = "HF_ROUTER_URL";

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "user".into(),
            content: content.into(),
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "system".into(),
            content: content.into(),
        }
    }
}

/// A classification label with its score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// The label.
    pub label: String,
    /// Its score, 0–1.
    pub score: f64,
}

/// The inference task a node performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Task {
    /// Chat completion (OpenAI-compatible).
    ChatCompletion,
    /// Plain text generation.
    TextGeneration,
    /// Text to image.
    TextToImage,
    /// Embeddings.
    FeatureExtraction,
    /// Speech to text.
    AutomaticSpeechRecognition,
    /// Image labels.
    ImageClassification,
}

/// Where requests go.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Endpoint {
    /// The Hugging Face router (or a stand-in of it) at this URL.
    Router { url: String },
    /// An OpenAI-compatible server whose base URL ends in `/v1` (or equivalent).
    OpenAi { url: String },
}

/// Generation and task parameters; all of them are part of the cache key.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Params {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_inference_steps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guidance_scale: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Any further body fields, passed through as given.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Everything a request needs; cloned into each run.
#[derive(Clone)]
pub(crate) struct Settings {
    pub node: String,
    pub task: Task,
    pub model: String,
    pub provider: Option<String>,
    pub endpoint: Endpoint,
    pub params: Params,
    pub stream: bool,
    pub token: Option<HfToken>,
    pub token_explicit: bool,
    pub request_timeout: Duration,
    pub retries: u32,
    pub http: reqwest::Client,
}

impl Settings {
    /// A description for errors: `model org/m via provider p`.
    pub fn service(&self) -> String {
        match &self.provider {
            Some(p) => format!("model {} via provider {p}", self.model),
            None => format!("model {}", self.model),
        }
    }
}

/// A node calling an inference endpoint. `Args` is its input tuple, `Out` its output type.
pub struct InferenceNode<Args, Out> {
    spec: NodeSpec,
    settings: Arc<Settings>,
    _types: PhantomData<fn(Args) -> Out>,
}

fn default_router() -> String {
    std::env::var(ROUTER_ENV).unwrap_or_else(|_| DEFAULT_ROUTER.to_string())
}

impl<Args: ArgTuple, Out: PortValue> InferenceNode<Args, Out> {
    fn new(name: &str, model: &str, task: Task, input: &str) -> Self {
        let (model, provider) = match model.rsplit_once(':') {
            Some((m, p)) if !p.is_empty() && !p.contains('/') => {
                (m.to_string(), Some(p.to_string()))
            }
            _ => (model.to_string(), None),
        };
        let settings = Settings {
            node: name.to_string(),
            task,
            model,
            provider,
            endpoint: Endpoint::Router {
                url: default_router(),
            },
            params: Params::default(),
            stream: false,
            token: HfToken::from_env(),
            token_explicit: false,
            request_timeout: Duration::from_secs(300),
            retries: 3,
            http: reqwest::Client::new(),
        };
        let mut node = InferenceNode {
            spec: NodeSpec {
                name: name.to_string(),
                kind: "inference",
                identity: String::new(),
                code_fingerprint: String::new(),
                params: serde_json::Value::Null,
                inputs: Args::port_specs(&[input.to_string()]),
                outputs: vec![PortSpec::new::<Out>("output")],
                config: NodeConfig::default(),
            },
            settings: Arc::new(settings),
            _types: PhantomData,
        };
        node.refresh_spec();
        node
    }

    /// Identity and params in the spec follow the settings (they are the cache key's).
    fn refresh_spec(&mut self) {
        let s = &self.settings;
        self.spec.identity = format!(
            "{:?}:{}:{}",
            s.task,
            s.model,
            s.provider.as_deref().unwrap_or("auto")
        );
        self.spec.params = serde_json::json!({
            "task": s.task,
            "endpoint": s.endpoint,
            "params": s.params,
            "stream": s.stream,
        });
    }

    fn with(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Arc::make_mut(&mut self.settings));
        self.refresh_spec();
        self
    }

    /// Sends requests to an OpenAI-compatible server at `url` (ending in `/v1` or its
    /// equivalent) instead of the router.
    pub fn base_url(self, url: impl Into<String>) -> Self {
        let url = url.into().trim_end_matches('/').to_string();
        self.with(|s| s.endpoint = Endpoint::OpenAi { url })
    }

    /// Sends requests to this router URL (an Inference Endpoint or a stand-in of the router).
    pub fn router_url(self, url: impl Into<String>) -> Self {
        let url = url.into().trim_end_matches('/').to_string();
        self.with(|s| s.endpoint = Endpoint::Router { url })
    }

    /// The provider (same as the `:provider` suffix of the model id).
    pub fn provider(self, provider: impl Into<String>) -> Self {
        let provider = provider.into();
        self.with(|s| s.provider = Some(provider))
    }

    /// Sends this token (to whatever URL the node calls). Without it, the HF token from
    /// the environment is sent only to Hugging Face hosts.
    pub fn token(self, token: HfToken) -> Self {
        self.with(|s| {
            s.token = Some(token);
            s.token_explicit = true;
        })
    }

    /// Sends no token at all.
    pub fn without_token(self) -> Self {
        self.with(|s| {
            s.token = None;
            s.token_explicit = true;
        })
    }

    /// A system prompt (chat).
    pub fn system(self, prompt: impl Into<String>) -> Self {
        let prompt = prompt.into();
        self.with(|s| s.params.system = Some(prompt))
    }

    /// Sampling temperature.
    pub fn temperature(self, t: f64) -> Self {
        self.with(|s| s.params.temperature = Some(t))
    }

    /// Nucleus sampling.
    pub fn top_p(self, p: f64) -> Self {
        self.with(|s| s.params.top_p = Some(p))
    }

    /// Top-k sampling (text generation).
    pub fn top_k(self, k: u32) -> Self {
        self.with(|s| s.params.top_k = Some(k))
    }

    /// The most tokens to generate.
    pub fn max_tokens(self, n: u32) -> Self {
        self.with(|s| s.params.max_tokens = Some(n))
    }

    /// A sampling seed.
    pub fn seed(self, seed: u64) -> Self {
        self.with(|s| s.params.seed = Some(seed))
    }

    /// Stop sequences.
    pub fn stop(self, stop: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let stop: Vec<String> = stop.into_iter().map(Into::into).collect();
        self.with(|s| s.params.stop = stop)
    }

    /// Streams tokens (chat): they arrive as node progress and partial outputs.
    pub fn stream(self, on: bool) -> Self {
        self.with(|s| s.stream = on)
    }

    /// Image size (text to image).
    pub fn size(self, width: u32, height: u32) -> Self {
        self.with(|s| {
            s.params.width = Some(width);
            s.params.height = Some(height);
        })
    }

    /// Negative prompt (text to image).
    pub fn negative_prompt(self, prompt: impl Into<String>) -> Self {
        let prompt = prompt.into();
        self.with(|s| s.params.negative_prompt = Some(prompt))
    }

    /// Denoising steps (text to image).
    pub fn num_inference_steps(self, steps: u32) -> Self {
        self.with(|s| s.params.num_inference_steps = Some(steps))
    }

    /// Guidance scale (text to image).
    pub fn guidance_scale(self, scale: f64) -> Self {
        self.with(|s| s.params.guidance_scale = Some(scale))
    }

    /// Any other body field, passed through (part of the cache key).
    pub fn param(self, key: impl Into<String>, value: serde_json::Value) -> Self {
        let key = key.into();
        self.with(|s| {
            s.params.extra.insert(key, value);
        })
    }

    /// Per-request timeout (default 300 s); the node's overall timeout is
    /// [`Configure::timeout`].
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.request_timeout = timeout)
    }

    /// Retries on 429, 503 and connection errors, honouring Retry-After (default 3).
    pub fn retries(self, n: u32) -> Self {
        self.with(|s| s.retries = n)
    }

    /// Names the input port.
    pub fn input_name(mut self, name: &str) -> Self {
        self.spec.inputs[0].name = name.to_string();
        self
    }
}

impl InferenceNode<(String,), String> {
    /// Chat completion of one user message (plus the optional system prompt).
    pub fn chat(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::ChatCompletion, "prompt")
    }

    /// Text generation from a prompt.
    pub fn text_generation(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::TextGeneration, "prompt")
    }
}

impl InferenceNode<(Vec<ChatMessage>,), String> {
    /// Chat completion of a whole conversation.
    pub fn chat_messages(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::ChatCompletion, "messages")
    }
}

impl InferenceNode<(String,), Image> {
    /// Text to image.
    pub fn text_to_image(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::TextToImage, "prompt")
    }
}

impl InferenceNode<(String,), Vec<f32>> {
    /// Embeddings of a text.
    pub fn feature_extraction(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::FeatureExtraction, "text")
    }
}

impl InferenceNode<(Audio,), String> {
    /// Speech to text.
    pub fn speech_recognition(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::AutomaticSpeechRecognition, "audio")
    }
}

impl InferenceNode<(Image,), Vec<Label>> {
    /// Image classification.
    pub fn image_classification(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::ImageClassification, "image")
    }
}

impl<Args: ArgTuple, Out: PortValue> Configure for InferenceNode<Args, Out> {
    fn config_mut(&mut self) -> &mut NodeConfig {
        &mut self.spec.config
    }
}

impl<Args: ArgTuple, Out: PortValue> Node for InferenceNode<Args, Out> {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn run(
        &self,
        ctx: NodeContext,
        inputs: Inputs,
    ) -> BoxFuture<'static, Result<Vec<Value>, BoxError>> {
        let settings = self.settings.clone();
        Box::pin(async move {
            let input = inputs.value(0).clone();
            let out = client::call(&settings, &ctx, input)
                .await
                .map_err(BoxError::from)?;
            Ok(vec![out])
        })
    }
}

impl<Args: ArgTuple, Out: PortValue> TypedNode for InferenceNode<Args, Out> {
    type Args = Args;
    type Handles = Output<Out>;
    fn handles(node: usize) -> Output<Out> {
        Output::new(node, 0)
    }
}
