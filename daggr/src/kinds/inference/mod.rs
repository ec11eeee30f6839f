//! [`InferenceNode`]: Hugging Face Inference Providers (through the router), any
//! OpenAI-compatible server, and Inference Endpoints.
//!
//! Each task is a typed constructor, declared with the node: nothing is looked up on the
//! Hub at run time, so a node works offline against a local server.
//!
//! | constructor | input port | output ports |
//! |---|---|---|
//! | [`InferenceNode::chat`] | `prompt: String` | [`ChatOutputs`]: `text`, `usage`, `finish_reason` |
//! | [`InferenceNode::vision_chat`] | `prompt: String`, `image: Image` | [`ChatOutputs`] |
//! | [`InferenceNode::chat_messages`] | `messages: Vec<ChatMessage>` (may hold images: [`ChatMessage::user_with_images`]) | [`ChatOutputs`] |
//! | [`InferenceNode::chat_request`] | `request: ChatRequest` (conversation and sampling parameters) | [`ChatOutputs`] |
//! | [`InferenceNode::text_generation`] | `prompt: String` | `text: String` |
//! | [`InferenceNode::text_to_image`] | `prompt: String` | `image: Image` |
//! | [`InferenceNode::feature_extraction`] | `text: String` | `embedding: Vec<f32>` |
//! | [`InferenceNode::feature_extraction_batch`] | `texts: Vec<String>` | `embeddings: Vec<Vec<f32>>` |
//! | [`InferenceNode::speech_recognition`] | `audio: Audio` | `text: String` |
//! | [`InferenceNode::image_classification`] | `image: Image` | `labels: Vec<Label>` |
//!
//! ```no_run
//! use daggr::{FnNode, Graph, InferenceNode};
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
//! let upper = g.add(FnNode::sync("upper", |s: String| s.to_uppercase()), (answer.text,));
//! # let _ = upper;
//! ```
//!
//! **Where requests go.** By default to the Hugging Face router (`$HF_ROUTER_URL`, default
//! `https://router.huggingface.co`). The model id may name a provider, `org/model:provider`
//! (or use [`InferenceNode::provider`]); without one, chat lets the router choose and the
//! other tasks use `hf-inference`. Providers whose model ids differ from the Hub's need
//! [`InferenceNode::provider_model`] (no Hub look-up is made to find it).
//! [`InferenceNode::base_url`] points a node at an OpenAI-compatible server instead,
//! [`InferenceNode::inference_endpoint`] at a dedicated Inference Endpoint, and
//! [`InferenceNode::router_url`] at another router (or a stand-in of it).
//!
//! **The token** (see [`crate::kinds::hf`]) is sent only when the request goes to a Hugging Face
//! host (`https://*.huggingface.co`, `https://*.endpoints.huggingface.cloud`), or when it
//! was configured explicitly with [`InferenceNode::token`]. It is never logged, never part
//! of a cache key, never stored, and never sent when downloading a provider's output file.
//!
//! **Caching.** Task, model, provider, endpoint URL and every parameter set on the node
//! are in the node's [`NodeSpec`] (`identity` and `params`), so they are part of the cache
//! key; the token, timeouts, retries and streaming are not.
//!
//! **Errors.** Every failure is one [`Error::Remote`] naming the
//! node, the model and provider (or server), the path, the HTTP status and the server's
//! own message, whatever the provider's error shape (the `X-Error-Message` header, the
//! usual JSON error shapes, else the text of the body). 429 and 503 are
//! retried ([`InferenceNode::retries`], default 3) after the `Retry-After` the server asks
//! for (capped by [`InferenceNode::max_retry_wait`], default 30 s), else with exponential
//! backoff. A read timeout ([`InferenceNode::read_timeout`], default 300 s) bounds each
//! wait for data; the node's overall timeout is [`Configure::timeout`].

mod client;
mod errors;
mod ports;
mod sse;
mod tasks;

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::BoxError;
use crate::graph::{ArgTuple, Output, TypedNode};
use crate::kinds::hf::HfToken;
use crate::kinds::http::client::{self as http_client, Redirects};
use crate::node::{Configure, Inputs, Node, NodeConfig, NodeContext, NodeSpec, PortSpec};
use crate::value::media::{Audio, Image};
use crate::value::{PortValue, Value};
use crate::Error;

