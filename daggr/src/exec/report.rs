//! What runs leave behind: each node's [`NodeResult`] (or [`NodeFailure`]), its
//! [`Outcome`] in a run, and the [`RunReport`] of a whole run.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::CacheKey;
use crate::error::Error;
use crate::graph::Output;
use crate::node::event::{error_chain, CacheSource, Logs};
use crate::value::{ContentHash, PortValue, Value};
use serde::Serialize;

/// A node's current result.
#[derive(Clone, Debug)]
pub struct NodeResult {
    /// The cache key it was computed (or found) under.
    pub key: CacheKey,
    /// The content hash each input had (generated inputs included).
    pub inputs: Vec<ContentHash>,
    /// Generated input values (seeds, timestamps), by port name.
    pub generated: Vec<(String, Value)>,
    /// The outputs, one per output port.
    pub outputs: Arc<[Value]>,
    /// Computed or served from the cache.
    pub outcome: Outcome,
    /// The run that produced it.
    pub run: u64,
    /// When it was adopted, in milliseconds since the Unix epoch.
    pub finished_unix_ms: u64,
    /// The log written while it was computed (see [`NodeContext::log`](crate::node::NodeContext::log)); empty when it
    /// came from the cache, since the node did not run.
    pub logs: Arc<Logs>,
    /// For a map or a choice: what each part did (`None` for other nodes). A result found
    /// whole in the cache has them too: a map's items, each a hit from the same place (with
    /// the key it has for its inputs), and for a choice the selected variant.
    pub parts: Option<Arc<Parts>>,
}

/// What a node made of other nodes did, part by part ([`NodeResult::parts`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Parts {
    /// A map's items, in item order.
    Items(Vec<ItemOutcome>),
    /// Which variant of a choice produced the result, and the ones that failed before it.
    Variant {
        /// The variant whose result this is.
        used: String,
        /// The variants tried before it that failed, with their error chains (the
        /// selected one first when the choice fell back).
        failed: Vec<(String, String)>,
    },
}

impl Parts {
    /// Whether every part succeeded at once: no item failed, and the selected variant
    /// answered (no fallback). An incomplete result is never reused by key: the next run
    /// tries the failed parts again.
    pub fn is_complete(&self) -> bool {
        match self {
            Parts::Items(items) => items
                .iter()
                .all(|i| !matches!(i.outcome, Outcome::Failed(_))),
            Parts::Variant { failed, .. } => failed.is_empty(),
        }
    }

    /// The failed items of a map (none for a choice: a result means a variant succeeded).
    pub fn failed_items(&self) -> impl Iterator<Item = (usize, &ItemOutcome)> {
        let items: &[ItemOutcome] = match self {
            Parts::Items(items) => items,
            Parts::Variant { .. } => &[],
        };
        items
            .iter()
            .enumerate()
            .filter(|(_, item)| matches!(item.outcome, Outcome::Failed(_)))
    }
}

/// One item of a map: its own cache key (the key the item's node has for that item's
/// inputs) and what became of it.
#[derive(Clone, Debug)]
pub struct ItemOutcome {
    /// The item's cache key.
    pub key: CacheKey,
    /// Computed, served from the cache, or failed.
    pub outcome: Outcome,
}

/// A node that failed or was cancelled in a run, as [`ResultObserver::on_failure`](super::ResultObserver::on_failure) is told
/// of it. It is not a result: the node's current (last good) result, if any, stays current.
#[derive(Clone, Debug)]
pub struct NodeFailure {
    /// The run it failed in.
    pub run: u64,
    /// Whether the run was cancelled while the node was running (rather than the node
    /// failing by itself).
    pub cancelled: bool,
    /// The error with its whole cause chain, `outer: inner: innermost`.
    pub error: String,
    /// Attempts started: 0 when it failed before running (its inputs could not be gathered,
    /// or the run was cancelled while it waited for a concurrency slot).
    pub attempts: u32,
    /// Time from the start of its first attempt to the failure (zero when none started).
    pub elapsed: Duration,
    /// When it failed, in milliseconds since the Unix epoch.
    pub finished_unix_ms: u64,
    /// The cache key it would have been stored under; `None` when it failed before its
    /// inputs were gathered, and then `inputs` and `generated` are empty too.
    pub key: Option<CacheKey>,
    /// The content hash each input had (generated inputs included).
    pub inputs: Vec<ContentHash>,
    /// Generated input values (seeds, timestamps), by port name.
    pub generated: Vec<(String, Value)>,
    /// The log it wrote: its own lines and the executor's (each retry, a timeout,
    /// cancellation, the final error), bounded like a result's.
    pub logs: Arc<Logs>,
}

/// How a node fared in a run.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The node ran.
    Computed {
        /// Time of the successful attempt.
        elapsed: Duration,
        /// Attempts used.
        attempts: u32,
    },
    /// The result came from the cache.
    Cached(CacheSource),
    /// The node failed (its previous result, if any, is kept and is now stale).
    Failed(Arc<Error>),
    /// Not run, because this upstream node failed or was cancelled.
    Skipped {
        /// The node whose failure caused the skip.
        because: String,
    },
}

impl Outcome {
    /// Whether the node has a usable value from this run.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Computed { .. } | Outcome::Cached(_))
    }

    /// The node span's `outcome` field: one word per way a node can end, so a log can be
    /// filtered on it (`computed`, `memory`, `disk`, `workspace`, `shared`, `failed`,
    /// `skipped`).
    pub(super) fn span_label(&self) -> &'static str {
        match self {
            Outcome::Computed { .. } => "computed",
            Outcome::Cached(CacheSource::Memory) => "memory",
            Outcome::Cached(CacheSource::Disk) => "disk",
            Outcome::Cached(CacheSource::Workspace) => "workspace",
            Outcome::Cached(CacheSource::Shared) => "shared",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped { .. } => "skipped",
        }
    }
}

