//! The typed values that cross an [`super::InferenceNode`]'s ports, and the handles of
//! its chat nodes.

use serde::{Deserialize, Serialize};

use crate::graph::Output;

/// One chat message.
///
/// ```
/// use daggr::inference::ChatMessage;
/// let m = ChatMessage::user("Hello!");
/// assert_eq!((m.role.as_str(), m.content.as_str()), ("user", "Hello!"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
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