pub use ports::{ChatMessage, ChatOutputs, ChatRequest, Label, Usage};

use tasks::Answer;

/// The default router.
pub const DEFAULT_ROUTER: &str = "https://router.huggingface.co";
/// Environment variable overriding the router URL (e.g. for a proxy).
pub const ROUTER_ENV: &str = "HF_ROUTER_URL";

/// The inference task a node performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Task {
    /// Chat completion (OpenAI-compatible `chat/completions`).
    ChatCompletion,
    /// Text generation (`completions`, or the hf-inference / TGI shape).
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
#[serde(tag = "kind", content = "url", rename_all = "snake_case")]
pub(crate) enum Endpoint {
    /// The Hugging Face router (or a stand-in of it) at this URL.
    Router(String),
    /// An OpenAI-compatible server; the URL ends in `/v1` or its equivalent.
    OpenAi(String),
    /// A dedicated Inference Endpoint (hf-inference request shapes at its root, chat at
    /// `/v1/chat/completions`).
    Dedicated(String),
}

impl Endpoint {
    pub(crate) fn url(&self) -> &str {
        match self {
            Endpoint::Router(u) | Endpoint::OpenAi(u) | Endpoint::Dedicated(u) => u,
        }
    }

    pub(crate) fn is_router(&self) -> bool {
        matches!(self, Endpoint::Router(_))
    }
}

/// Generation and task parameters set on the node; all of them are in the cache key.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Params {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
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
    /// Any further body fields, passed through as given.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Everything a request needs; shared by the node's runs.
#[derive(Clone)]
pub(crate) struct Settings {
    pub node: String,
    pub task: Task,
    /// The Hub model id, without the `:provider` suffix.
    pub model: String,
    pub provider: Option<String>,
    /// The provider's own id for the model, for client-side provider routes.
    pub provider_model: Option<String>,
    pub endpoint: Endpoint,
    pub params: Params,
    pub stream: bool,
    pub token: Option<HfToken>,
    pub token_explicit: bool,
    pub bill_to: Option<String>,
    pub read_timeout: Duration,
    pub retries: u32,
    pub max_retry_wait: Duration,
    /// The caller's own client ([`InferenceNode::http_client`]), used as it is.
    pub user_http: Option<reqwest::Client>,
    http: OnceLock<reqwest::Client>,
}

impl Settings {
    /// The provider, or `default` when none was named.
    pub(crate) fn provider_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.provider.as_deref().unwrap_or(default)
    }

    /// The model id to send on a provider's own route.
    pub(crate) fn provider_model_id(&self) -> &str {
        self.provider_model.as_deref().unwrap_or(&self.model)
    }

    /// What is called, for errors: `model org/m (provider together)`, or the server.
    pub(crate) fn service(&self) -> String {
        match &self.endpoint {
            Endpoint::Router(_) => {
                let default = if self.task == Task::ChatCompletion {
                    "auto"
                } else {
                    "hf-inference"
                };
                format!(
                    "model {} (provider {})",
                    self.model,
                    self.provider_or(default)
                )
            }
            Endpoint::OpenAi(url) => format!("model {} at {url}", self.model),
            Endpoint::Dedicated(url) => {
                format!("model {} at Inference Endpoint {url}", self.model)
            }
        }
    }

    /// A remote error of this node.
    pub(crate) fn remote(
        &self,
        endpoint: &str,
        status: Option<u16>,
        message: impl Into<String>,
    ) -> Error {
        Error::Remote {
            node: self.node.clone(),
            service: self.service(),
            endpoint: endpoint.to_string(),
            status,
            message: message.into(),
        }
    }

    /// The HTTP client: the caller's, else daggr's (built on first use, with the read
    /// timeout). Any client is safe with the token: it goes in `Authorization`, which
    /// reqwest drops when a redirect leaves the host.
    pub(crate) fn http(&self) -> Result<reqwest::Client, String> {
        if let Some(c) = &self.user_http {
            return Ok(c.clone());
        }
        if let Some(c) = self.http.get() {
            return Ok(c.clone());
        }
        let client = http_client::build(Redirects::Follow, Some(self.read_timeout))
            .map_err(|e| e.to_string())?;
        Ok(self.http.get_or_init(|| client).clone())
    }
}

