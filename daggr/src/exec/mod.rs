//! A built pipeline: its graph, each node's current result, and the executor.

pub(crate) mod alone;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};
use petgraph::Direction;
use std::panic::AssertUnwindSafe;
use tokio::sync::{broadcast, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, CacheKey, KeyPreimage, KEY_SCHEMA_VERSION};
use crate::error::{suggest, Error};
use crate::node::event::{error_chain, unix_ms, CacheSource, Event, EventSender, LogBuffer, Logs};
use crate::graph::{Binding, Graph, Output};
use crate::node::{CachePolicy, Inputs, Node, NodeContext};
use crate::value::{ContentHash, PortValue, Value};

/// Which nodes a run evaluates.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Every node.
    All,
    /// The node and everything it needs.
    To(NodeRef),
    /// The node alone, reusing the current values of its upstream nodes.
    Only(NodeRef),
    /// The node and everything downstream of it, reusing the current values upstream.
    From(NodeRef),
}

/// Names a node: by name or by a handle.
#[derive(Clone, Debug)]
pub enum NodeRef {
    /// By name.
    Name(String),
    /// By index.
    Index(usize),
}

impl From<&str> for NodeRef {
    fn from(name: &str) -> Self {
        NodeRef::Name(name.to_string())
    }
}
impl From<String> for NodeRef {
    fn from(name: String) -> Self {
        NodeRef::Name(name)
    }
}
impl<T> From<&Output<T>> for NodeRef {
    fn from(out: &Output<T>) -> Self {
        NodeRef::Index(out.node)
    }
}
impl<T> From<Output<T>> for NodeRef {
    fn from(out: Output<T>) -> Self {
        NodeRef::Index(out.node)
    }
}
impl From<usize> for NodeRef {
    fn from(index: usize) -> Self {
        NodeRef::Index(index)
    }
}
impl From<crate::graph::NodeId> for NodeRef {
    fn from(id: crate::graph::NodeId) -> Self {
        NodeRef::Index(id.index())
    }
}

impl Scope {
    /// `Scope::To(node)`.
    pub fn to(node: impl Into<NodeRef>) -> Self {
        Scope::To(node.into())
    }
    /// `Scope::Only(node)`.
    pub fn only(node: impl Into<NodeRef>) -> Self {
        Scope::Only(node.into())
    }
    /// `Scope::From(node)`.
    pub fn from(node: impl Into<NodeRef>) -> Self {
        Scope::From(node.into())
    }
}

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
    /// The log written while it was computed (see [`NodeContext::log`]); empty when it
    /// came from the cache, since the node did not run.
    pub logs: Arc<Logs>,
}

