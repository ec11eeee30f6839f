//! The node abstraction every node kind implements, and the per-node settings.

pub mod composite;
pub mod event;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::error::BoxError;
use crate::node::event::{Event, EventSender, LogBuffer};
use crate::value::{PortType, PortValue, Value};

/// One input or output port: a name and a Rust type.
#[derive(Clone, Debug)]
pub struct PortSpec {
    /// The port name, unique among the node's inputs (or outputs).
    pub name: String,
    /// The Rust type that crosses the port.
    pub ty: PortType,
}

impl PortSpec {
    /// A port named `name` carrying `T`.
    pub fn new<T: PortValue>(name: impl Into<String>) -> Self {
        PortSpec {
            name: name.into(),
            ty: PortType::of::<T>(),
        }
    }
}

/// Whether a node's results are read from and written to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CachePolicy {
    /// Reuse a result whose key matches; store new results.
    #[default]
    Default,
    /// Always run the node, then store the result (a fresh draw each run).
    AlwaysRecompute,
    /// Always run the node and never store its result (secrets, huge or throw-away outputs).
    NeverCache,
}

/// How often and how patiently a failing node is retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    /// Delay before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 0,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// `retries` extra attempts with exponential backoff starting at `backoff`.
    pub fn new(retries: u32, backoff: Duration) -> Self {
        RetryPolicy {
            retries,
            backoff,
            ..RetryPolicy::default()
        }
    }

    /// The delay before attempt `attempt` (1 = first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Scheduling and caching settings of a node, shared by every node kind.
#[derive(Clone, Debug, Default)]
pub struct NodeConfig {
    /// Cache policy.
    pub cache: CachePolicy,
    /// Concurrency group (a group's limit is set on the graph, e.g. `"gpu"` → 1).
    pub group: Option<String>,
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Manual version, part of the cache key: bump it when called code changed in a way the
    /// code fingerprint cannot see.
    pub version: Option<String>,
}

/// Everything the engine needs to know about a node, apart from how to run it.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The node's name in its pipeline (unique).
    pub name: String,
    /// The node kind, e.g. `"fn"`, `"gradio"`, `"inference"`.
    pub kind: &'static str,
    /// What the node computes, independent of its place in a graph: a function path, a
    /// Space and endpoint, a model and provider. Part of the cache key.
    pub identity: String,
    /// A fingerprint of the node's code (the `#[fn_node]` macro hashes the function's
    /// tokens; remote nodes use the remote revision). Part of the cache key.
    pub code_fingerprint: String,
    /// The node's parameters, canonically encoded. Part of the cache key.
    pub params: serde_json::Value,
    /// Input ports, in call order.
    pub inputs: Vec<PortSpec>,
    /// Output ports.
    pub outputs: Vec<PortSpec>,
    /// Scheduling and caching settings.
    pub config: NodeConfig,
}

/// What a node's `run` receives: one value per input port, in port order.
pub struct Inputs {
    pub(crate) node: Arc<str>,
    pub(crate) values: Vec<Value>,
    pub(crate) names: Vec<String>,
}

impl Inputs {
    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the node has no inputs.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The erased value at `index`.
    pub fn value(&self, index: usize) -> &Value {
        &self.values[index]
    }

    /// An owned, typed copy of input `index`; an error names the node and the port.
    pub fn get<T: PortValue>(&self, index: usize) -> Result<T, crate::Error> {
        let value = &self.values[index];
        match value.to_owned_value::<T>() {
            Some(Ok(v)) => Ok(v),
            Some(Err(source)) => Err(crate::Error::Codec {
                node: self.node.to_string(),
                port: self.names[index].clone(),
                type_name: std::any::type_name::<T>(),
                source,
            }),
            None => Err(crate::Error::WrongValueType {
                node: self.node.to_string(),
                port: self.names[index].clone(),
                expected: std::any::type_name::<T>(),
                found: value.port_type().name(),
            }),
        }
    }
}

/// Handed to a running node: progress reporting, its log, and cancellation.
#[derive(Clone)]
pub struct NodeContext {
    pub(crate) node: Arc<str>,
    pub(crate) index: usize,
    pub(crate) run: u64,
    pub(crate) cancel: CancellationToken,
    pub(crate) events: EventSender,
    pub(crate) log: LogBuffer,
}

impl NodeContext {
    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// Reports progress: a fraction in `0.0..=1.0` (if known) and a message.
    ///
    /// Progress also goes to the node's log as `progress 50%: message`, at most once a
    /// second (streams report progress per token): an update that comes sooner is skipped,
    /// unless nothing else is logged after it, then it is written when the node ends.
    pub fn progress(&self, fraction: Option<f32>, message: impl Into<String>) {
        let fraction = fraction.map(|f| f.clamp(0.0, 1.0));
        let message = message.into();
        self.log.progress(fraction, &message);
        self.events.send(Event::NodeProgress {
            run: self.run,
            node: self.index,
            name: self.node.clone(),
            fraction,
            message,
        });
    }