/// The output side of an inference node: its ports and their typed handles. Implemented
/// for each task's output type (and [`ChatOutputs`] for chat); not implementable outside
/// daggr.
pub trait InferenceOutput: sealed::Sealed + Send + Sync + 'static {
    /// What [`crate::Graph::add`] returns for the node.
    type Handles;
    /// The output ports.
    #[doc(hidden)]
    fn ports() -> Vec<PortSpec>;
    /// The handles of the node added at `node`.
    #[doc(hidden)]
    fn handles(node: usize) -> Self::Handles;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! single_output {
    ($($ty:ty => $port:literal),* $(,)?) => {$(
        impl sealed::Sealed for $ty {}
        impl InferenceOutput for $ty {
            type Handles = Output<$ty>;
            fn ports() -> Vec<PortSpec> {
                vec![PortSpec::new::<$ty>($port)]
            }
            fn handles(node: usize) -> Output<$ty> {
                Output::new(node, 0)
            }
        }
    )*};
}

single_output! {
    String => "text",
    Image => "image",
    Vec<f32> => "embedding",
    Vec<Vec<f32>> => "embeddings",
    Vec<Label> => "labels",
}

impl sealed::Sealed for ChatOutputs {}
impl InferenceOutput for ChatOutputs {
    type Handles = ChatOutputs;
    fn ports() -> Vec<PortSpec> {
        vec![
            PortSpec::new::<String>("text"),
            PortSpec::new::<Option<Usage>>("usage"),
            PortSpec::new::<Option<String>>("finish_reason"),
        ]
    }
    fn handles(node: usize) -> ChatOutputs {
        ChatOutputs {
            text: Output::new(node, 0),
            usage: Output::new(node, 1),
            finish_reason: Output::new(node, 2),
        }
    }
}

/// A node calling a model on an inference service. `Args` is its input tuple and `Out`
/// its output type (see the [module docs](self) for each task's types); build one with a
/// task constructor such as [`InferenceNode::chat`].
///
/// ```no_run
/// use daggr::{Graph, InferenceNode, Scope};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
/// let mut g = Graph::new("draw");
/// let prompt = g.input("prompt", "a red square".to_string());
/// let image = g.add(
///     InferenceNode::text_to_image("image", "black-forest-labs/FLUX.1-schnell:fal-ai")
///         .provider_model("fal-ai/flux/schnell")
///         .size(512, 512)
///         .seed(1),
///     (prompt,),
/// );
/// let report = g.build()?.run(Scope::All).await?;
/// println!("{} bytes", report.value(&image)?.bytes().len());
/// # Ok(()) }
/// ```
pub struct InferenceNode<Args, Out> {
    spec: NodeSpec,
    settings: Arc<Settings>,
    _types: PhantomData<fn(Args) -> Out>,
}

