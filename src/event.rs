//! The event stream every run emits: small deltas, one per node state change.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::value::ContentHash;

/// Where a cached result came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSource {
    /// This process's in-memory memo.
    Memory,
    /// The on-disk content-addressed store.
    Disk,
    /// The workspace's (or sheet's) own current result, whose key still matches.
    Workspace,
}

/// One event of a run. Node events carry the node's index and name, never the graph.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A run began.
    RunStarted {
        /// Run number (per pipeline).
        run: u64,
        /// How many nodes the run will evaluate.
        nodes: usize,
    },
    /// A node started computing (attempt 1 is the first try).
    NodeStarted {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// Attempt number.
        attempt: u32,
    },
    /// A running node reported progress.
    NodeProgress {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// Fraction done, if known.
        fraction: Option<f32>,
        /// Message.
        message: String,
    },
    /// A running node published a partial output.
    NodePartial {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// The partial value as JSON.
        value: serde_json::Value,
    },
    /// A node's result came from the cache; the node did not run.
    NodeCached {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// Memory or disk.
        source: CacheSource,
    },
    /// A node computed its outputs.
    NodeFinished {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// Wall time of the successful attempt.
        #[serde(with = "duration_ms")]
        elapsed: Duration,
        /// Content hashes of the outputs.
        outputs: Vec<ContentHash>,
    },
    /// A node attempt failed and will be retried.
    NodeRetrying {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
    },
    /// A node failed for good.
    NodeFailed {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// The error with its cause chain.
        error: String,
        /// Time spent.
        #[serde(with = "duration_ms")]
        elapsed: Duration,
    },
    /// A node was not run because something it needs failed or was cancelled.
    NodeSkipped {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// The upstream node that failed.
        because: Arc<str>,
    },
    /// A run ended.
    RunFinished {
        /// Run number.
        run: u64,
        /// Nodes computed.
        computed: usize,
        /// Nodes served from the cache.
        cached: usize,
        /// Nodes failed.
        failed: usize,
        /// Nodes skipped.
        skipped: usize,
        /// Whether the run was cancelled.
        cancelled: bool,
        /// Wall time.
        #[serde(with = "duration_ms")]
        elapsed: Duration,
    },
}

mod duration_ms {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
}

/// The sending side of a pipeline's event stream (cheap when nobody listens).
#[derive(Clone)]
pub(crate) struct EventSender(broadcast::Sender<Event>);

impl EventSender {
    pub(crate) fn new(capacity: usize) -> Self {
        EventSender(broadcast::channel(capacity).0)
    }

    pub(crate) fn send(&self, event: Event) {
        if self.0.receiver_count() > 0 {
            let _ = self.0.send(event);
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }
}

/// Formats an error with its whole cause chain, `outer: inner: innermost`.
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