/// Where a result is saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PersistTarget {
    /// The content-addressed cache (its entry for the result's key).
    Cache,
    /// The sheet's database (the history entry, and the large outputs and media it refers
    /// to in the cache directory).
    Sheet,
}

impl std::fmt::Display for PersistTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PersistTarget::Cache => "cache",
            PersistTarget::Sheet => "sheet",
        })
    }
}

/// A result a run computed (or adopted) but could not save (see [`RunReport::unsaved`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unsaved {
    /// The node.
    pub node: String,
    /// Where it was not saved.
    pub target: PersistTarget,
    /// Why, with the cause chain (e.g. `No space left on device`).
    pub error: String,
}

/// What a run did, node by node.
#[derive(Debug)]
pub struct RunReport {
    /// The run number.
    pub run: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the run was cancelled.
    pub cancelled: bool,
    pub(super) names: Arc<[Arc<str>]>,
    /// The pipeline's name and graph id, to refuse handles of other graphs.
    pub(super) pipeline: (Arc<str>, u64),
    pub(super) outcomes: Vec<(usize, Outcome)>,
    /// The values of the nodes done, by node index.
    pub(super) values: Vec<Option<Arc<[Value]>>>,
    /// The computed results queued for the cache: node and key.
    /// (Read by sheets, which wait for the writer; a plain run does not.)
    #[cfg_attr(not(feature = "sheets"), allow(dead_code))]
    pub(super) queued: Vec<(usize, CacheKey)>,
    pub(super) unsaved: Vec<Unsaved>,
}

impl RunReport {
    /// Every evaluated node's name and outcome, in completion order.
    pub fn outcomes(&self) -> impl Iterator<Item = (&str, &Outcome)> {
        self.outcomes.iter().map(|(n, o)| (&*self.names[*n], o))
    }

    /// One node's outcome.
    pub fn outcome(&self, node: &str) -> Option<&Outcome> {
        self.outcomes().find(|(n, _)| *n == node).map(|(_, o)| o)
    }

    fn names_where(&self, f: impl Fn(&Outcome) -> bool) -> Vec<&str> {
        self.outcomes()
            .filter(|(_, o)| f(o))
            .map(|(n, _)| n)
            .collect()
    }

    /// Names of the nodes that ran.
    pub fn computed(&self) -> Vec<&str> {
        self.names_where(|o| matches!(o, Outcome::Computed { .. }))
    }

    /// Names of the nodes served from the cache.
    pub fn cached(&self) -> Vec<&str> {
        self.names_where(|o| matches!(o, Outcome::Cached(_)))
    }

    /// Names of the nodes that failed.
    pub fn failed(&self) -> Vec<&str> {
        self.names_where(|o| matches!(o, Outcome::Failed(_)))
    }

    /// Names of the nodes skipped because something upstream failed.
    pub fn skipped(&self) -> Vec<&str> {
        self.names_where(|o| matches!(o, Outcome::Skipped { .. }))
    }

    /// The errors of the failed nodes.
    pub fn errors(&self) -> Vec<Arc<Error>> {
        self.outcomes
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Failed(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether every evaluated node has a value, and every result that had to be saved was
    /// ([`RunReport::unsaved`] is empty): a run that computed what it could not keep did
    /// not succeed, though its values are in the report and the workspace.
    pub fn is_success(&self) -> bool {
        !self.cancelled && self.outcomes.iter().all(|(_, o)| o.is_ok()) && self.unsaved.is_empty()
    }

    /// The results of this run that could not be saved (a full disk, say), each also sent
    /// as an [`Event::PersistFailed`](crate::Event::PersistFailed). A node can be listed
    /// once per [`PersistTarget`].
    ///
    /// [`Sheet::run`](crate::sheet::Sheet::run) waits for its writes and fills this in:
    /// a node listed with [`PersistTarget::Sheet`] has no history entry from this run, and
    /// after a reopen the sheet shows its previous result (or none); every other result
    /// was committed. A plain [`Pipeline::run`](crate::Pipeline::run) returns without
    /// waiting for the cache's disk writer, so this is empty there: call
    /// [`Cache::flush`](crate::Cache::flush), which returns the writes that failed.
    pub fn unsaved(&self) -> &[Unsaved] {
        &self.unsaved
    }

    /// The value an output port got in this run. Nodes this run did not evaluate have
    /// no value here; a failed node's error is returned.
    pub fn value<T: PortValue>(&self, out: &Output<T>) -> Result<Arc<T>, Error> {
        let (pipeline, graph) = &self.pipeline;
        if out.graph_id() != 0 && out.graph_id() != *graph {
            return Err(Error::ForeignHandle {
                what: "RunReport::value".into(),
                handle_graph: crate::graph::graph_label(out.graph_id()),
                here: pipeline.to_string(),
            });
        }
        let name = &self.names[out.node];
        if let Some(Some(values)) = self.values.get(out.node) {
            return Ok(values[out.port]
                .downcast::<T>()
                .expect("typed handles always match their port type"));
        }
        match self.outcomes.iter().find(|(n, _)| *n == out.node) {
            Some((_, Outcome::Failed(e))) => Err(Error::Failed {
                node: name.to_string(),
                message: error_chain(e.as_ref()),
            }),
            _ => Err(Error::NoResult {
                node: name.to_string(),
            }),
        }
    }
}