fn default_router() -> String {
    std::env::var(ROUTER_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .unwrap_or_else(|| DEFAULT_ROUTER.to_string())
}

/// Splits `org/model:provider`.
fn split_model(model: &str) -> (String, Option<String>) {
    match model.rsplit_once(':') {
        Some((m, p)) if !m.is_empty() && !p.is_empty() && !p.contains('/') => {
            (m.to_string(), Some(p.to_string()))
        }
        _ => (model.to_string(), None),
    }
}

impl<Args: ArgTuple, Out: InferenceOutput> InferenceNode<Args, Out> {
    /// A node for `task` whose input ports are named `inputs` (one name per element of
    /// `Args`).
    fn new(name: &str, model: &str, task: Task, inputs: &[&str]) -> Self {
        let (model, provider) = split_model(model);
        let settings = Settings {
            node: name.to_string(),
            task,
            model,
            provider,
            provider_model: None,
            endpoint: Endpoint::Router(default_router()),
            params: Params::default(),
            stream: false,
            token: HfToken::from_env(),
            token_explicit: false,
            bill_to: None,
            read_timeout: Duration::from_secs(300),
            retries: 3,
            max_retry_wait: Duration::from_secs(30),
            user_http: None,
            http: OnceLock::new(),
        };
        let mut node = InferenceNode {
            spec: NodeSpec {
                name: name.to_string(),
                kind: "inference",
                identity: String::new(),
                code_fingerprint: String::new(),
                params: serde_json::Value::Null,
                inputs: Args::port_specs(&inputs.iter().map(|n| n.to_string()).collect::<Vec<_>>()),
                outputs: Out::ports(),
                config: NodeConfig::default(),
            },
            settings: Arc::new(settings),
            _types: PhantomData,
        };
        node.refresh_spec();
        node
    }

    /// Identity and params in the spec follow the settings (they are in the cache key).
    fn refresh_spec(&mut self) {
        let s = &self.settings;
        let task = serde_json::to_value(s.task).unwrap_or_default();
        self.spec.identity = format!(
            "{}:{}{}",
            task.as_str().unwrap_or("task"),
            s.model,
            s.provider
                .as_ref()
                .map(|p| format!(":{p}"))
                .unwrap_or_default()
        );
        self.spec.params = serde_json::json!({
            "task": s.task,
            "model": s.model,
            "provider": s.provider,
            "provider_model": s.provider_model,
            "endpoint": s.endpoint,
            "params": s.params,
        });
    }

    fn with(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        let s = Arc::make_mut(&mut self.settings);
        f(s);
        s.http = OnceLock::new();
        self.refresh_spec();
        self
    }

    /// The task.
    pub fn task(&self) -> Task {
        self.settings.task
    }

    /// Sends requests to an OpenAI-compatible server whose API is at `url` (ending in
    /// `/v1` or its equivalent: chat goes to `{url}/chat/completions`), instead of the
    /// router. The environment's HF token is not sent there unless the host is a Hugging
    /// Face one; use [`InferenceNode::token`] for a server that needs a key.
    pub fn base_url(self, url: impl Into<String>) -> Self {
        let url = url.into().trim_end_matches('/').to_string();
        self.with(|s| s.endpoint = Endpoint::OpenAi(url))
    }

    /// Sends requests to a dedicated Inference Endpoint at `url`: chat to
    /// `{url}/v1/chat/completions`, the other tasks to `{url}` in the hf-inference shapes.
    pub fn inference_endpoint(self, url: impl Into<String>) -> Self {
        let url = url.into().trim_end_matches('/').to_string();
        self.with(|s| s.endpoint = Endpoint::Dedicated(url))
    }

    /// Sends requests to the router at this URL (a proxy of it, or a protocol stand-in
    /// in tests) instead of `$HF_ROUTER_URL` / [`DEFAULT_ROUTER`].
    pub fn router_url(self, url: impl Into<String>) -> Self {
        let url = url.into().trim_end_matches('/').to_string();
        self.with(|s| s.endpoint = Endpoint::Router(url))
    }

    /// The provider (the same as an `org/model:provider` suffix).
    pub fn provider(self, provider: impl Into<String>) -> Self {
        let provider = provider.into();
        self.with(|s| s.provider = Some(provider))
    }

    /// The provider's own id for the model (e.g. `fal-ai/flux/schnell` for
    /// `black-forest-labs/FLUX.1-schnell` on `fal-ai`), sent on the provider's route. It
    /// is listed at `https://huggingface.co/api/models/{id}?expand[]=inferenceProviderMapping`;
    /// without it the Hub id is sent (right for `hf-inference` and for chat, where the
    /// router maps ids itself).
    pub fn provider_model(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.with(|s| s.provider_model = Some(id))
    }

    /// Sends this token with every request of the node (to whatever host it calls, except
    /// a provider's file downloads). Without it, the HF token from the environment is sent
    /// to Hugging Face hosts only.
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

    /// Bills an organisation (`X-HF-Bill-To`), sent along with the token.
    pub fn bill_to(self, org: impl Into<String>) -> Self {
        let org = org.into();
        self.with(|s| s.bill_to = Some(org))
    }

    /// Any other request field, passed through as given (part of the cache key). Where a
    /// task's request has a `parameters` object (the hf-inference shapes) it goes there,
    /// else at the top level of the body. A `null` value removes a field the node would
    /// send (e.g. `stream_options`).
    ///
    /// ```
    /// use daggr::InferenceNode;
    /// let node = InferenceNode::chat("json", "org/model")
    ///     .param("response_format", serde_json::json!({"type": "json_object"}));
    /// # let _ = node;
    /// ```
    pub fn param(self, key: impl Into<String>, value: serde_json::Value) -> Self {
        let key = key.into();
        self.with(|s| {
            s.params.extra.insert(key, value);
        })
    }

    /// How long to wait for data before giving up on a request (default 300 s): the time
    /// to the first byte of a non-streamed answer, or between tokens of a stream. The
    /// node's overall timeout is [`Configure::timeout`].
    pub fn read_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.read_timeout = timeout)
    }

    /// Retries after HTTP 429 and 503 and after connection failures (default 3).
    pub fn retries(self, n: u32) -> Self {
        self.with(|s| s.retries = n)
    }

    /// The longest wait before a retry, whatever `Retry-After` asks (default 30 s).
    pub fn max_retry_wait(self, max: Duration) -> Self {
        self.with(|s| s.max_retry_wait = max)
    }

    /// Sends the node's requests through `client`, one of your own (a proxy, a custom CA,
    /// other timeouts), instead of the one daggr builds. It is used as it is: its own
    /// timeouts apply, not [`InferenceNode::read_timeout`] (give it a
    /// `reqwest::ClientBuilder::read_timeout` for streams). The token rules are unchanged:
    /// it goes in `Authorization`, which reqwest drops when a redirect leaves the host.
    ///
    /// ```no_run
    /// use daggr::InferenceNode;
    /// let client = reqwest::Client::builder()
    ///     .proxy(reqwest::Proxy::all("http://proxy.internal:3128").unwrap())
    ///     .build()
    ///     .unwrap();
    /// let node = InferenceNode::chat("chat", "meta-llama/Llama-3.1-8B-Instruct").http_client(client);
    /// # let _ = node;
    /// ```
    pub fn http_client(self, client: reqwest::Client) -> Self {
        self.with(|s| s.user_http = Some(client))
    }

    /// Renames the input port.
    pub fn input_name(mut self, name: &str) -> Self {
        self.spec.inputs[0].name = name.to_string();
        self
    }
}

