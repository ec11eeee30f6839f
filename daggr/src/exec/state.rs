//! The state runs read and write: what every workspace of a pipeline shares
//! ([`Structure`]: the graph, the nodes, the cache, the limits) and one workspace's own
//! ([`Shared`]: its bindings, current results, events and observers). The executor and
//! the workspace both build on it; it names neither.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::scope::Adjacency;
use super::{NodeFailure, NodeResult, Outcome, Parts, TerminalProgress};
use crate::cache::{Cache, CacheKey, CacheSource};
use crate::graph::{Binding, NodeEntry};
use crate::node::event::{EventSender, Logs};
use crate::node::Node;
use crate::value::{ContentHash, Value};

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
    /// The node indices in the order of their names, for finding a node by name: four
    /// bytes a node, where a map from name to index would take ten times that.
    pub(super) by_name: Box<[u32]>,
    /// Topological order (node indices fit in 32 bits: see [`Adjacency::both`]).
    pub(super) topo: Vec<u32>,
    /// Distinct upstream and downstream nodes (the edges themselves are in
    /// `default_bindings`).
    pub(super) upstream: Adjacency,
    pub(super) downstream: Adjacency,
    /// The bindings as built: a new workspace starts from these.
    pub(super) default_bindings: Arc<PortBindings>,
    pub(super) cache: Cache,
    pub(super) global: Arc<Semaphore>,
    pub(super) groups: HashMap<String, Arc<Semaphore>>,
    /// The named outputs ([`Graph::name_output`](crate::Graph::name_output)).
    pub(super) outputs: Vec<crate::graph::NamedOutput>,
    /// Inputs shown together, and widget hints of inputs by node index.
    pub(super) input_groups: Vec<crate::graph::InputGroup>,
    pub(super) input_hints: HashMap<usize, crate::node::InputHint>,
}

impl Structure {
    /// The index of the node called `name`.
    pub(super) fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name
            .binary_search_by(|&i| (*self.names[i as usize]).cmp(name))
            .ok()
            .map(|at| self.by_name[at] as usize)
    }
}

/// `by_name` for [`Structure`]: the indices of `names`, sorted by name.
pub(super) fn sorted_by_name(names: &[Arc<str>]) -> Box<[u32]> {
    let mut order: Vec<u32> = (0..names.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
    order.into_boxed_slice()
}

/// Every node's input bindings in one flat array: node `i`'s are
/// `bindings[start[i]..start[i + 1]]`. Two allocations for a whole graph rather than one
/// per node.
pub(super) struct PortBindings {
    start: Vec<u32>,
    bindings: Vec<Binding>,
}

impl PortBindings {
    /// The bindings of a graph's nodes, in node order.
    pub(super) fn new(nodes: Vec<NodeEntry>) -> Self {
        let total: usize = nodes.iter().map(|e| e.bindings.len()).sum();
        assert!(
            total < u32::MAX as usize,
            "a graph has fewer than 2^32 input ports"
        );
        let mut start = Vec::with_capacity(nodes.len() + 1);
        let mut bindings = Vec::with_capacity(total);
        start.push(0);
        for entry in nodes {
            bindings.extend(entry.bindings);
            start.push(bindings.len() as u32);
        }
        PortBindings { start, bindings }
    }

    /// Each node's bindings, in node order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &[Binding]> {
        (0..self.start.len() - 1).map(|n| &self[n])
    }
}

impl std::ops::Index<usize> for PortBindings {
    type Output = [Binding];
    fn index(&self, n: usize) -> &[Binding] {
        &self.bindings[self.start[n] as usize..self.start[n + 1] as usize]
    }
}

/// A workspace's bindings: the pipeline's, except for the nodes whose constants the
/// workspace changed, which have a copy of their own. A workspace over a big graph costs
/// nothing per node until its inputs are edited.
pub(super) struct WorkspaceBindings {
    defaults: Arc<PortBindings>,
    changed: HashMap<usize, Box<[Binding]>>,
}

impl WorkspaceBindings {
    pub(super) fn new(defaults: Arc<PortBindings>) -> Self {
        WorkspaceBindings {
            defaults,
            changed: HashMap::new(),
        }
    }

    /// Binds `binding` to input `port` of node `n`.
    pub(super) fn set(&mut self, n: usize, port: usize, binding: Binding) {
        let defaults = &self.defaults;
        let row = self
            .changed
            .entry(n)
            .or_insert_with(|| defaults[n].to_vec().into_boxed_slice());
        row[port] = binding;
    }

    /// Puts input `port` of node `n` back to the pipeline's binding.
    pub(super) fn reset(&mut self, n: usize, port: usize) {
        let Some(row) = self.changed.get_mut(&n) else {
            return;
        };
        row[port] = self.defaults[n][port].clone();
        // Only constants are ever changed: a row whose constants are all the defaults'
        // again is dropped.
        let same = row.iter().zip(&self.defaults[n]).all(|pair| match pair {
            (Binding::Const(a), Binding::Const(b)) => a.hash() == b.hash(),
            _ => true,
        });
        if same {
            self.changed.remove(&n);
        }
    }