/// A node that failed or was cancelled in a run, as [`ResultObserver::on_failure`] is told
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
    names: Arc<[Arc<str>]>,
    outcomes: Vec<(usize, Outcome)>,
    values: HashMap<usize, Arc<[Value]>>,
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

    /// Whether every evaluated node has a value.
    pub fn is_success(&self) -> bool {
        !self.cancelled && self.outcomes.iter().all(|(_, o)| o.is_ok())
    }

    /// The value an output port got in this run. Nodes this run did not evaluate have
    /// no value here; a failed node's error is returned.
    pub fn value<T: PortValue>(&self, out: &Output<T>) -> Result<Arc<T>, Error> {
        let name = &self.names[out.node];
        if let Some(values) = self.values.get(&out.node) {
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

/// A handle to a run started with [`Pipeline::spawn`].
pub struct RunHandle {
    cancel: CancellationToken,
    join: tokio::task::JoinHandle<Result<RunReport, Error>>,
}

impl RunHandle {
    /// Stops scheduling and cancels the in-flight async nodes.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the run's report.
    pub async fn wait(self) -> Result<RunReport, Error> {
        match self.join.await {
            Ok(report) => report,
            Err(e) => Err(Error::NodeFailed {
                node: "<executor>".into(),
                source: e.to_string().into(),
            }),
        }
    }
}

/// Whether runs draw a progress bar on the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TerminalProgress {
    /// When stdout is a terminal and `CI` is not set.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// What every workspace of a pipeline shares: the graph, the nodes, the cache and the
/// concurrency limits.
struct Structure {
    name: String,
    ir: daggr_codegen::ir::GraphIr,
    nodes: Vec<Arc<dyn Node>>,
    names: Arc<[Arc<str>]>,
    by_name: HashMap<String, usize>,
    graph: DiGraph<usize, (usize, usize)>,
    /// Topological order.
    topo: Vec<usize>,
    /// Distinct upstream and downstream nodes.
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
    /// The bindings as built: a new workspace starts from these.
    default_bindings: Vec<Vec<Binding>>,
    cache: Cache,
    global: Arc<Semaphore>,
    groups: HashMap<String, Arc<Semaphore>>,
}

/// One workspace: its input values, each node's current result, its event stream.
struct Shared {
    s: Arc<Structure>,
    bindings: Mutex<Vec<Vec<Binding>>>,
    state: Mutex<Vec<Option<NodeResult>>>,
    events: EventSender,
    runs: AtomicU64,
    progress: Mutex<TerminalProgress>,
    observers: Mutex<Vec<Arc<dyn ResultObserver>>>,
}

impl Shared {
    /// The outputs of node `n`'s current result, if it was made under `key`.
    fn current_outputs(&self, n: usize, key: &CacheKey) -> Option<Arc<[Value]>> {
        self.state.lock().unwrap()[n]
            .as_ref()
            .filter(|r| r.key == *key)
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

/// A validated, runnable pipeline. Cheap to clone; clones share state (see
/// [`Pipeline::new_workspace`] for an independent state over the same graph and cache).
#[derive(Clone)]
pub struct Pipeline(Arc<Shared>);

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.0.s.name)
            .field("nodes", &self.0.s.nodes.len())
            .finish()
    }
}

impl Graph {
    /// Validates the graph (duplicate names, unconnected inputs, cycles; every problem
    /// at once) and returns a runnable pipeline.
    pub fn build(self) -> Result<Pipeline, Error> {
        let (graph, dag) = self.validate()?;
        Pipeline::new(graph, dag)
    }
}

impl Pipeline {
    pub(crate) fn new(
        graph: Graph,
        dag: DiGraph<usize, (usize, usize)>,
    ) -> Result<Pipeline, Error> {
        let ir = graph.ir();
        let cache = match graph.cache {
            Some(c) => c,
            None => Cache::open_default()?,
        };
        let topo: Vec<usize> = petgraph::algo::toposort(&dag, None)
            .expect("cycles are rejected before this point")
            .into_iter()
            .map(|n| n.index())
            .collect();
        let n = graph.nodes.len();
        let mut upstream = vec![Vec::new(); n];
        let mut downstream = vec![Vec::new(); n];
        for (i, up) in upstream.iter_mut().enumerate() {
            let mut ups: Vec<usize> = dag
                .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                .map(|x| x.index())
                .collect();
            ups.sort_unstable();
            ups.dedup();
            for &u in &ups {
                downstream[u].push(i);
            }
            *up = ups;
        }
        let mut groups = HashMap::new();
        for (group, limit) in &graph.group_limits {
            groups.insert(group.clone(), Arc::new(Semaphore::new(*limit)));
        }
        let nodes: Vec<Arc<dyn Node>> = graph.nodes.iter().map(|e| e.node.clone()).collect();
        let names: Arc<[Arc<str>]> = nodes
            .iter()
            .map(|n| Arc::from(n.spec().name.as_str()))
            .collect();
        let by_name = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i))
            .collect();
        let structure = Arc::new(Structure {
            ir,
            name: graph.name,
            names,
            by_name,
            graph: dag,
            topo,
            upstream,
            downstream,
            default_bindings: graph.nodes.into_iter().map(|e| e.bindings).collect(),
            cache,
            global: Arc::new(Semaphore::new(graph.concurrency)),
            groups,
            nodes,
        });
        Ok(Pipeline::workspace_of(structure))
    }

    /// Makes the next run number follow `run` (a sheet's history continues across processes
    /// instead of starting again at run 1 beside its stored runs).
    pub(crate) fn continue_runs_after(&self, run: u64) {
        self.0.runs.fetch_max(run, Ordering::Relaxed);
    }

    fn workspace_of(s: Arc<Structure>) -> Pipeline {
        Pipeline(Arc::new(Shared {
            bindings: Mutex::new(s.default_bindings.clone()),
            state: Mutex::new(vec![None; s.nodes.len()]),
            events: EventSender::new(4096),
            runs: AtomicU64::new(0),
            progress: Mutex::new(TerminalProgress::Auto),
            observers: Mutex::new(Vec::new()),
            s,
        }))
    }

    /// A new, independent workspace over the same graph, nodes, cache and concurrency
    /// limits: default inputs, no results, its own event stream. Sheets use one each.
    pub fn new_workspace(&self) -> Pipeline {
        Pipeline::workspace_of(self.0.s.clone())
    }

    /// Registers an observer of adopted results (see [`ResultObserver`]).
    pub fn add_observer(&self, observer: Arc<dyn ResultObserver>) {
        self.0.observers.lock().unwrap().push(observer);
    }

    /// Makes `result` the node's current result (restoring a sheet, or selecting a history
    /// entry). Its downstream cone becomes stale if the outputs differ.
    pub fn restore_result(
        &self,
        node: impl Into<NodeRef>,
        result: NodeResult,
    ) -> Result<(), Error> {
        let index = self.resolve(&node.into())?;
        let spec = self.0.s.nodes[index].spec();
        if result.outputs.len() != spec.outputs.len()
            || spec
                .outputs
                .iter()
                .zip(result.outputs.iter())
                .any(|(p, v)| !p.ty.same_as(&v.port_type()))
        {
            return Err(Error::WrongValueType {
                node: spec.name.clone(),
                port: spec
                    .outputs
                    .first()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                expected: spec.outputs.first().map(|p| p.ty.name()).unwrap_or("()"),
                found: result
                    .outputs
                    .first()
                    .map(|v| v.port_type().name())
                    .unwrap_or("()"),
            });
        }
        self.0.state.lock().unwrap()[index] = Some(result);
        Ok(())
    }

    /// Sets a constant input from an erased value (restoring a sheet), checking its type.
    pub fn set_constant_value(
        &self,
        node: impl Into<NodeRef>,
        port: &str,
        value: Value,
    ) -> Result<(), Error> {
        let index = self.resolve(&node.into())?;
        let spec = self.0.s.nodes[index].spec();
        let port_index = self.input_port(index, port)?;
        let port_spec = &spec.inputs[port_index];
        if !port_spec.ty.same_as(&value.port_type()) {
            return Err(Error::WrongValueType {
                node: spec.name.clone(),
                port: port_spec.name.clone(),
                expected: port_spec.ty.name(),
                found: value.port_type().name(),
            });
        }
        self.replace_const(index, port_index, value)
    }

    /// Puts a constant input back to the value the graph was built with.
    pub fn reset_constant(&self, node: impl Into<NodeRef>, port: &str) -> Result<(), Error> {
        let index = self.resolve(&node.into())?;
        let port_index = self.input_port(index, port)?;
        let default = self.0.s.default_bindings[index][port_index].clone();
        self.0.bindings.lock().unwrap()[index][port_index] = default;
        Ok(())
    }

    /// The constant currently bound to `node.port`, if that input is a constant.
    pub fn constant_value(
        &self,
        node: impl Into<NodeRef>,
        port: &str,
    ) -> Result<Option<Value>, Error> {
        let index = self.resolve(&node.into())?;
        let port_index = self.input_port(index, port)?;
        Ok(match &self.0.bindings.lock().unwrap()[index][port_index] {
            Binding::Const(v) => Some(v.clone()),
            _ => None,
        })
    }

    /// Whether `node.port` currently differs from the value the graph was built with.
    pub fn is_overridden(&self, node: usize, port: usize) -> bool {
        let current = &self.0.bindings.lock().unwrap()[node][port];
        match (current, &self.0.s.default_bindings[node][port]) {
            (Binding::Const(a), Binding::Const(b)) => a.hash() != b.hash(),
            _ => false,
        }
    }

    /// The index of the node called `name`.
    pub fn node_index(&self, name: &str) -> Result<usize, Error> {
        self.resolve(&NodeRef::Name(name.to_string()))
    }

    /// The name of node `index`.
    pub fn node_name(&self, index: usize) -> &str {
        &self.0.s.names[index]
    }

    /// Whether input `port` of node `node` is bound to a constant (rather than an edge or a generator).
    pub fn is_constant_input(&self, node: usize, port: usize) -> bool {
        matches!(
            self.0.bindings.lock().unwrap()[node][port],
            Binding::Const(_)
        )
    }

    fn input_port(&self, index: usize, port: &str) -> Result<usize, Error> {
        let spec = self.0.s.nodes[index].spec();
        spec.inputs
            .iter()
            .position(|p| p.name == port)
            .ok_or_else(|| Error::UnknownPort {
                node: spec.name.clone(),
                direction: "input",
                port: port.to_string(),
                available: spec.inputs.iter().map(|p| p.name.clone()).collect(),
                suggestion: suggest(port, spec.inputs.iter().map(|p| p.name.as_str())),
            })
    }

    fn replace_const(&self, node: usize, port: usize, value: Value) -> Result<(), Error> {
        let mut bindings = self.0.bindings.lock().unwrap();
        match &bindings[node][port] {
            Binding::Const(_) => {
                bindings[node][port] = Binding::Const(value);
                Ok(())
            }
            _ => {
                let spec = self.0.s.nodes[node].spec();
                Err(Error::InputWiredTwice {
                    node: spec.name.clone(),
                    port: spec.inputs[port].name.clone(),
                })
            }
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.0.s.name
    }

    /// The graph IR (nodes, typed ports, edges, source locations).
    pub fn graph_ir(&self) -> &daggr_codegen::ir::GraphIr {
        &self.0.s.ir
    }

    /// The cache this pipeline reads and writes.
    pub fn cache(&self) -> &Cache {
        &self.0.s.cache
    }

    /// The nodes, in insertion order.
    pub fn nodes(&self) -> impl Iterator<Item = &dyn Node> {
        self.0.s.nodes.iter().map(|n| n.as_ref())
    }

    /// Checks every node against what it calls now, instead of at its first run, so a
    /// renamed endpoint of the last Space in a chain is found before the expensive first
    /// step runs: each [`crate::GradioNode`] connects (resolving its Space, starting its
    /// local copy with `run_locally`, reading `/config` and `/info`) and checks its
    /// endpoint and port names, all concurrently. The connections are kept for the runs.
    /// Every problem is returned at once: one error as it is, several as
    /// [`Error::Invalid`].
    ///
    /// ```no_run
    /// # async fn demo(pipeline: daggr::Pipeline) -> Result<(), daggr::Error> {
    /// pipeline.preflight().await?; // e.g. "no endpoint `/uper`; did you mean `/upper`?"
    /// let report = pipeline.run(daggr::Scope::All).await?;
    /// # Ok(()) }
    /// ```
    pub async fn preflight(&self) -> Result<(), Error> {
        // join_all keeps node order, whatever order the checks end in.
        let checks = self.0.s.nodes.iter().filter_map(|n| n.preflight());
        let results = futures::future::join_all(checks).await;
        Error::all(results.into_iter().filter_map(Result::err).collect())
    }

    /// The edges as `(from node, from port, to node, to port)` indices.
    pub fn edges(&self) -> Vec<(usize, usize, usize, usize)> {
        self.0
            .s
            .graph
            .edge_indices()
            .filter_map(|e| {
                let (a, b) = self.0.s.graph.edge_endpoints(e)?;
                let (op, ip) = self.0.s.graph[e];
                Some((a.index(), op, b.index(), ip))
            })
            .collect()
    }

    /// How many runs this workspace has started.
    pub fn runs_started(&self) -> u64 {
        self.0.runs.load(Ordering::Relaxed)
    }

    /// Subscribes to the event stream of every future run.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.events.subscribe()
    }

    /// Sets whether runs draw a terminal progress bar.
    pub fn set_terminal_progress(&self, mode: TerminalProgress) {
        *self.0.progress.lock().unwrap() = mode;
    }

    fn resolve(&self, node: &NodeRef) -> Result<usize, Error> {
        match node {
            NodeRef::Index(i) if *i < self.0.s.nodes.len() => Ok(*i),
            NodeRef::Index(i) => Err(Error::UnknownNode {
                name: format!("#{i}"),
                suggestion: None,
            }),
            NodeRef::Name(name) => {
                self.0
                    .s
                    .by_name
                    .get(name)
                    .copied()
                    .ok_or_else(|| Error::UnknownNode {
                        name: name.clone(),
                        suggestion: suggest(name, self.0.s.names.iter().map(|n| &**n)),
                    })
            }
        }
    }

    /// Changes a pipeline input made with [`Graph::input`]. Its downstream cone becomes stale.
    pub fn set_input<T: PortValue>(&self, input: &Output<T>, value: T) -> Result<(), Error> {
        let spec = self.0.s.nodes[input.node].spec();
        if spec.kind != crate::graph::INPUT_KIND {
            return Err(Error::UnknownPort {
                node: spec.name.clone(),
                direction: "input",
                port: "value".into(),
                available: vec![],
                suggestion: None,
            });
        }
        self.set_const(input.node, 0, value)
    }

    /// Changes the constant bound to `node.port` (a pipeline input or a constant argument).
    pub fn set_constant<T: PortValue>(
        &self,
        node: impl Into<NodeRef>,
        port: &str,
        value: T,
    ) -> Result<(), Error> {
        let index = self.resolve(&node.into())?;
        let port_index = self.input_port(index, port)?;
        self.set_const(index, port_index, value)
    }

    fn set_const<T: PortValue>(&self, node: usize, port: usize, value: T) -> Result<(), Error> {
        let spec = self.0.s.nodes[node].spec();
        let port_spec = &spec.inputs[port];
        if !port_spec.ty.is::<T>() {
            return Err(Error::WrongValueType {
                node: spec.name.clone(),
                port: port_spec.name.clone(),
                expected: port_spec.ty.name(),
                found: std::any::type_name::<T>(),
            });
        }
        let value = Value::new(value).map_err(|source| Error::Codec {
            node: spec.name.clone(),
            port: port_spec.name.clone(),
            type_name: port_spec.ty.name(),
            source,
        })?;
        self.replace_const(node, port, value)
    }

    /// The node's current result, if it has one (it may be stale: see [`Pipeline::is_stale`]).
    pub fn result(&self, node: impl Into<NodeRef>) -> Result<Option<NodeResult>, Error> {
        let index = self.resolve(&node.into())?;
        Ok(self.0.state.lock().unwrap()[index].clone())
    }

    /// The current value of an output port. A stale value is an error, never returned as current.
    pub fn value<T: PortValue>(&self, out: &Output<T>) -> Result<Arc<T>, Error> {
        let name = self.0.s.names[out.node].to_string();
        if self.stale_set()[out.node] {
            let has = self.0.state.lock().unwrap()[out.node].is_some();
            return Err(if has {
                Error::Stale { node: name }
            } else {
                Error::NoResult { node: name }
            });
        }
        let state = self.0.state.lock().unwrap();
        let result = state[out.node]
            .as_ref()
            .ok_or(Error::NoResult { node: name })?;
        Ok(result.outputs[out.port]
            .downcast::<T>()
            .expect("typed handles match their port type"))
    }

    /// Whether the node's current result is out of date (or missing): its inputs changed, or
    /// something upstream is stale.
    pub fn is_stale(&self, node: impl Into<NodeRef>) -> Result<bool, Error> {
        let index = self.resolve(&node.into())?;
        Ok(self.stale_set()[index])
    }

    /// The names of all stale nodes.
    pub fn stale_nodes(&self) -> Vec<String> {
        self.stale_set()
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| self.0.s.names[i].to_string())
            .collect()
    }

    fn stale_set(&self) -> Vec<bool> {
        let state = self.0.state.lock().unwrap();
        let bindings = self.0.bindings.lock().unwrap();
        let mut stale = vec![false; self.0.s.nodes.len()];
        for &n in &self.0.s.topo {
            let Some(result) = &state[n] else {
                stale[n] = true;
                continue;
            };
            stale[n] = bindings[n].iter().enumerate().any(|(port, b)| match b {
                Binding::Port { node, port: out } => {
                    stale[*node]
                        || state[*node]
                            .as_ref()
                            .is_none_or(|r| r.outputs[*out].hash() != result.inputs[port])
                }
                Binding::Const(v) => v.hash() != result.inputs[port],
                Binding::Generated(_) | Binding::Unbound => false,
            });
        }
        stale
    }

    /// The cache keys of every node's current result (what a garbage collection must keep).
    pub fn live_keys(&self) -> HashSet<CacheKey> {
        self.0
            .state
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|r| r.key)
            .collect()
    }

    /// Runs `scope` to completion.
    pub async fn run(&self, scope: Scope) -> Result<RunReport, Error> {
        self.run_with_cancel(scope, CancellationToken::new()).await
    }

    /// Starts `scope` on the tokio runtime; the handle can cancel it.
    pub fn spawn(&self, scope: Scope) -> RunHandle {
        let cancel = CancellationToken::new();
        let me = self.clone();
        let token = cancel.clone();
        RunHandle {
            cancel,
            join: tokio::spawn(async move { me.run_with_cancel(scope, token).await }),
        }
    }

    /// Runs `scope`, stopping when `cancel` fires.
    pub async fn run_with_cancel(
        &self,
        scope: Scope,
        cancel: CancellationToken,
    ) -> Result<RunReport, Error> {
        let in_scope = self.scope_set(&scope)?;
        let run = self.0.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let progress = self.start_progress(run, in_scope.iter().filter(|s| **s).count());
        let report = Executor::new(self.0.clone(), run, in_scope, cancel)
            .run()
            .await;
        if let Some(p) = progress {
            let _ = p.await;
        }
        Ok(report)
    }

    fn scope_set(&self, scope: &Scope) -> Result<Vec<bool>, Error> {
        let n = self.0.s.nodes.len();
        let mut set = vec![false; n];
        match scope {
            Scope::All => set.iter_mut().for_each(|s| *s = true),
            Scope::Only(node) => set[self.resolve(node)?] = true,
            Scope::To(node) => {
                let start = NodeIndex::new(self.resolve(node)?);
                let reversed = Reversed(&self.0.s.graph);
                let mut dfs = Dfs::new(reversed, start);
                while let Some(x) = dfs.next(reversed) {
                    set[x.index()] = true;
                }
            }
            Scope::From(node) => {
                let start = NodeIndex::new(self.resolve(node)?);
                let mut dfs = Dfs::new(&self.0.s.graph, start);
                while let Some(x) = dfs.next(&self.0.s.graph) {
                    set[x.index()] = true;
                }
            }
        }
        Ok(set)
    }

    fn start_progress(&self, run: u64, total: usize) -> Option<tokio::task::JoinHandle<()>> {
        use std::io::IsTerminal;
        let show = match *self.0.progress.lock().unwrap() {
            TerminalProgress::Always => true,
            TerminalProgress::Never => false,
            TerminalProgress::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("CI").is_none()
            }
        };
        if !show {
            return None;
        }
        let mut events = self.subscribe();
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                match event {
                    Event::NodeStarted { run: r, name, .. } if r == run => {
                        bar.set_message(format!("running {name}"))
                    }
                    Event::NodeProgress {
                        run: r,
                        name,
                        message,
                        ..
                    } if r == run => bar.set_message(format!("{name}: {message}")),
                    Event::NodeCached { run: r, .. }
                    | Event::NodeFinished { run: r, .. }
                    | Event::NodeFailed { run: r, .. }
                    | Event::NodeSkipped { run: r, .. }
                        if r == run =>
                    {
                        bar.inc(1)
                    }
                    Event::RunFinished { run: r, .. } if r == run => break,
                    _ => {}
                }
            }
            bar.finish_and_clear();
        }))
    }
}