/// Sampling settings shared by chat and text generation nodes.
macro_rules! sampling_methods {
    () => {
        /// Sampling temperature (0 = greedy).
        pub fn temperature(self, t: f64) -> Self {
            self.with(|s| s.params.temperature = Some(t))
        }

        /// Nucleus sampling.
        pub fn top_p(self, p: f64) -> Self {
            self.with(|s| s.params.top_p = Some(p))
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

        /// Streams the answer: each token is reported as node progress (`"N tokens"`, a
        /// fraction of `max_tokens` when set) and the text so far as a partial output
        /// `{"text": …}`. The final value, and the cache key, are the same as without.
        pub fn stream(self, on: bool) -> Self {
            self.with(|s| s.stream = on)
        }
    };
}

impl<Args: ArgTuple> InferenceNode<Args, ChatOutputs> {
    sampling_methods!();

    /// A system prompt, put first unless the conversation has a system message.
    pub fn system(self, prompt: impl Into<String>) -> Self {
        let prompt = prompt.into();
        self.with(|s| s.params.system = Some(prompt))
    }
}

impl InferenceNode<(String,), ChatOutputs> {
    /// Chat completion of one user message (plus the node's system prompt, if set).
    ///
    /// ```no_run
    /// use daggr::{Graph, InferenceNode};
    /// let mut g = Graph::new("chat");
    /// let prompt = g.input("prompt", "Say hello.".to_string());
    /// let answer = g.add(InferenceNode::chat("hello", "meta-llama/Llama-3.1-8B-Instruct:together"), (prompt,));
    /// # let _ = answer.text;
    /// ```
    pub fn chat(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::ChatCompletion, &["prompt"])
    }
}

impl InferenceNode<(String, Image), ChatOutputs> {
    /// Chat completion of a prompt about an image, for vision-language models (e.g.
    /// captioning an image an upstream node generated). Inputs `prompt: String` and
    /// `image: Image`; the outputs and parameters are those of [`InferenceNode::chat`].
    /// The image is sent inline, as a `data:` URL with its MIME type, in an `image_url`
    /// content part after the prompt's text part (the OpenAI vision shape, which the router
    /// and OpenAI-compatible servers accept). It is in the cache key by content. Images over
    /// 20 MiB are refused before any request (downscale them first).
    ///
    /// ```no_run
    /// use daggr::{Graph, InferenceNode};
    /// let mut g = Graph::new("caption");
    /// let prompt = g.input("prompt", "A red square".to_string());
    /// let image = g.add(
    ///     InferenceNode::text_to_image("draw", "black-forest-labs/FLUX.1-schnell"),
    ///     (prompt,),
    /// );
    /// let question = g.input("question", "Describe this image in one sentence.".to_string());
    /// let caption = g.add(
    ///     InferenceNode::vision_chat("caption", "Qwen/Qwen2.5-VL-7B-Instruct")
    ///         .temperature(0.0)
    ///         .max_tokens(64),
    ///     (question, image),
    /// );
    /// # let _ = caption.text;
    /// ```
    pub fn vision_chat(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::ChatCompletion, &["prompt", "image"])
    }
}