    /// Writes a line to the node's log.
    ///
    /// Each line is stamped with the time it was written, sent as an
    /// [`Event::NodeLog`] (the inspector shows it live in the node's Logs section) and kept
    /// with the node's result, so a sheet stores it with the result's history entry. A
    /// result keeps the last [`MAX_LOG_LINES`](crate::node::event::MAX_LOG_LINES) lines (earlier
    /// ones are counted as dropped); a trailing newline is removed and a line longer than
    /// [`MAX_LOG_LINE_BYTES`](crate::node::event::MAX_LOG_LINE_BYTES) is cut. The executor writes
    /// to the same log: progress, each retry with the error that caused it, a timeout,
    /// cancellation and the final error.
    ///
    /// ```
    /// use daggr::{constant, Cache, FnNode, Graph, NodeContext, Scope};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut g = Graph::new("logs").cache(Cache::open(dir.path())?);
    /// let total = g.add(
    ///     FnNode::with_context("total", |ctx: NodeContext, n: u64| async move {
    ///         ctx.log(format!("adding 1..={n}"));
    ///         let sum = (1..=n).sum::<u64>();
    ///         ctx.log(format!("sum = {sum}"));
    ///         Ok::<_, std::io::Error>(sum)
    ///     }),
    ///     (constant(4u64),),
    /// );
    /// let pipeline = g.build()?;
    /// pipeline.run(Scope::All).await?;
    /// let result = pipeline.result(total)?.expect("the node ran");
    /// let lines: Vec<&str> = result.logs.lines.iter().map(|l| l.line.as_str()).collect();
    /// assert_eq!(lines, ["adding 1..=4", "sum = 10"]);
    /// # Ok(()) }
    /// ```
    pub fn log(&self, line: impl Into<String>) {
        self.log.write(line);
    }

    /// Publishes a partial output (streamed tokens, an intermediate image) as JSON.
    pub fn partial(&self, value: serde_json::Value) {
        self.events.send(Event::NodePartial {
            run: self.run,
            node: self.index,
            name: self.node.clone(),
            value,
        });
    }

    /// Whether the run was cancelled; long synchronous work should check this.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the run is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// The cancellation token itself, for passing to other async code.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// A node: its spec, and how to compute its outputs from its inputs.
///
/// Implemented by [`crate::FnNode`] and by the remote node kinds; implement it
/// yourself for a node kind of your own.
pub trait Node: Send + Sync + 'static {
    /// The node's spec (name, identity, ports, settings).
    fn spec(&self) -> &NodeSpec;

    /// Runs the node once. Returns one value per output port, in port order.
    /// Async nodes are cancelled by being dropped; long synchronous work should
    /// check [`NodeContext::is_cancelled`].
    fn run(
        &self,
        ctx: NodeContext,
        inputs: Inputs,
    ) -> BoxFuture<'static, Result<Vec<Value>, BoxError>>;

    /// A code fingerprint that is only learnt when a run starts, such as the current
    /// revision of a remote app. When this returns a future, the executor awaits it before
    /// the cache look-up and keys the node with its answer in place of
    /// [`NodeSpec::code_fingerprint`]; an answer of `None` keeps the spec's fingerprint.
    /// The default, for nodes whose fingerprint is fixed when they are built, is `None`.
    fn runtime_fingerprint(&self) -> Option<BoxFuture<'static, Option<String>>> {
        None
    }

    /// Checks the node against what it calls, before any run: a remote node connects and
    /// checks its endpoint and port names, keeping the connection for its runs.
    /// [`crate::Pipeline::preflight`] awaits this for every node. The default, for nodes
    /// with nothing outside the process to check, is `None`.
    fn preflight(&self) -> Option<BoxFuture<'static, Result<(), crate::Error>>> {
        None
    }

    /// For a node made of other nodes (a map, a choice), how the executor evaluates it part
    /// by part; its own [`Node::run`] is then not called by the executor. `None` (the
    /// default) for every other node.
    fn composite(&self) -> Option<&composite::Composite> {
        None
    }

    /// What a widget for input port `port` may offer (a Gradio app's dropdown choices or
    /// slider range): the inspector uses it for a pipeline input that feeds this port. The
    /// default is `None`.
    fn input_hint(&self, port: usize) -> Option<InputHint> {
        let _ = port;
        None
    }
}

/// What a widget for an input may offer; a field left empty is not known.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct InputHint {
    /// The values allowed (a dropdown), as JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<serde_json::Value>,
    /// The smallest value (a slider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// The largest value (a slider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// The slider's step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    /// Long text: a text area rather than a line.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiline: bool,
}

impl InputHint {
    /// A dropdown of `choices`.
    pub fn choices<T: serde::Serialize>(choices: impl IntoIterator<Item = T>) -> Self {
        InputHint {
            choices: choices
                .into_iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect(),
            ..InputHint::default()
        }
    }

    /// A slider from `minimum` to `maximum`.
    pub fn range(minimum: f64, maximum: f64) -> Self {
        InputHint {
            minimum: Some(minimum),
            maximum: Some(maximum),
            ..InputHint::default()
        }
    }

    /// The slider's step.
    pub fn step(mut self, step: f64) -> Self {
        self.step = Some(step);
        self
    }

    /// A text area for long text.
    pub fn multiline() -> Self {
        InputHint {
            multiline: true,
            ..InputHint::default()
        }
    }
}

/// Setters shared by every node kind's builder.
pub trait Configure: Sized {
    /// The node's settings.
    fn config_mut(&mut self) -> &mut NodeConfig;

    /// Sets the cache policy.
    fn cache_policy(mut self, policy: CachePolicy) -> Self {
        self.config_mut().cache = policy;
        self
    }

    /// Puts the node in a concurrency group (limit set with [`crate::Graph::group_limit`]).
    fn group(mut self, group: impl Into<String>) -> Self {
        self.config_mut().group = Some(group.into());
        self
    }

    /// Sets a per-attempt timeout.
    fn timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().timeout = Some(timeout);
        self
    }

    /// Sets the retry policy.
    fn retry(mut self, retry: RetryPolicy) -> Self {
        self.config_mut().retry = retry;
        self
    }

    /// Sets a manual version, part of the cache key.
    fn version(mut self, version: impl Into<String>) -> Self {
        self.config_mut().version = Some(version.into());
        self
    }
}
