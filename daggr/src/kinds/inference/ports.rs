//! The typed values that cross an [`super::InferenceNode`]'s ports, and the handles of
//! its chat nodes.

use serde::{Deserialize, Serialize};

use crate::graph::Output;
use crate::value::media::Image;

/// One chat message: a role, its text and, for vision-language models, images.
///
/// ```
/// use daggr::inference::ChatMessage;
/// let m = ChatMessage::user("Hello!");
/// assert_eq!((m.role.as_str(), m.content.as_str()), ("user", "Hello!"));
/// assert!(m.images.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Images shown to the model with the text (see [`ChatMessage::user_with_images`]).
    /// As a port value each image is held by its content hash, so the cache key changes
    /// with the pixels; left out of the value's encoding when empty, so text-only
    /// messages encode (and are cached) as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
}

// `Image` compares by MIME type and bytes, a full equivalence, so messages holding images
// are still `Eq` (as they were before they could hold any).
impl Eq for ChatMessage {}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            images: Vec::new(),
        }
    }

    /// A user message with images, for a vision-language model. On the wire its
    /// `content` becomes a list of parts: the text, then each image as an `image_url`
    /// part holding a `data:` URL with the image's MIME type (messages without images
    /// keep plain string content).
    ///
    /// ```
    /// use daggr::inference::ChatMessage;
    /// use daggr::Image;
    /// let png = Image::new(vec![0x89, b'P', b'N', b'G'], "image/png");
    /// let m = ChatMessage::user_with_images("What is in this picture?", [png]);
    /// assert_eq!(m.images.len(), 1);
    /// ```
    pub fn user_with_images(
        text: impl Into<String>,
        images: impl IntoIterator<Item = Image>,
    ) -> Self {
        ChatMessage {
            images: images.into_iter().collect(),
            ..Self::user(text)
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// An assistant message (an earlier answer, in a conversation).
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A whole chat request as one typed value, for [`super::InferenceNode::chat_request`]:
/// the conversation plus every sampling parameter, so upstream nodes can compute them.
/// A parameter left `None` (or `stop` left empty) falls back to the node's own setting.
///
/// ```
/// use daggr::inference::ChatRequest;
/// let request = ChatRequest::prompt("Name a colour.")
///     .system("Answer in one word.")
///     .temperature(0.0)
///     .max_tokens(8)
///     .seed(1)
///     .stop(["\n"]);
/// assert_eq!(request.messages.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// The most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// A sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl ChatRequest {
    /// A request for this conversation.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            ..ChatRequest::default()
        }
    }

    /// A request of one user message.
    pub fn prompt(text: impl Into<String>) -> Self {
        Self::new(vec![ChatMessage::user(text)])
    }

    /// Puts a system message first (replacing one that is there).
    pub fn system(mut self, text: impl Into<String>) -> Self {
        self.messages.retain(|m| m.role != "system");
        self.messages.insert(0, ChatMessage::system(text));
        self
    }

    /// Sets the temperature.
    pub fn temperature(mut self, t: f64) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Sets nucleus sampling.
    pub fn top_p(mut self, p: f64) -> Self {
        self.top_p = Some(p);
        self
    }

    /// Sets the most tokens to generate.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the stop sequences.
    pub fn stop(mut self, stop: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }
}

/// Token counts a server reported for one completion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Both.
    #[serde(default)]
    pub total_tokens: u64,
}

/// A classification label with its score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// The label.
    pub label: String,
    /// Its score, 0–1.
    pub score: f64,
}

/// The output ports of a chat node: the answer, the server's token counts and why
/// generation stopped.
///
/// ```no_run
/// use daggr::{FnNode, Graph, InferenceNode};
/// let mut g = Graph::new("doc");
/// let prompt = g.input("prompt", "Name a colour.".to_string());
/// let answer = g.add(InferenceNode::chat("answer", "HuggingFaceTB/SmolLM2-135M-Instruct"), (prompt,));
/// let shout = g.add(FnNode::sync("shout", |s: String| s.to_uppercase()), (answer.text,));
/// # let _ = (shout, answer.usage, answer.finish_reason);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ChatOutputs {
    /// The assistant's answer (port `text`).
    pub text: Output<String>,
    /// Token counts, when the server reports them (port `usage`; streamed answers ask
    /// for them with `stream_options.include_usage`).
    pub usage: Output<Option<Usage>>,
    /// `stop`, `length`, … when the server says (port `finish_reason`).
    pub finish_reason: Output<Option<String>>,
}

/// The output of a chat completion, before it is split into ports.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ChatAnswer {
    pub text: String,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
}
