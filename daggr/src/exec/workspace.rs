//! A pipeline's workspace: the state it keeps between runs (the constants it is given, each
//! node's current result, its observers and event stream) over a structure every
//! workspace of the pipeline shares (the graph, the nodes, the cache, the concurrency
//! limits). Runs start here; `executor` carries each one out.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use petgraph::graph::DiGraph;
use tokio::sync::{broadcast, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::executor::Executor;
use super::scope::Adjacency;
pub use super::state::ResultObserver;
use super::state::{sorted_by_name, Current, PortBindings, Shared, Structure, WorkspaceBindings};
use super::{NodeRef, NodeResult, RunReport, Scope, TerminalProgress};
use super::{PersistTarget, Unsaved};
use crate::cache::{Cache, CacheKey};
use crate::error::{suggest, Error};
use crate::graph::{Binding, Graph, Output};
use crate::node::event::{Event, EventSender};
use crate::node::Node;
use crate::value::{PortValue, Value};

/// A validated, runnable pipeline. Cheap to clone; clones share state (see
/// [`Pipeline::new_workspace`] for an independent state over the same graph and cache).
///
/// Runs are traced with [`tracing`](https://docs.rs/tracing): each run is a span named `run`
/// (fields `pipeline`, `run`, `scope`; once it ends, `computed`, `cached`, `failed`,
/// `skipped` and `cancelled`), and each node it evaluates a child span named `node` (fields
/// `node`, `attempt`, and `outcome`: `computed`, `memory`, `disk`, `workspace`, `failed` or
/// `skipped`, with `error` when it failed). A subscriber that logs span closings, such as
/// `tracing_subscriber::fmt` with `FmtSpan::CLOSE`, shows where a run's time went.
#[derive(Clone)]
pub struct Pipeline(pub(super) Arc<Shared>);

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.0.s.name)
            .field("nodes", &self.0.s.nodes.len())
            .finish()
    }
}

impl Pipeline {
    pub(crate) fn new(
        graph: Graph,
        dag: DiGraph<usize, (usize, usize)>,
    ) -> Result<Pipeline, Error> {
        let graph_id = graph.id();
        let cache = match graph.cache {
            Some(c) => c,
            None => Cache::open_default()?,
        };
        let topo: Vec<u32> = petgraph::algo::toposort(&dag, None)
            .expect("cycles are rejected before this point")
            .into_iter()
            .map(|n| n.index() as u32)
            .collect();
        let (upstream, downstream) = Adjacency::both(&dag);
        drop(dag);
        let mut groups = HashMap::new();
        for (group, limit) in &graph.group_limits {
            groups.insert(group.clone(), Arc::new(Semaphore::new(*limit)));
        }
        let nodes: Vec<Arc<dyn Node>> = graph.nodes.iter().map(|e| e.node.clone()).collect();
        let names: Arc<[Arc<str>]> = nodes
            .iter()
            .map(|n| Arc::from(n.spec().name.as_str()))
            .collect();
        let by_name = sorted_by_name(&names);
        let structure = Arc::new(Structure {
            ir: OnceLock::new(),
            locations: graph.nodes.iter().map(|e| e.location).collect(),
            graph_id,
            name: graph.name,
            names,
            by_name,
            topo,
            upstream,
            downstream,
            default_bindings: Arc::new(PortBindings::new(graph.nodes)),
            cache,
            global: Arc::new(Semaphore::new(graph.concurrency)),
            groups,
            nodes,
            outputs: graph.outputs,
            input_groups: graph.input_groups,
            input_hints: graph.input_hints,
        });
        Ok(Pipeline::workspace_of(structure))
    }

    /// Makes the next run number follow `run` (a sheet's history continues across processes
    /// instead of starting again at run 1 beside its stored runs).
    #[cfg(feature = "sheets")]
    pub(crate) fn continue_runs_after(&self, run: u64) {
        self.0.runs.fetch_max(run, Ordering::Relaxed);
    }