/// The outcome of one node task.
struct TaskDone {
    result: Result<(Arc<[Value]>, Outcome), Error>,
    /// The key made again with a fingerprint learnt at run time ([`Node::runtime_fingerprint`]).
    rekeyed: Option<(CacheKey, KeyPreimage)>,
}

/// Everything one node's evaluation needs, prepared by the scheduler.
struct Prepared {
    preimage: KeyPreimage,
    key: CacheKey,
    inputs: Vec<Value>,
    generated: Vec<(String, Value)>,
}

enum Slot {
    Pending,
    Running,
    Done(Arc<[Value]>),
    Failed { root: usize },
}

struct Executor {
    shared: Arc<Shared>,
    run: u64,
    in_scope: Vec<bool>,
    cancel: CancellationToken,
    slots: Vec<Slot>,
    /// Values of out-of-scope upstream nodes, resolved on demand.
    provided: HashMap<usize, Option<Arc<[Value]>>>,
    waiting: Vec<usize>,
    outcomes: Vec<(usize, Outcome)>,
    values: HashMap<usize, Arc<[Value]>>,
    prepared: HashMap<usize, Prepared>,
    /// The nodes running now: what the executor still needs when one fails or is cancelled
    /// (by then its task may have been dropped).
    running: HashMap<usize, RunningNode>,
    started: Instant,
}

