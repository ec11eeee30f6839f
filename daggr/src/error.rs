//! The one error type of the `daggr` crate.

use std::time::Duration;

/// A boxed error from user code or a remote service; keeps its cause chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while building or running a pipeline.
///
/// Every variant that concerns a node names it, and every variant that
/// concerns a port names the port too.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two nodes share a name; names identify nodes in errors, caches and the inspector.
    #[error("duplicate node name `{name}`: every node in a pipeline needs its own name")]
    DuplicateNode {
        /// The name used twice.
        name: String,
    },
    /// A node name that the graph does not contain.
    #[error("unknown node `{name}`{}", did_you_mean(.suggestion))]
    UnknownNode {
        /// The name that was looked up.
        name: String,
        /// The closest existing name, if any is close.
        suggestion: Option<String>,
    },
    /// A port name that the node does not have.
    #[error("node `{node}` has no {direction} port `{port}`{} (its {direction} ports: {})", did_you_mean(.suggestion), .available.join(", "))]
    UnknownPort {
        /// The node.
        node: String,
        /// `input` or `output`.
        direction: &'static str,
        /// The port name that was looked up.
        port: String,
        /// The ports the node does have.
        available: Vec<String>,
        /// The closest existing port, if any is close.
        suggestion: Option<String>,
    },
    /// An edge whose two ends carry different types.
    #[error("cannot wire `{from}` (type `{from_type}`) into `{to}` (type `{to_type}`): insert a converter node")]
    TypeMismatch {
        /// Source, as `node.port`.
        from: String,
        /// Source type.
        from_type: &'static str,
        /// Destination, as `node.port`.
        to: String,
        /// Destination type.
        to_type: &'static str,
    },
    /// An input port that is connected twice.
    #[error("input `{node}.{port}` is wired twice: an input takes exactly one source")]
    InputWiredTwice {
        /// The node.
        node: String,
        /// The port.
        port: String,
    },
    /// A required input that nothing feeds.
    #[error("required input `{node}.{port}` is not connected: wire an output, a constant or a generated value into it")]
    UnconnectedInput {
        /// The node.
        node: String,
        /// The port.
        port: String,
    },
    /// The graph contains a loop.
    #[error("the graph has a cycle: {}", cycle_text(.nodes))]
    Cycle {
        /// The nodes of the loop, in order.
        nodes: Vec<String>,
    },
    /// Building found several problems; all of them are listed.
    #[error("the pipeline has {} problems:\n{}", .0.len(), list(.0))]
    Invalid(Vec<Error>),
    /// A node returned an error (its cause chain is kept as `source`).
    #[error("node `{node}` failed: {source}")]
    NodeFailed {
        /// The node.
        node: String,
        /// What the node's code reported.
        #[source]
        source: BoxError,
    },
    /// A copy of a failed node's error as a run reported it (the original, with its cause
    /// chain, is in the run's outcomes).
    #[error("{message}")]
    Failed {
        /// The node.
        node: String,
        /// The error and its cause chain, as text.
        message: String,
    },
    /// Items of a map failed (the node fails only when it is set to; the other items were
    /// computed and cached).
    #[error("node `{node}`: {} of {total} items failed: {}", .failed.len(), items_text(.failed))]
    ItemsFailed {
        /// The map node.
        node: String,
        /// How many items the input lists had.
        total: usize,
        /// The failed items, in item order, each with its error chain.
        failed: Vec<ItemError>,
    },
    /// Every variant a choice node tried failed.
    #[error("node `{node}`: {}", variants_text(.tried))]
    VariantsFailed {
        /// The choice node.
        node: String,
        /// The variants tried, in order, with their error chains.
        tried: Vec<(String, String)>,
    },
    /// A choice node's selection names no variant.
    #[error("node `{node}` has no variant `{variant}`{} (its variants: {})", did_you_mean(.suggestion), .available.join(", "))]
    UnknownVariant {
        /// The choice node.
        node: String,
        /// The selection.
        variant: String,
        /// The variants the node has.
        available: Vec<String>,
        /// The closest variant name, if any is close.
        suggestion: Option<String>,
    },
    /// A batch cannot be created, resumed or run as asked.
    #[error("batch `{batch}`: {message}")]
    Batch {
        /// The batch's name.
        batch: String,
        /// What is wrong.
        message: String,
    },
    /// A batch name that the sheet store does not hold.
    #[error("unknown batch `{name}`{}", did_you_mean(.suggestion))]
    UnknownBatch {
        /// The name looked up.
        name: String,
        /// The closest existing batch name, if any is close.
        suggestion: Option<String>,
    },
    /// A node ran longer than its timeout.
    #[error("node `{node}` timed out after {after:?}")]
    Timeout {
        /// The node.
        node: String,
        /// The configured timeout.
        after: Duration,
    },
    /// The run was cancelled while the node was pending or running.
    #[error("node `{node}` was cancelled")]
    Cancelled {
        /// The node.
        node: String,
    },
    /// A remote service (a Gradio app, an inference endpoint) answered with an error or
    /// could not be reached.
    #[error("node `{node}` failed: {service} {endpoint}{}: {message}", status.map(|s| format!(" answered HTTP {s}")).unwrap_or_default())]
    Remote {
        /// The node.
        node: String,
        /// What was called: `Space owner/name`, `model org/m via provider p`, a URL.
        service: String,
        /// The endpoint or API name.
        endpoint: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// The server's own message (never containing credentials).
        message: String,
    },
    /// A node's input has no value, because the upstream node never ran.
    #[error("input `{node}.{port}` has no value: upstream node `{upstream}` has no result yet (run to `{node}` instead)")]
    MissingUpstream {
        /// The node that needed the value.
        node: String,
        /// Its input port.
        port: String,
        /// The node that should have produced it.
        upstream: String,
    },
    /// A value could not be encoded or decoded at a port.
    #[error("port `{node}.{port}`: cannot encode or decode a `{type_name}` value: {source}")]
    Codec {
        /// The node.
        node: String,
        /// The port.
        port: String,
        /// The Rust type of the port.
        type_name: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A value of the wrong type was given to a port at run time.
    #[error("port `{node}.{port}` takes `{expected}`, got `{found}`")]
    WrongValueType {
        /// The node.
        node: String,
        /// The port.
        port: String,
        /// The port's type.
        expected: &'static str,
        /// The given value's type.
        found: &'static str,
    },
    /// A node's value is out of date with its inputs and was not recomputed.
    #[error(
        "node `{node}` is stale: its inputs changed since it last ran; run it (or run to it) first"
    )]
    Stale {
        /// The node.
        node: String,
    },
    /// A node has no result.
    #[error("node `{node}` has no result yet")]
    NoResult {
        /// The node.
        node: String,
    },
    /// The content-addressed store failed.
    #[error("cache at {path}: {source}")]
    Cache {
        /// The cache directory.
        path: std::path::PathBuf,
        /// The cacache error.
        #[source]
        source: Box<cacache::Error>,
    },
    /// A typed handle (`Output`) made by another graph was given to a pipeline, a report or
    /// a graph it does not belong to: it would name whatever node has the same index here.
    #[error("{what} is given a handle from {handle_graph}, but belongs to `{here}`: use the handles `{here}`'s graph returned")]
    ForeignHandle {
        /// What was given the handle (`Pipeline::set_input`, `RunReport::value`, …).
        what: String,
        /// The graph the handle came from (`graph `name`` or `another graph (#id)`).
        handle_graph: String,
        /// The pipeline or graph it was given to.
        here: String,
    },
    /// The shared store behind the cache (object storage) failed, or its address is not
    /// understood.
    #[error("shared cache store {store}: {context}: {source}")]
    SharedStore {
        /// The store's address (`s3://bucket/prefix`, …).
        store: String,
        /// What was being done.
        context: String,
        /// The store's error, with its causes.
        #[source]
        source: BoxError,
    },
    /// The sheet database failed.
    #[cfg(feature = "sheets")]
    #[error("sheet database {path}: {source}")]
    Sheet {
        /// The database file.
        path: std::path::PathBuf,
        /// The SQLite error.
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// No sheet of that name exists for the pipeline.
    #[error("no sheet named `{name}`{}", did_you_mean(.suggestion))]
    UnknownSheet {
        /// The name looked up.
        name: String,
        /// The closest existing name.
        suggestion: Option<String>,
    },
    /// A history entry of a failed or cancelled execution was selected: it has no outputs
    /// to become the node's current result.
    #[error("history entry {entry} of node `{node}` cannot be selected: it is the {outcome} execution of run {run}, which has no outputs (its log and error stay in the history)")]
    NotSelectable {
        /// The node.
        node: String,
        /// The history entry's id.
        entry: i64,
        /// `failed` or `cancelled`.
        outcome: String,
        /// The run it belongs to.
        run: u64,
    },
    /// A sheet of that name already exists for the pipeline.
    #[error("a sheet named `{name}` already exists")]
    SheetExists {
        /// The name.
        name: String,
    },
    /// Something that needs a Cargo feature daggr was built without (the inspector, sheets,
    /// a remote node kind).
    #[error("daggr was built without the `{feature}` feature, which {what} needs; enable it in Cargo.toml (daggr = {{ features = [\"{feature}\"] }})")]
    FeatureDisabled {
        /// The feature.
        feature: &'static str,
        /// What needs it (`Pipeline::launch`, …).
        what: &'static str,
    },
    /// A file-system error outside cacache (creating the cache directory, reading media files).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}

fn cycle_text(nodes: &[String]) -> String {
    let mut text = nodes.join(" -> ");
    if let Some(first) = nodes.first() {
        text.push_str(" -> ");
        text.push_str(first);
    }
    text
}

fn list(errors: &[Error]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// One "did you mean" rule for the runtime, the macros and `cargo daggr`.
pub(crate) use daggr_codegen::suggest;

impl Error {
    /// Every problem at once: none is `Ok`, one is returned as it is, several as
    /// [`Error::Invalid`] (in the order given).
    pub(crate) fn all(mut problems: Vec<Error>) -> Result<(), Error> {
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(Error::Invalid(problems)),
        }
    }

    /// The name of the node this error is about, if it is about one.
    pub fn node(&self) -> Option<&str> {
        match self {
            Error::NodeFailed { node, .. }
            | Error::Timeout { node, .. }
            | Error::Cancelled { node }
            | Error::MissingUpstream { node, .. }
            | Error::Codec { node, .. }
            | Error::WrongValueType { node, .. }
            | Error::Stale { node }
            | Error::NoResult { node }
            | Error::UnconnectedInput { node, .. }
            | Error::InputWiredTwice { node, .. }
            | Error::UnknownPort { node, .. }
            | Error::Remote { node, .. }
            | Error::NotSelectable { node, .. }
            | Error::ItemsFailed { node, .. }
            | Error::VariantsFailed { node, .. }
            | Error::UnknownVariant { node, .. }
            | Error::Failed { node, .. } => Some(node),
            Error::DuplicateNode { name } => Some(name),
            _ => None,
        }
    }
}

/// Why one item of a map failed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemError {
    /// The item's position in the input list.
    pub index: usize,
    /// The error with its cause chain.
    pub error: String,
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {}: {}", self.index, self.error)
    }
}

impl std::error::Error for ItemError {}

/// The first few failed items of a map, for its error message.
fn items_text(failed: &[ItemError]) -> String {
    const SHOWN: usize = 5;
    let mut text = failed
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if failed.len() > SHOWN {
        text.push_str(&format!("; and {} more", failed.len() - SHOWN));
    }
    text
}

/// What each variant a choice tried answered, for its error message.
fn variants_text(tried: &[(String, String)]) -> String {
    match tried {
        [(name, error)] => format!("variant `{name}` failed: {error}"),
        _ => format!(
            "every variant failed: {}",
            tried
                .iter()
                .map(|(name, error)| format!("`{name}`: {error}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// The message of a caught panic (`&str` and `String` payloads; others are "unknown panic").
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Formats an error with its whole cause chain, `outer: inner: innermost` (a cause whose
/// text already ends the message is not repeated).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