    fn workspace_of(s: Arc<Structure>) -> Pipeline {
        Pipeline(Arc::new(Shared {
            bindings: Mutex::new(WorkspaceBindings::new(s.default_bindings.clone())),
            state: Mutex::new((0..s.nodes.len()).map(|_| None).collect()),
            other_key: Mutex::new(HashSet::new()),
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

    /// A handle that does not keep this workspace alive: for an observer the workspace
    /// holds (a sheet's), which would otherwise keep it (and its 4096-event channel)
    /// from ever being freed.
    #[cfg(feature = "sheets")]
    pub(crate) fn downgrade(&self) -> WeakPipeline {
        WeakPipeline(Arc::downgrade(&self.0))
    }

    /// Registers an observer of adopted results (see [`ResultObserver`]).
    pub fn add_observer(&self, observer: Arc<dyn ResultObserver>) {
        self.0.observers.lock().unwrap().push(observer);
    }

    /// Makes `result` the node's current result (restoring a sheet, or selecting a history
    /// entry). Its downstream cone becomes stale if the outputs differ. A result made under a
    /// key the node no longer makes from the same inputs (its code, version or parameters
    /// changed since) is stale itself: the next run computes it again.
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
        let other_key = self.made_under_another_key(index, &result);
        // Both under the state's lock, as `stale_set` reads them.
        let mut state = self.0.state.lock().unwrap();
        state[index] = Some(Current::from(result));
        let mut flagged = self.0.other_key.lock().unwrap();
        if other_key {
            flagged.insert(index);
        } else {
            flagged.remove(&index);
        }
        Ok(())
    }

    /// Whether `result` has a key node `index` no longer makes from the same inputs: its
    /// code, version, parameters or identity changed since (a run would compute it
    /// again). A node keyed by code learnt only at run time (a Space's revision) cannot
    /// be told before that run, and is taken as it is.
    fn made_under_another_key(&self, index: usize, result: &NodeResult) -> bool {
        let node = &self.0.s.nodes[index];
        let spec = node.spec();
        let now =
            super::attempt::preimage_of_hashes(spec, spec.code_fingerprint.clone(), &result.inputs);
        result.inputs.len() != spec.inputs.len()
            || (now.key() != result.key && node.runtime_fingerprint().is_none())
    }

    /// Whether node `index`'s current result was restored under a key the node no longer
    /// makes (see [`Pipeline::restore_result`]): stale, whatever its inputs.
    #[cfg(feature = "inspector")]
    pub(crate) fn made_by_other_code(&self, index: usize) -> bool {
        self.0.other_key.lock().unwrap().contains(&index)
    }

    /// Changes the constant bound to `node.port` to an untyped [`Value`] (restoring a
    /// sheet, an edit in the inspector), checked against the port's type.
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
        self.0.bindings.lock().unwrap().reset(index, port_index);
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
                bindings.set(node, port, Binding::Const(value));
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
        let s = &self.0.s;
        s.ir.get_or_init(|| {
            crate::graph::build_ir(&s.name, s.nodes.len(), &s.input_groups, |i| {
                (&*s.nodes[i], &s.default_bindings[i][..], s.locations[i])
            })
        })
    }

    /// The inputs shown together ([`Graph::group_inputs`](crate::Graph::group_inputs)).
    pub fn input_groups(&self) -> &[crate::graph::InputGroup] {
        &self.0.s.input_groups
    }

    /// What a widget for input node `input` may offer: the hint given with
    /// [`Graph::input_hint`](crate::Graph::input_hint), else what the first node it feeds that
    /// knows says about that port (a Gradio app's dropdown choices or slider range).
    pub fn input_hint(&self, input: usize) -> Option<crate::node::InputHint> {
        let s = &self.0.s;
        if let Some(hint) = s.input_hints.get(&input) {
            return Some(hint.clone());
        }
        let bindings = self.0.bindings.lock().unwrap();
        s.downstream.of(input).iter().find_map(|&reader| {
            let reader = reader as usize;
            bindings[reader]
                .iter()
                .enumerate()
                .filter(|(_, b)| matches!(b, Binding::Port { node, .. } if *node == input))
                .find_map(|(port, _)| s.nodes[reader].input_hint(port))
        })
    }

    /// The cache this pipeline reads and writes.
    pub fn cache(&self) -> &Cache {
        &self.0.s.cache
    }

    /// The pipeline's named outputs ([`Graph::name_output`](crate::Graph::name_output)), in the
    /// order they were named.
    pub fn named_outputs(&self) -> &[crate::graph::NamedOutput] {
        &self.0.s.outputs
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
        let mut edges = Vec::new();
        for (to, bindings) in self.0.s.default_bindings.iter().enumerate() {
            for (to_port, binding) in bindings.iter().enumerate() {
                if let Binding::Port { node, port } = binding {
                    edges.push((*node, *port, to, to_port));
                }
            }
        }
        edges
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

    /// Changes a pipeline input made with [`Graph::input`]. Its downstream cone becomes stale.
    pub fn set_input<T: PortValue>(&self, input: &Output<T>, value: T) -> Result<(), Error> {
        self.check_handle(input.graph_id(), "Pipeline::set_input")?;
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

    /// Refuses a handle made by another graph (its indices would name other nodes here).
    pub(crate) fn check_handle(&self, graph: u64, what: &str) -> Result<(), Error> {
        if graph == 0 || graph == self.0.s.graph_id {
            return Ok(());
        }
        Err(Error::ForeignHandle {
            what: what.to_string(),
            handle_graph: crate::graph::graph_label(graph),
            here: self.0.s.name.clone(),
        })
    }

    /// Selects the variant called `variant` of choice node `node` (sets its `variant`
    /// input, see [`Graph::choose`](crate::Graph::choose)). A node that is not a choice, or a
    /// name that is not one of its variants, is refused with the names it has.
    pub fn select_variant(&self, node: impl Into<NodeRef>, variant: &str) -> Result<(), Error> {
        let index = self.resolve(&node.into())?;
        let spec = self.0.s.nodes[index].spec();
        let Some(crate::node::composite::Composite::Choice(plan)) =
            self.0.s.nodes[index].composite()
        else {
            return Err(Error::Failed {
                node: spec.name.clone(),
                message: format!(
                    "node `{}` has no variants to select: it is not a choice node (made with `Graph::choose`)",
                    spec.name
                ),
            });
        };
        let names: Vec<&str> = plan.variants().map(|(name, _)| name).collect();
        if !names.contains(&variant) {
            return Err(Error::UnknownVariant {
                node: spec.name.clone(),
                variant: variant.to_string(),
                suggestion: suggest(variant, names.iter().copied()),
                available: names.iter().map(|n| n.to_string()).collect(),
            });
        }
        let port = self.input_port(index, crate::node::composite::VARIANT_PORT)?;
        self.set_const(index, port, variant.to_string())
    }

    /// Changes the constant bound to `node.port` (a pipeline input or a constant argument),
    /// checking its type.
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
        Ok(self.0.state.lock().unwrap()[index]
            .as_ref()
            .map(Current::to_result))
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

    /// Whether the node's current result is out of date (or missing): its inputs changed,
    /// something upstream is stale, or it was restored from a key the node no longer makes.
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
        let other_key = self.0.other_key.lock().unwrap();
        let mut stale = vec![false; self.0.s.nodes.len()];
        for n in self.0.s.topo.iter().map(|&n| n as usize) {
            let Some(result) = &state[n] else {
                stale[n] = true;
                continue;
            };
            stale[n] = other_key.contains(&n)
                || bindings[n].iter().enumerate().any(|(port, b)| match b {
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

    /// Starts `scope` on the tokio runtime and returns its [`RunHandle`].
    ///
    /// The run lives as long as its handle, as [`Pipeline::run`]'s does as long as its
    /// future: dropping the handle cancels the run, and with it every remote job in
    /// flight (a Gradio job is cancelled on the app, so it does not hold the app's queue
    /// for the next call). Keep the handle and [`RunHandle::wait`] for the report, or call
    /// [`RunHandle::detach`] to let the run go on by itself.
    pub fn spawn(&self, scope: Scope) -> RunHandle {
        let cancel = CancellationToken::new();
        let me = self.clone();
        let token = cancel.clone();
        RunHandle {
            cancel,
            join: Some(tokio::spawn(async move {
                me.run_with_cancel(scope, token).await
            })),
            detached: false,
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
        let mode = *self.0.progress.lock().unwrap();
        let progress = mode.start(&self.0.events, run, in_scope.iter().filter(|s| **s).count());
        // The run's span: the parent of every node's span, so a subscriber shows where a
        // run's time went node by node. The counts are recorded when the run ends.
        let span = tracing::info_span!(
            "run",
            pipeline = %self.0.s.name,
            run,
            scope = %self.scope_label(&scope),
            computed = tracing::field::Empty,
            cached = tracing::field::Empty,
            failed = tracing::field::Empty,
            skipped = tracing::field::Empty,
            cancelled = tracing::field::Empty,
        );
        let report = Executor::new(self.0.clone(), run, in_scope, cancel, span.clone())
            .force_item(self.forced_item(&scope))
            .run()
            .instrument(span)
            .await;
        if let Some(p) = progress {
            let _ = p.await;
        }
        Ok(report)
    }
}

/// A [`Pipeline`] that does not keep its workspace alive (see [`Pipeline::downgrade`]).
#[cfg(feature = "sheets")]
#[derive(Clone)]
pub(crate) struct WeakPipeline(std::sync::Weak<Shared>);

#[cfg(feature = "sheets")]
impl WeakPipeline {
    /// The pipeline, while a handle to it is alive.
    pub(crate) fn upgrade(&self) -> Option<Pipeline> {
        self.0.upgrade().map(Pipeline)
    }
}

/// A handle to a run started with [`Pipeline::spawn`].
///
/// Dropping the handle cancels the run, as dropping the future of [`Pipeline::run`]
/// does: nothing is left running that nobody can stop or hear from (an unattended remote
/// job would run to its end and, on a Gradio app with the default concurrency of 1,
/// hold up every later call behind it). [`RunHandle::detach`] lets a run go on without
/// its handle; [`RunHandle::wait`] awaits its report (dropping that future, e.g. on a
/// timeout, also cancels the run).
///
/// ```no_run
/// # async fn demo(pipeline: daggr::Pipeline) -> Result<(), daggr::Error> {
/// let handle = pipeline.spawn(daggr::Scope::All);
/// // …
/// let report = handle.wait().await?; // or handle.cancel(), or handle.detach()
/// # Ok(()) }
/// ```
#[must_use = "dropping a RunHandle cancels the run; call .detach() to let it run on"]
pub struct RunHandle {
    cancel: CancellationToken,
    /// `None` once detached or waited for.
    join: Option<tokio::task::JoinHandle<Result<RunReport, Error>>>,
    /// Set by [`RunHandle::detach`]: the drop leaves the run alone.
    detached: bool,
}

impl RunHandle {
    /// Stops scheduling and cancels the in-flight async nodes.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Lets the run go on after the handle is gone: it runs to its end (or until the
    /// process exits), its report unread. Its results still reach the pipeline's
    /// workspace, cache and observers.
    pub fn detach(mut self) {
        self.detached = true;
        self.join = None;
    }

    /// Waits for the run's report. Dropping this future before it completes cancels the
    /// run (the handle goes with it).
    pub async fn wait(mut self) -> Result<RunReport, Error> {
        let join = self.join.as_mut().expect("a RunHandle is waited for once");
        let result = match join.await {
            Ok(report) => report,
            Err(e) => Err(Error::NodeFailed {
                node: "<executor>".into(),
                source: e.to_string().into(),
            }),
        };
        // The run is over: nothing to cancel when the handle drops now.
        self.detached = true;
        result
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if !self.detached {
            // The executor sees the token, drops its node futures, and those cancel their
            // remote jobs; the task itself ends with its (cancelled) report.
            self.cancel.cancel();
        }
    }
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("cancelled", &self.cancel.is_cancelled())
            .field("detached", &self.detached)
            .finish()
    }
}

/// Reporting what a run could not save, for whoever waits for its writes (a sheet's run,
/// `cargo daggr run`).
impl Pipeline {
    /// Once the cache's writer has been flushed: adds to `report` each result its run
    /// queued for the cache that the cache could not write, and sends each as an
    /// [`Event::PersistFailed`].
    pub(crate) fn report_cache_failures(&self, report: &mut RunReport) {
        let cache = &self.0.s.cache;
        let failed: Vec<(usize, String)> = report
            .queued
            .iter()
            .filter_map(|(n, key)| cache.write_failure(key).map(|e| (*n, e)))
            .collect();
        for (n, error) in failed {
            self.report_unsaved(report, n, PersistTarget::Cache, error);
        }
    }

    /// Adds to `report` a result of node `n` its run could not save in `target`, and sends
    /// it as an [`Event::PersistFailed`].
    pub(crate) fn report_unsaved(
        &self,
        report: &mut RunReport,
        n: usize,
        target: PersistTarget,
        error: String,
    ) {
        let name = self.0.s.names[n].clone();
        tracing::warn!(node = %name, %target, error, run = report.run, "result not saved");
        self.0.events.send(Event::PersistFailed {
            run: report.run,
            node: n,
            name: name.clone(),
            target: target.to_string(),
            error: error.clone(),
        });
        report.unsaved.push(Unsaved {
            node: name.to_string(),
            target,
            error,
        });
    }
}