impl Executor {
    fn new(shared: Arc<Shared>, run: u64, in_scope: Vec<bool>, cancel: CancellationToken) -> Self {
        let n = shared.s.nodes.len();
        let waiting = (0..n)
            .map(|i| {
                shared.s.upstream[i]
                    .iter()
                    .filter(|u| in_scope[**u])
                    .count()
            })
            .collect();
        Executor {
            shared,
            run,
            in_scope,
            cancel,
            slots: (0..n).map(|_| Slot::Pending).collect(),
            provided: HashMap::new(),
            waiting,
            outcomes: Vec::new(),
            values: HashMap::new(),
            prepared: HashMap::new(),
            running: HashMap::new(),
            started: Instant::now(),
        }
    }

    async fn run(mut self) -> RunReport {
        let total = self.in_scope.iter().filter(|s| **s).count();
        self.shared.events.send(Event::RunStarted {
            run: self.run,
            nodes: total,
        });
        let mut ready: Vec<usize> = self
            .shared
            .s
            .topo
            .iter()
            .copied()
            .filter(|&n| self.in_scope[n] && self.waiting[n] == 0)
            .collect();
        ready.reverse(); // pop() then yields topological order
                         // Node futures run on this run's own task rather than as spawned tasks: no
                         // cross-thread wake-up per node, which keeps the engine's overhead per node in
                         // microseconds. Synchronous nodes still run on the blocking pool (or inline when
                         // marked cheap), so they overlap; async node bodies should await, not compute.
        let mut tasks = FuturesUnordered::new();
        let mut running: HashSet<usize> = HashSet::new();
        let mut cancelled = false;
        loop {
            while let Some(n) = ready.pop() {
                if self.cancel.is_cancelled() {
                    cancelled = true;
                    break;
                }
                match self.start(n) {
                    Started::Done(values, outcome) => {
                        self.finish(n, Ok((values, outcome)), &mut ready)
                    }
                    Started::Failed(error) => self.finish(n, Err(error), &mut ready),
                    Started::Skipped(root) => self.skip(n, root, &mut ready),
                    Started::Spawn(fut) => {
                        self.slots[n] = Slot::Running;
                        running.insert(n);
                        tasks.push(AssertUnwindSafe(fut).catch_unwind().map(move |r| (n, r)));
                    }
                }
            }
            if cancelled || tasks.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    cancelled = true;
                    break;
                }
                joined = tasks.next() => {
                    let Some((n, joined)) = joined else { break };
                    running.remove(&n);
                    let result = match joined {
                        Ok(done) => {
                            if let (Some((key, preimage)), Some(p)) =
                                (done.rekeyed, self.prepared.get_mut(&n))
                            {
                                p.key = key;
                                p.preimage = preimage;
                            }
                            done.result
                        }
                        Err(panic) => Err(Error::NodeFailed {
                            node: self.shared.s.names[n].to_string(),
                            source: format!("panicked: {}", crate::error::panic_message(panic)).into(),
                        }),
                    };
                    self.finish(n, result, &mut ready);
                }
            }
        }
        if cancelled {
            // Dropping the futures cancels the in-flight async nodes.
            drop(tasks);
            let mut in_flight: Vec<usize> = running.into_iter().collect();
            in_flight.sort_unstable();
            for n in in_flight {
                let error = Error::Cancelled {
                    node: self.shared.s.names[n].to_string(),
                };
                self.finish(n, Err(error), &mut Vec::new());
            }
        }
        let count = |f: fn(&Outcome) -> bool| self.outcomes.iter().filter(|(_, o)| f(o)).count();
        let elapsed = self.started.elapsed();
        self.shared.events.send(Event::RunFinished {
            run: self.run,
            computed: count(|o| matches!(o, Outcome::Computed { .. })),
            cached: count(|o| matches!(o, Outcome::Cached(_))),
            failed: count(|o| matches!(o, Outcome::Failed(_))),
            skipped: count(|o| matches!(o, Outcome::Skipped { .. })),
            cancelled,
            elapsed,
        });
        RunReport {
            run: self.run,
            elapsed,
            cancelled,
            names: self.shared.s.names.clone(),
            outcomes: self.outcomes,
            values: self.values,
        }
    }

    /// Values of an upstream node for node inputs: from this run, or (out of scope) its
    /// current result, or failing that a cache hit. `Err(root)` when it failed in this run.
    fn upstream_values(&mut self, up: usize) -> Result<Option<Arc<[Value]>>, usize> {
        if self.in_scope[up] {
            return match &self.slots[up] {
                Slot::Done(v) => Ok(Some(v.clone())),
                Slot::Failed { root } => Err(*root),
                _ => unreachable!("in-scope upstream nodes finish first"),
            };
        }
        if let Some(v) = self.provided.get(&up) {
            return Ok(v.clone());
        }
        let current = self.shared.state.lock().unwrap()[up]
            .as_ref()
            .map(|r| r.outputs.clone());
        let values = match current {
            Some(v) => Some(v),
            None => self.cached_without_running(up),
        };
        self.provided.insert(up, values.clone());
        Ok(values)
    }

    /// A cache hit for an out-of-scope node whose own inputs can be resolved the same way.
    fn cached_without_running(&mut self, n: usize) -> Option<Arc<[Value]>> {
        let node = self.shared.s.nodes[n].clone();
        let spec = node.spec();
        if spec.config.cache != CachePolicy::Default {
            return None;
        }
        let prepared = match self.prepare(n) {
            Ok(Ok(p)) => p,
            _ => return None,
        };
        if !prepared.generated.is_empty() {
            return None;
        }
        let types: Vec<_> = spec.outputs.iter().map(|p| p.ty).collect();
        let (values, _) = self.shared.s.cache.lookup(&prepared.key, &types, false)?;
        Some(values)
    }

    /// Gathers a node's inputs and computes its key. `Ok(Err(root))`: an upstream failed.
    fn prepare(&mut self, n: usize) -> Result<Result<Prepared, usize>, Error> {
        let bindings: Vec<Binding> = self.shared.bindings.lock().unwrap()[n].clone();
        let node = self.shared.s.nodes[n].clone();
        let spec = node.spec();
        let mut inputs = Vec::with_capacity(bindings.len());
        let mut generated = Vec::new();
        for (port, binding) in bindings.iter().enumerate() {
            let value = match binding {
                Binding::Port { node, port: out } => match self.upstream_values(*node) {
                    Ok(Some(values)) => values[*out].clone(),
                    Ok(None) => {
                        return Err(Error::MissingUpstream {
                            node: spec.name.clone(),
                            port: spec.inputs[port].name.clone(),
                            upstream: self.shared.s.names[*node].to_string(),
                        })
                    }
                    Err(root) => return Ok(Err(root)),
                },
                Binding::Const(v) => v.clone(),
                Binding::Generated(g) => {
                    let v = (g.make)().map_err(|source| Error::Codec {
                        node: spec.name.clone(),
                        port: spec.inputs[port].name.clone(),
                        type_name: spec.inputs[port].ty.name(),
                        source,
                    })?;
                    generated.push((spec.inputs[port].name.clone(), v.clone()));
                    let _ = &g.label;
                    v
                }
                Binding::Unbound => unreachable!("unbound inputs are rejected by build()"),
            };
            inputs.push(value);
        }
        let preimage = KeyPreimage {
            schema: KEY_SCHEMA_VERSION,
            identity: format!("{}:{}", spec.kind, spec.identity),
            code: spec.code_fingerprint.clone(),
            version: spec.config.version.clone(),
            params: spec.params.clone(),
            inputs: spec
                .inputs
                .iter()
                .zip(&inputs)
                .map(|(p, v)| (p.name.clone(), v.hash()))
                .collect(),
            outputs: spec
                .outputs
                .iter()
                .map(|p| p.ty.name().to_string())
                .collect(),
        };
        Ok(Ok(Prepared {
            key: preimage.key(),
            preimage,
            inputs,
            generated,
        }))
    }

    fn start(&mut self, n: usize) -> Started {
        let prepared = match self.prepare(n) {
            Ok(Ok(p)) => p,
            Ok(Err(root)) => return Started::Skipped(root),
            Err(e) => return Started::Failed(e),
        };
        let node = self.shared.s.nodes[n].clone();
        let spec = node.spec();
        let policy = spec.config.cache;
        let types: Vec<_> = spec.outputs.iter().map(|p| p.ty).collect();
        let cache = self.shared.s.cache.clone();
        // A fingerprint learnt at run time re-keys the node in its task, before any look-up.
        let rekey = match policy {
            CachePolicy::NeverCache => None,
            _ => node
                .runtime_fingerprint()
                .map(|fingerprint| (fingerprint, prepared.preimage.clone())),
        };
        match (policy, &rekey) {
            (CachePolicy::Default, None) => {
                // The workspace's own current result, then memory hits, are settled here
                // without a task: that keeps a fully cached rerun to a hash and a look-up
                // per node.
                if let Some(values) = self.shared.current_outputs(n, &prepared.key) {
                    self.prepared.insert(n, prepared);
                    return Started::Done(values, Outcome::Cached(CacheSource::Workspace));
                }
                if let Some((values, source)) = cache.lookup(&prepared.key, &types, true) {
                    self.prepared.insert(n, prepared);
                    return Started::Done(values, Outcome::Cached(source));
                }
            }
            (CachePolicy::Default, Some(_)) => {} // looked up in the task
            _ => cache.count_miss(),
        }
        let key = prepared.key;
        let inputs = Inputs {
            node: self.shared.s.names[n].clone(),
            values: prepared.inputs.clone(),
            names: spec.inputs.iter().map(|p| p.name.clone()).collect(),
        };
        self.prepared.insert(n, prepared);
        let name = self.shared.s.names[n].clone();
        let log = LogBuffer::new(self.run, n, name.clone(), self.shared.events.clone());
        let attempts = Arc::new(Attempts::default());
        self.running.insert(
            n,
            RunningNode {
                log: log.clone(),
                attempts: attempts.clone(),
            },
        );
        let ctx = NodeContext {
            node: name,
            index: n,
            run: self.run,
            cancel: self.cancel.child_token(),
            events: self.shared.events.clone(),
            log,
        };
        let global = self.shared.s.global.clone();
        let group = spec
            .config
            .group
            .as_ref()
            .and_then(|g| self.shared.s.groups.get(g).cloned());
        let shared = self.shared.clone();
        Started::Spawn(Box::pin(async move {
            let mut key = key;
            let mut rekeyed = None;
            if let Some((fingerprint, mut preimage)) = rekey {
                if let Some(code) = fingerprint.await {
                    preimage.code = code;
                    key = preimage.key();
                }
                rekeyed = Some((key, preimage));
                if policy == CachePolicy::Default {
                    if let Some(values) = shared.current_outputs(n, &key) {
                        return TaskDone {
                            result: Ok((values, Outcome::Cached(CacheSource::Workspace))),
                            rekeyed,
                        };
                    }
                }
            }
            if policy == CachePolicy::Default {
                if let Some((values, source)) = cache.lookup_async(&key, &types).await {
                    return TaskDone {
                        result: Ok((values, Outcome::Cached(source))),
                        rekeyed,
                    };
                }
            }
            let _global = global
                .acquire_owned()
                .await
                .expect("semaphores are never closed");
            let _group = match group {
                Some(g) => Some(
                    g.acquire_owned()
                        .await
                        .expect("semaphores are never closed"),
                ),
                None => None,
            };
            TaskDone {
                result: execute(node, ctx, inputs, attempts).await,
                rekeyed,
            }
        }))
    }

    fn finish(
        &mut self,
        n: usize,
        result: Result<(Arc<[Value]>, Outcome), Error>,
        ready: &mut Vec<usize>,
    ) {
        let name = self.shared.s.names[n].clone();
        let prepared = self.prepared.remove(&n);
        let running = self.running.remove(&n);
        match result {
            Ok((values, outcome)) => {
                let prepared = prepared.expect("a finished node was prepared");
                let spec = self.shared.s.nodes[n].spec();
                // Taken before the events below: a held-back progress line is sent first.
                let logs = match &outcome {
                    Outcome::Computed { .. } => running.map(|r| Arc::new(r.log.take())),
                    // The same result as before, so the same log.
                    Outcome::Cached(CacheSource::Workspace) => {
                        let state = self.shared.state.lock().unwrap();
                        state[n].as_ref().map(|r| r.logs.clone())
                    }
                    _ => None,
                }
                .unwrap_or_default();
                if matches!(outcome, Outcome::Computed { .. })
                    && spec.config.cache != CachePolicy::NeverCache
                {
                    self.shared.s.cache.store(
                        prepared.key,
                        &prepared.preimage,
                        values.clone(),
                        true,
                    );
                }
                let result = NodeResult {
                    key: prepared.key,
                    inputs: prepared.inputs.iter().map(|v| v.hash()).collect(),
                    generated: prepared.generated,
                    outputs: values.clone(),
                    outcome: outcome.clone(),
                    run: self.run,
                    finished_unix_ms: unix_ms(),
                    logs,
                };
                for observer in self.shared.observers.lock().unwrap().iter() {
                    observer.on_result(n, &name, &result);
                }
                self.shared.state.lock().unwrap()[n] = Some(result);
                // After the observers and the state: whoever sees the event finds the result
                // current and handed to them (a sheet's flush then covers it).
                match &outcome {
                    Outcome::Cached(source) => self.shared.events.send(Event::NodeCached {
                        run: self.run,
                        node: n,
                        name,
                        source: *source,
                    }),
                    Outcome::Computed { elapsed, .. } => {
                        self.shared.events.send(Event::NodeFinished {
                            run: self.run,
                            node: n,
                            name,
                            elapsed: *elapsed,
                            outputs: values.iter().map(|v| v.hash()).collect(),
                        })
                    }
                    _ => {}
                }
                self.values.insert(n, values.clone());
                self.slots[n] = Slot::Done(values);
                self.outcomes.push((n, outcome));
            }
            Err(error) => {
                let cancelled = matches!(error, Error::Cancelled { .. });
                let text = error_chain(&error);
                if let Some(running) = &running {
                    if cancelled {
                        running.log.end("cancelled");
                    } else {
                        running.log.end(format!("failed: {text}"));
                    }
                }
                // Observers only: the cache and the node's current result stay as they were.
                let failure = NodeFailure {
                    run: self.run,
                    cancelled,
                    error: text,
                    attempts: running.as_ref().map_or(0, |r| r.attempts.started()),
                    elapsed: running
                        .as_ref()
                        .map_or(Duration::ZERO, |r| r.attempts.elapsed()),
                    finished_unix_ms: unix_ms(),
                    key: prepared.as_ref().map(|p| p.key),
                    inputs: prepared
                        .as_ref()
                        .map(|p| p.inputs.iter().map(|v| v.hash()).collect())
                        .unwrap_or_default(),
                    generated: prepared.map(|p| p.generated).unwrap_or_default(),
                    logs: Arc::new(running.map(|r| r.log.take()).unwrap_or_default()),
                };
                for observer in self.shared.observers.lock().unwrap().iter() {
                    observer.on_failure(n, &name, &failure);
                }
                // After the observers: whoever sees the event knows the failure was handed
                // to them (a sheet's flush then covers it).
                self.shared.events.send(Event::NodeFailed {
                    run: self.run,
                    node: n,
                    name,
                    error: failure.error,
                    elapsed: failure.elapsed,
                });
                self.slots[n] = Slot::Failed { root: n };
                self.outcomes.push((n, Outcome::Failed(Arc::new(error))));
            }
        }
        self.release_downstream(n, ready);
    }

    fn skip(&mut self, n: usize, root: usize, ready: &mut Vec<usize>) {
        self.prepared.remove(&n);
        let because = self.shared.s.names[root].clone();
        self.shared.events.send(Event::NodeSkipped {
            run: self.run,
            node: n,
            name: self.shared.s.names[n].clone(),
            because: because.clone(),
        });
        self.slots[n] = Slot::Failed { root };
        self.outcomes.push((
            n,
            Outcome::Skipped {
                because: because.to_string(),
            },
        ));
        self.release_downstream(n, ready);
    }

    fn release_downstream(&mut self, n: usize, ready: &mut Vec<usize>) {
        for i in 0..self.shared.s.downstream[n].len() {
            let d = self.shared.s.downstream[n][i];
            if self.in_scope[d] {
                self.waiting[d] -= 1;
                if self.waiting[d] == 0 {
                    ready.push(d);
                }
            }
        }
    }
}