impl InferenceNode<(Vec<ChatMessage>,), ChatOutputs> {
    /// Chat completion of a whole conversation.
    pub fn chat_messages(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::ChatCompletion, &["messages"])
    }
}

impl InferenceNode<(ChatRequest,), ChatOutputs> {
    /// Chat completion of a [`ChatRequest`]: the conversation and its sampling parameters
    /// arrive on one typed port; the node's own settings fill in what the request leaves
    /// unset.
    pub fn chat_request(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::ChatCompletion, &["request"])
    }
}

impl InferenceNode<(String,), String> {
    /// Text generation (completion) from a prompt.
    pub fn text_generation(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::TextGeneration, &["prompt"])
    }

    sampling_methods!();

    /// Top-k sampling.
    pub fn top_k(self, k: u32) -> Self {
        self.with(|s| s.params.top_k = Some(k))
    }
}

impl InferenceNode<(String,), Image> {
    /// Text to image. The answer may be raw image bytes (hf-inference, Inference
    /// Endpoints), base64 JSON (together, nscale, OpenAI-compatible servers) or a URL
    /// (fal-ai, replicate), which is downloaded without credentials.
    pub fn text_to_image(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::TextToImage, &["prompt"])
    }

    /// Image size in pixels.
    pub fn size(self, width: u32, height: u32) -> Self {
        self.with(|s| {
            s.params.width = Some(width);
            s.params.height = Some(height);
        })
    }

    /// A seed.
    pub fn seed(self, seed: u64) -> Self {
        self.with(|s| s.params.seed = Some(seed))
    }

    /// What the image should not show.
    pub fn negative_prompt(self, prompt: impl Into<String>) -> Self {
        let prompt = prompt.into();
        self.with(|s| s.params.negative_prompt = Some(prompt))
    }

    /// Denoising steps.
    pub fn num_inference_steps(self, steps: u32) -> Self {
        self.with(|s| s.params.num_inference_steps = Some(steps))
    }

    /// Guidance scale.
    pub fn guidance_scale(self, scale: f64) -> Self {
        self.with(|s| s.params.guidance_scale = Some(scale))
    }
}

impl InferenceNode<(String,), Vec<f32>> {
    /// The embedding of one text. (`normalize`, `truncate`, `dimensions`, … go through
    /// [`InferenceNode::param`].)
    pub fn feature_extraction(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::FeatureExtraction, &["text"])
    }
}

impl InferenceNode<(Vec<String>,), Vec<Vec<f32>>> {
    /// The embeddings of several texts, in one request, in order.
    pub fn feature_extraction_batch(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::FeatureExtraction, &["texts"])
    }
}

impl InferenceNode<(Audio,), String> {
    /// Speech to text (hf-inference and Inference Endpoints: the audio's bytes; fal-ai: a
    /// data URL; OpenAI-compatible servers: `audio/transcriptions`).
    pub fn speech_recognition(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::AutomaticSpeechRecognition, &["audio"])
    }
}

impl InferenceNode<(Image,), Vec<Label>> {
    /// Image classification: labels with scores, best first.
    pub fn image_classification(name: &str, model: &str) -> Self {
        Self::new(name, model, Task::ImageClassification, &["image"])
    }

    /// Return at most this many labels.
    pub fn top_k(self, k: u32) -> Self {
        self.with(|s| s.params.top_k = Some(k))
    }
}

impl<Args: ArgTuple, Out: InferenceOutput> Configure for InferenceNode<Args, Out> {
    fn config_mut(&mut self) -> &mut NodeConfig {
        &mut self.spec.config
    }
}