    /// Each node's bindings, in node order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &[Binding]> {
        (0..self.defaults.start.len() - 1).map(|n| &self[n])
    }
}

impl std::ops::Index<usize> for WorkspaceBindings {
    type Output = [Binding];
    fn index(&self, n: usize) -> &[Binding] {
        match self.changed.get(&n) {
            Some(row) => row,
            None => &self.defaults[n],
        }
    }
}

/// One workspace: its input values, each node's current result, its event stream.
pub(super) struct Shared {
    pub(super) s: Arc<Structure>,
    pub(super) bindings: Mutex<WorkspaceBindings>,
    /// Each node's current result.
    pub(super) state: Mutex<Vec<Option<Current>>>,
    /// The nodes whose current result was restored under a key their code, version,
    /// parameters or identity no longer make (a sheet reopened by a changed program): the
    /// next run computes them again, so they are stale whatever their inputs.
    pub(super) other_key: Mutex<std::collections::HashSet<usize>>,
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

/// A node's current result as a workspace keeps it: what [`NodeResult`] holds, in 152
/// bytes and no allocation of its own for a node with one input (a `NodeResult` takes 160
/// and one for its input hashes), since a workspace keeps one for every node.
/// [`Current::to_result`] gives the result back whole.
pub(super) struct Current {
    pub(super) key: CacheKey,
    pub(super) inputs: InputHashes,
    pub(super) outputs: Arc<[Value]>,
    outcome: KeptOutcome,
    run: u64,
    finished_unix_ms: u64,
    pub(super) logs: Arc<Logs>,
    pub(super) parts: Option<Arc<Parts>>,
    generated: Box<[(String, Value)]>,
}

const _: () = assert!(std::mem::size_of::<Option<Current>>() <= 152);

impl Current {
    /// The result whole, as a [`NodeResult`].
    pub(super) fn to_result(&self) -> NodeResult {
        NodeResult {
            key: self.key,
            inputs: self.inputs.to_vec(),
            generated: self.generated.to_vec(),
            outputs: self.outputs.clone(),
            outcome: self.outcome.to_outcome(),
            run: self.run,
            finished_unix_ms: self.finished_unix_ms,
            logs: self.logs.clone(),
            parts: self.parts.clone(),
        }
    }
}

impl From<NodeResult> for Current {
    fn from(r: NodeResult) -> Self {
        Current {
            key: r.key,
            inputs: InputHashes::from(r.inputs),
            outputs: r.outputs,
            outcome: KeptOutcome::from(r.outcome),
            run: r.run,
            finished_unix_ms: r.finished_unix_ms,
            logs: r.logs,
            parts: r.parts,
            generated: r.generated.into_boxed_slice(),
        }
    }
}

/// The content hashes of a result's inputs, in port order: inline for a node with one
/// input (most nodes), boxed otherwise.
pub(super) enum InputHashes {
    One(ContentHash),
    Many(Box<[ContentHash]>),
}

impl From<Vec<ContentHash>> for InputHashes {
    fn from(hashes: Vec<ContentHash>) -> Self {
        match hashes[..] {
            [one] => InputHashes::One(one),
            _ => InputHashes::Many(hashes.into_boxed_slice()),
        }
    }
}

impl FromIterator<ContentHash> for InputHashes {
    fn from_iter<I: IntoIterator<Item = ContentHash>>(hashes: I) -> Self {
        let mut hashes = hashes.into_iter();
        match (hashes.next(), hashes.next()) {
            (None, _) => InputHashes::Many(Box::default()),
            (Some(one), None) => InputHashes::One(one),
            (Some(a), Some(b)) => InputHashes::Many([a, b].into_iter().chain(hashes).collect()),
        }
    }
}

impl std::ops::Deref for InputHashes {
    type Target = [ContentHash];
    fn deref(&self) -> &[ContentHash] {
        match self {
            InputHashes::One(hash) => std::slice::from_ref(hash),
            InputHashes::Many(hashes) => hashes,
        }
    }
}

/// A result's [`Outcome`] in 16 bytes (an `Outcome` takes 32): a result is computed or
/// cached; anything else (a result restored with another outcome) is kept boxed.
enum KeptOutcome {
    Computed { elapsed_ns: u64, attempts: u32 },
    Cached(CacheSource),
    Other(Box<Outcome>),
}

impl KeptOutcome {
    fn to_outcome(&self) -> Outcome {
        match self {
            KeptOutcome::Computed {
                elapsed_ns,
                attempts,
            } => Outcome::Computed {
                elapsed: Duration::from_nanos(*elapsed_ns),
                attempts: *attempts,
            },
            KeptOutcome::Cached(source) => Outcome::Cached(*source),
            KeptOutcome::Other(outcome) => (**outcome).clone(),
        }
    }
}

impl From<Outcome> for KeptOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Computed { elapsed, attempts } => match u64::try_from(elapsed.as_nanos()) {
                Ok(elapsed_ns) => KeptOutcome::Computed {
                    elapsed_ns,
                    attempts,
                },
                Err(_) => KeptOutcome::Other(Box::new(outcome)),
            },
            Outcome::Cached(source) => KeptOutcome::Cached(source),
            other => KeptOutcome::Other(Box::new(other)),
        }
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