type NodeFuture = std::pin::Pin<Box<dyn std::future::Future<Output = TaskDone> + Send>>;

/// What the executor keeps of a node while it runs.
struct RunningNode {
    log: LogBuffer,
    attempts: Arc<Attempts>,
}

/// A running node's attempts, counted by its task and read by the executor when the node
/// fails, or when a cancelled run drops the task.
#[derive(Default)]
struct Attempts {
    started: AtomicU32,
    first_started_at: OnceLock<Instant>,
}

impl Attempts {
    /// An attempt starts: its number, 1 for the first.
    fn start(&self) -> u32 {
        self.first_started_at.get_or_init(Instant::now);
        self.started.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn started(&self) -> u32 {
        self.started.load(Ordering::Relaxed)
    }

    /// Time since the first attempt started (zero before it).
    fn elapsed(&self) -> Duration {
        self.first_started_at
            .get()
            .map_or(Duration::ZERO, Instant::elapsed)
    }
}

enum Started {
    Done(Arc<[Value]>, Outcome),
    Failed(Error),
    Skipped(usize),
    Spawn(NodeFuture),
}

/// Runs a node with its timeout and retry policy, and checks what it returned.
async fn execute(
    node: Arc<dyn Node>,
    ctx: NodeContext,
    inputs: Inputs,
    tries: Arc<Attempts>,
) -> Result<(Arc<[Value]>, Outcome), Error> {
    let spec = node.spec();
    let name = spec.name.clone();
    let retry = &spec.config.retry;
    let attempts = retry.retries.saturating_add(1);
    loop {
        let attempt = tries.start();
        ctx.events.send(Event::NodeStarted {
            run: ctx.run,
            node: ctx.index,
            name: ctx.node.clone(),
            attempt,
        });
        let started = Instant::now();
        let call = node.run(
            ctx.clone(),
            Inputs {
                node: inputs.node.clone(),
                values: inputs.values.clone(),
                names: inputs.names.clone(),
            },
        );
        let result = match spec.config.timeout {
            Some(after) => match tokio::time::timeout(after, call).await {
                Ok(r) => r.map_err(|source| node_error(&name, source)),
                Err(_) => {
                    ctx.log.write(format!(
                        "attempt {attempt} of {attempts} timed out after {after:?}"
                    ));
                    Err(Error::Timeout {
                        node: name.clone(),
                        after,
                    })
                }
            },
            None => call.await.map_err(|source| node_error(&name, source)),
        };
        let error = match result {
            Ok(values) => {
                check_outputs(spec, &values)?;
                return Ok((
                    values.into(),
                    Outcome::Computed {
                        elapsed: started.elapsed(),
                        attempts: attempt,
                    },
                ));
            }
            Err(e) => e,
        };
        if attempt > retry.retries {
            return Err(error);
        }
        let delay = retry.delay(attempt);
        let error = error_chain(&error);
        ctx.log.write(format!(
            "attempt {attempt} of {attempts} failed, retrying in {delay:?}: {error}"
        ));
        ctx.events.send(Event::NodeRetrying {
            run: ctx.run,
            node: ctx.index,
            name: ctx.node.clone(),
            attempt,
            error,
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.cancelled() => return Err(Error::Cancelled { node: name }),
        }
    }
}

/// A node's error: as it is when it is already a daggr error naming the node (a remote
/// failure, say), else wrapped with the node's name.
fn node_error(name: &str, source: crate::error::BoxError) -> Error {
    match source.downcast::<Error>() {
        Ok(e) if e.node() == Some(name) => *e,
        Ok(e) => Error::NodeFailed {
            node: name.to_string(),
            source: e,
        },
        Err(source) => Error::NodeFailed {
            node: name.to_string(),
            source,
        },
    }
}

fn check_outputs(spec: &crate::node::NodeSpec, values: &[Value]) -> Result<(), Error> {
    if values.len() != spec.outputs.len() {
        return Err(Error::NodeFailed {
            node: spec.name.clone(),
            source: format!(
                "returned {} outputs, but declares {}",
                values.len(),
                spec.outputs.len()
            )
            .into(),
        });
    }
    for (port, value) in spec.outputs.iter().zip(values) {
        if !port.ty.same_as(&value.port_type()) {
            return Err(Error::WrongValueType {
                node: spec.name.clone(),
                port: port.name.clone(),
                expected: port.ty.name(),
                found: value.port_type().name(),
            });
        }
    }
    Ok(())
}