fn encode<T: PortValue>(s: &Settings, port: &str, value: T) -> Result<Value, Error> {
    Value::new(value).map_err(|source| Error::Codec {
        node: s.node.clone(),
        port: port.to_string(),
        type_name: std::any::type_name::<T>(),
        source,
    })
}

/// An answer as the node's output values, in port order.
fn outputs(s: &Settings, answer: Answer) -> Result<Vec<Value>, Error> {
    Ok(match answer {
        Answer::Chat(c) => vec![
            encode(s, "text", c.text)?,
            encode(s, "usage", c.usage)?,
            encode(s, "finish_reason", c.finish_reason)?,
        ],
        Answer::Text(t) => vec![encode(s, "text", t)?],
        Answer::Image(i) => vec![encode(s, "image", i)?],
        Answer::Embedding(e) => vec![encode(s, "embedding", e)?],
        Answer::Embeddings(e) => vec![encode(s, "embeddings", e)?],
        Answer::Labels(l) => vec![encode(s, "labels", l)?],
        Answer::ImageUrl(url) => {
            return Err(s.remote(&url, None, "the image was not downloaded"));
        }
    })
}

impl<Args: ArgTuple, Out: InferenceOutput> Node for InferenceNode<Args, Out> {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn run(
        &self,
        ctx: NodeContext,
        inputs: Inputs,
    ) -> BoxFuture<'static, Result<Vec<Value>, BoxError>> {
        let settings = self.settings.clone();
        let inputs: Vec<Value> = (0..inputs.len()).map(|i| inputs.value(i).clone()).collect();
        Box::pin(async move {
            let answer = client::call(&settings, &ctx, &inputs).await?;
            Ok(outputs(&settings, answer)?)
        })
    }
}

impl<Args: ArgTuple, Out: InferenceOutput> TypedNode for InferenceNode<Args, Out> {
    type Args = Args;
    type Handles = Out::Handles;
    fn handles(node: usize) -> Out::Handles {
        Out::handles(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_split_off_their_provider() {
        assert_eq!(split_model("org/m"), ("org/m".into(), None));
        assert_eq!(
            split_model("org/m:together"),
            ("org/m".into(), Some("together".into()))
        );
        assert_eq!(split_model("org/m:"), ("org/m:".into(), None));
    }

    #[test]
    fn the_cache_key_holds_model_provider_task_and_params_but_no_token() {
        let a = InferenceNode::chat("a", "org/m:together")
            .temperature(0.0)
            .token(HfToken::new("hf_secret_value"));
        let spec = a.spec();
        assert_eq!(spec.identity, "chat-completion:org/m:together");
        assert_eq!(spec.params["params"]["temperature"], 0.0);
        assert_eq!(spec.params["provider"], "together");
        let text = format!("{} {}", spec.identity, spec.params);
        assert!(!text.contains("hf_secret_value"));
        // Streaming and timeouts do not change the answer, so not the key either.
        let b = InferenceNode::chat("a", "org/m:together")
            .temperature(0.0)
            .stream(true)
            .read_timeout(Duration::from_secs(1));
        assert_eq!(b.spec().params, spec.params);
        let c = InferenceNode::chat("a", "org/m:together").temperature(0.5);
        assert_ne!(c.spec().params, spec.params);
        assert_eq!(
            InferenceNode::chat("a", "org/m")
                .base_url("http://x/v1/")
                .spec()
                .params["endpoint"],
            serde_json::json!({"kind": "open_ai", "url": "http://x/v1"})
        );
    }

    #[test]
    fn ports_follow_the_task() {
        let chat = InferenceNode::chat_request("c", "m");
        let names: Vec<_> = chat
            .spec()
            .outputs
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["text", "usage", "finish_reason"]);
        assert_eq!(chat.spec().inputs[0].name, "request");
        let vision = InferenceNode::vision_chat("v", "m");
        let inputs: Vec<_> = vision
            .spec()
            .inputs
            .iter()
            .map(|p| (p.name.as_str(), p.ty.is::<Image>()))
            .collect();
        assert_eq!(inputs, [("prompt", false), ("image", true)]);
        assert_eq!(vision.spec().outputs.len(), 3);
        let embed = InferenceNode::feature_extraction_batch("e", "m");
        assert_eq!(embed.spec().outputs[0].name, "embeddings");
        assert!(embed.spec().outputs[0].ty.is::<Vec<Vec<f32>>>());
    }
}
