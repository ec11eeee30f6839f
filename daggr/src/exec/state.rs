//! The state runs read and write: what every workspace of a pipeline shares
//! ([`Structure`]: the graph, the nodes, the cache, the limits) and one workspace's own
//! ([`Shared`]: its bindings, current results, events and observers). The executor and
//! the workspace both build on it; it names neither.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Semaphore;

use super::scope::Adjacency;
use super::{NodeFailure, NodeResult, TerminalProgress};
use crate::cache::{Cache, CacheKey};
use crate::graph::Binding;
use crate::node::event::EventSender;
use crate::node::Node;
use crate::value::Value;

/// What every workspace of a pipeline shares: the graph, the nodes, the cache and the
/// concurrency limits.
pub(super) struct Structure {
    pub(super) name: String,
    /// The [`Graph::id`](crate::Graph::id) it was built from: handles of other graphs are
    /// refused.
    pub(super) graph_id: u64,
    /// The graph IR, made when first asked for (most runs never need it, and it is the
    /// biggest thing a big graph would keep per node).
    pub(super) ir: OnceLock<daggr_codegen::ir::GraphIr>,
    /// Where each node was added, for the IR.
    pub(super) locations: Vec<&'static Location<'static>>,
    pub(super) nodes: Vec<Arc<dyn Node>>,
    pub(super) names: Arc<[Arc<str>]>,
    /// The names again, sharing their allocations.
    pub(super) by_name: HashMap<Arc<str>, usize>,
    /// Topological order.
    pub(super) topo: Vec<usize>,
    /// Distinct upstream and downstream nodes (the edges themselves are in
    /// `default_bindings`).
    pub(super) upstream: Adjacency,
    pub(super) downstream: Adjacency,
    /// The bindings as built: a new workspace starts from these.
    pub(super) default_bindings: Vec<Vec<Binding>>,
    pub(super) cache: Cache,
    pub(super) global: Arc<Semaphore>,
    pub(super) groups: HashMap<String, Arc<Semaphore>>,
    /// The named outputs ([`Graph::name_output`](crate::Graph::name_output)).
    pub(super) outputs: Vec<crate::graph::NamedOutput>,
    /// Inputs shown together, and widget hints of inputs by node index.
    pub(super) input_groups: Vec<crate::graph::InputGroup>,
    pub(super) input_hints: HashMap<usize, crate::node::InputHint>,
}

/// One workspace: its input values, each node's current result, its event stream.
pub(super) struct Shared {
    pub(super) s: Arc<Structure>,
    pub(super) bindings: Mutex<Vec<Vec<Binding>>>,
    pub(super) state: Mutex<Vec<Option<NodeResult>>>,
    pub(super) events: EventSender,
    pub(super) runs: AtomicU64,
    pub(super) progress: Mutex<TerminalProgress>,
    pub(super) observers: Mutex<Vec<Arc<dyn ResultObserver>>>,
}

impl Shared {
    /// The outputs of node `n`'s current result, if it was made under `key` and is complete
    /// (a map with failed items, a choice that fell back, is evaluated again).
    pub(super) fn current_outputs(&self, n: usize, key: &CacheKey) -> Option<Arc<[Value]>> {
        self.state.lock().unwrap()[n]
            .as_ref()
            .filter(|r| r.key == *key && r.parts.as_ref().is_none_or(|p| p.is_complete()))
            .map(|r| r.outputs.clone())
    }
}

/// Told about every result a workspace adopts (computed, or found in the cache), and about
/// every node that fails or is cancelled. Called on the executor's path: implementations
/// must only enqueue work (a sheet queues a database write), never block.
pub trait ResultObserver: Send + Sync + 'static {
    /// `node` (index and name) has a new current result.
    fn on_result(&self, node: usize, name: &str, result: &NodeResult);

    /// `node` (index and name) failed, or was cancelled while running. Its current result
    /// is unchanged (a failure never replaces it and never reaches the cache). Nodes a run
    /// does not start are not reported: those skipped because something upstream failed,
    /// and those a cancelled run never reached. Does nothing unless implemented.
    fn on_failure(&self, node: usize, name: &str, failure: &NodeFailure) {
        let _ = (node, name, failure);
    }
}
