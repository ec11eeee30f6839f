//! The graph builder: typed handles for typed wiring, plus a run-time API for
//! graphs assembled from data, checked when the graph is built.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::cache::Cache;
use crate::error::{suggest, Error};
use crate::node::composite::Composite;
use crate::node::{Node, NodeSpec, PortSpec};
use crate::value::{PortValue, Value};

mod choice;
mod groups;
mod input;
mod map;

pub use choice::Choice;
use daggr_codegen::ir::{short_type_name, EdgeIr, GraphIr, NodeIr, PortIr, SourceLocation};
pub use groups::InputGroup;
pub use input::INPUT_KIND;
pub use map::{each, Each, Gather, IntoMapSources, Map, MapSource, OneOutputPort, Results, Values};

/// A typed handle to one output port of a node in a [`Graph`].
///
/// Wiring it into an input of another type does not compile:
///
/// ```compile_fail
/// use daggr::{FnNode, Graph};
/// let mut g = Graph::new("p");
/// let n: daggr::Output<u64> = g.input("n", 1u64);
/// // `shout` takes a String, `n` carries a u64: rejected by rustc.
/// let _ = g.add(FnNode::sync("shout", |s: String| s.to_uppercase()), (n,));
/// ```
///
/// A handle belongs to the graph that made it: wiring it into another graph is reported when
/// that graph is built, naming both graphs.
pub struct Output<T> {
    pub(crate) node: usize,
    pub(crate) port: usize,
    /// The [`Graph::id`] of the graph that made the handle (0: not known).
    pub(crate) graph: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Output<T> {}

impl<T> std::fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Output(node {}, port {})", self.node, self.port)
    }
}

thread_local! {
    /// The id of the graph whose [`Graph::add`] is making handles on this thread (0: none).
    static MAKING_HANDLES_FOR: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The source of graph ids: every [`Graph`] gets its own, so a handle knows its graph.
static NEXT_GRAPH_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The names of recent graphs by id, for messages about a handle from another graph.
/// Bounded: a program making graphs in a loop keeps only the latest names.
static GRAPH_NAMES: std::sync::Mutex<std::collections::VecDeque<(u64, Arc<str>)>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
const GRAPH_NAMES_KEPT: usize = 1024;

fn register_graph_name(id: u64, name: &str) {
    let mut names = GRAPH_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if names.len() == GRAPH_NAMES_KEPT {
        names.pop_front();
    }
    names.push_back((id, Arc::from(name)));
}

/// How a message names graph `id`: "graph `name`", or by number once forgotten.
pub(crate) fn graph_label(id: u64) -> String {
    let names = GRAPH_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    match names.iter().find(|(i, _)| *i == id) {
        Some((_, name)) => format!("graph `{name}`"),
        None => format!("another graph (#{id})"),
    }
}

impl<T> Output<T> {
    /// A handle to `port` of the node at index `node`, for [`TypedNode::handles`]: it belongs
    /// to the graph whose [`Graph::add`] is calling that (none outside of it).
    #[doc(hidden)]
    pub fn new(node: usize, port: usize) -> Self {
        Output {
            node,
            port,
            graph: MAKING_HANDLES_FOR.with(|g| g.get()),
            _type: PhantomData,
        }
    }

    fn in_graph(graph: u64, node: usize, port: usize) -> Self {
        Output {
            node,
            port,
            graph,
            _type: PhantomData,
        }
    }

    /// The [`Graph::id`] of the graph that made this handle (0 if not known).
    pub fn graph_id(&self) -> u64 {
        self.graph
    }

    /// The node this port belongs to.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.node, self.graph)
    }
}

/// An untyped handle to a node, for graphs assembled at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub(crate) usize, pub(crate) u64);

impl NodeId {
    /// The node's index in its graph.
    pub fn index(&self) -> usize {
        self.0
    }
}

/// A value generator for an input: evaluated each time the node runs; the value it
/// produced is recorded with the result.
#[derive(Clone)]
pub struct Generator {
    pub(crate) label: Arc<str>,
    pub(crate) make: Arc<dyn Fn() -> Result<Value, serde_json::Error> + Send + Sync>,
}

/// What feeds one input port.
///
/// Kept small (24 bytes): a graph holds one per input port, and a pipeline keeps them for
/// as long as it lives. Generators are rare, so theirs sits behind a box.
#[derive(Clone)]
pub(crate) enum Binding {
    Unbound,
    Port { node: usize, port: usize },
    Const(Value),
    Generated(Box<Generator>),
}

const _: () = assert!(std::mem::size_of::<Binding>() <= 24);

/// A typed source for an input port: another node's output, a constant, or a generated value.
pub struct Source<T> {
    binding: Result<Binding, serde_json::Error>,
    /// For an output of another node, the id of that node's graph (0: not a port, or not known).
    graph: u64,
    _type: PhantomData<fn() -> T>,
}

/// Things that can feed an input of type `T`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a source for an input of type `{T}`",
    label = "expected an `Output<{T}>` or a `daggr::constant(..)`",
    note = "an input takes another node's `Output<{T}>`, a plain value wrapped in `daggr::constant(value)`, or `daggr::generated(..)`, of type `{T}`; insert a converter node to change types"
)]
pub trait IntoSource<T> {
    /// Converts into a source.
    fn into_source(self) -> Source<T>;
}

impl<T> IntoSource<T> for Output<T> {
    fn into_source(self) -> Source<T> {
        Source {
            binding: Ok(Binding::Port {
                node: self.node,
                port: self.port,
            }),
            graph: self.graph,
            _type: PhantomData,
        }
    }
}

impl<T> IntoSource<T> for &Output<T> {
    fn into_source(self) -> Source<T> {
        (*self).into_source()
    }
}

impl<T> IntoSource<T> for Source<T> {
    fn into_source(self) -> Source<T> {
        self
    }
}

/// A constant input value (part of the cache key through its content hash).
///
/// ```
/// let size = daggr::constant(256u32);
/// # let _ = size;
/// ```
pub fn constant<T: PortValue>(value: T) -> Source<T> {
    Source {
        binding: Value::new(value).map(Binding::Const),
        graph: 0,
        _type: PhantomData,
    }
}

/// An input generated afresh each time the node runs (a seed, a timestamp). The node is
/// then effectively uncached for that input; the value produced is recorded with its result.
pub fn generated<T: PortValue>(
    label: &str,
    make: impl Fn() -> T + Send + Sync + 'static,
) -> Source<T> {
    Source {
        binding: Ok(Binding::Generated(Box::new(Generator {
            label: label.into(),
            make: Arc::new(move || Value::new(make())),
        }))),
        graph: 0,
        _type: PhantomData,
    }
}

/// A random `u64` seed, drawn each run and recorded with the result.
pub fn random_seed() -> Source<u64> {
    generated("random_seed", rand::random::<u64>)
}

/// The current time in milliseconds since the Unix epoch, taken each run and recorded.
pub fn now_unix_ms() -> Source<u64> {
    generated("now_unix_ms", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// A tuple of argument types a typed node takes.
pub trait ArgTuple: Send + 'static {
    /// The input port specs, given their names.
    fn port_specs(names: &[String]) -> Vec<PortSpec>;
    /// The number of arguments.
    const ARITY: usize;
    /// Takes owned, typed copies of the inputs.
    fn from_inputs(inputs: &crate::node::Inputs) -> Result<Self, Error>
    where
        Self: Sized;
}

/// A tuple of sources matching an [`ArgTuple`] element by element.
#[diagnostic::on_unimplemented(
    message = "the node takes the inputs `{Args}`: these sources do not match them one for one",
    label = "expected one source per input, in order, as a tuple",
    note = "the sources given are `{Self}`; a node with one input still takes a one-element tuple, `(source,)` (note the comma), and a plain value is wired as `daggr::constant(value)`"
)]
pub trait IntoSources<Args> {
    #[doc(hidden)]
    fn into_bindings(self) -> Vec<ErasedSource>;
}

/// A source with its type erased (an implementation detail of [`IntoSources`]).
#[doc(hidden)]
pub struct ErasedSource {
    pub(crate) binding: Result<Binding, serde_json::Error>,
    /// The graph of the output it reads (0: not a port, or not known).
    pub(crate) graph: u64,
}

/// A node whose input and output types are known to the compiler.
pub trait TypedNode: Node + Sized {
    /// The input types, as a tuple.
    type Args: ArgTuple;
    /// The typed handles to the node's outputs: an [`Output<T>`] for one port, a struct of
    /// them for several.
    type Handles;
    /// The handles of the node added at `node`.
    fn handles(node: usize) -> Self::Handles;
}

macro_rules! tuples {
    ($( ($($A:ident $s:ident $i:tt),*) )*) => {$(
        impl<$($A: PortValue),*> ArgTuple for ($($A,)*) {
            #[allow(unused_variables)]
            fn port_specs(names: &[String]) -> Vec<PortSpec> {
                vec![$(PortSpec::new::<$A>(names[$i].clone())),*]
            }
            const ARITY: usize = 0 $(+ { let _ = $i; 1 })*;
            #[allow(unused_variables)]
            fn from_inputs(inputs: &crate::node::Inputs) -> Result<Self, Error> {
                Ok(($(inputs.get::<$A>($i)?,)*))
            }
        }

        #[allow(non_camel_case_types)]
        impl<$($A, $s: IntoSource<$A>),*> IntoSources<($($A,)*)> for ($($s,)*) {
            #[allow(clippy::unused_unit)]
            fn into_bindings(self) -> Vec<ErasedSource> {
                vec![$({
                    let source = self.$i.into_source();
                    ErasedSource { binding: source.binding, graph: source.graph }
                }),*]
            }
        }
    )*};
}

tuples! {
    ()
    (A0 s0 0)
    (A0 s0 0, A1 s1 1)
    (A0 s0 0, A1 s1 1, A2 s2 2)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3, A4 s4 4)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3, A4 s4 4, A5 s5 5)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3, A4 s4 4, A5 s5 5, A6 s6 6)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3, A4 s4 4, A5 s5 5, A6 s6 6, A7 s7 7)
}

pub(crate) struct NodeEntry {
    pub(crate) node: Arc<dyn Node>,
    pub(crate) bindings: Vec<Binding>,
    pub(crate) location: &'static Location<'static>,
}

/// Environment variable of the `cargo daggr graph` handshake: when set, [`Graph::build`]
/// writes the graph IR as JSON to that path (`-` for stdout) and exits the process with 0,
/// before any network or disk I/O.
pub const EXPORT_GRAPH_ENV: &str = "DAGGR_EXPORT_GRAPH";

/// The graph's edges as a petgraph over node indices, weighted `(output port, input port)`:
/// what validation hands the executor.
pub(crate) type Dag = DiGraph<usize, (usize, usize)>;

/// Builds a pipeline: add nodes, wire ports, then [`Graph::build`].
///
/// ```
/// use daggr::{constant, FnNode, Graph, Scope};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
/// let mut g = Graph::new("doc");
/// let name = g.input("name", "world".to_string());
/// let greeting = g.add(FnNode::sync("greet", |n: String, p: String| format!("{p}, {n}!")), (name, constant("Hello".to_string())));
/// # let dir = tempfile::tempdir().unwrap();
/// let pipeline = g.cache(daggr::Cache::open(dir.path())?).build()?;
/// let report = pipeline.run(Scope::All).await?;
/// assert_eq!(*report.value(&greeting)?, "Hello, world!");
/// # Ok(()) }
/// ```
pub struct Graph {
    pub(crate) name: String,
    /// Unique in the process: the handles this graph makes carry it.
    id: u64,
    pub(crate) nodes: Vec<NodeEntry>,
    pub(crate) cache: Option<Cache>,
    pub(crate) concurrency: usize,
    pub(crate) group_limits: HashMap<String, usize>,
    /// The pipeline's named outputs, in the order they were named.
    pub(crate) outputs: Vec<NamedOutput>,
    /// Inputs shown together ([`Graph::group_inputs`]).
    pub(crate) input_groups: Vec<InputGroup>,
    /// Widget hints of inputs, by node index ([`Graph::input_hint`]).
    pub(crate) input_hints: HashMap<usize, crate::node::InputHint>,
    problems: Vec<Error>,
}

/// One of a pipeline's named outputs ([`Graph::name_output`]): what a call of the workflow API
/// returns under `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedOutput {
    /// The output's name.
    pub name: String,
    /// The node it reads (index in declaration order).
    pub node: usize,
    /// The output port of that node.
    pub port: usize,
}

impl Graph {
    /// An empty graph named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let id = NEXT_GRAPH_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        register_graph_name(id, &name);
        Graph {
            id,
            name,
            nodes: Vec::new(),
            cache: None,
            concurrency: 64,
            group_limits: HashMap::new(),
            outputs: Vec::new(),
            input_groups: Vec::new(),
            input_hints: HashMap::new(),
            problems: Vec::new(),
        }
    }

    /// Uses this cache instead of the default one ([`Cache::open_default`]).
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The most nodes that compute at the same time (default 64).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// The most nodes of `group` that compute at the same time.
    pub fn group_limit(mut self, group: impl Into<String>, limit: usize) -> Self {
        self.group_limits.insert(group.into(), limit.max(1));
        self
    }

    /// A named pipeline input with a default value; change it with
    /// [`Pipeline::set_input`](crate::Pipeline::set_input).
    #[track_caller]
    pub fn input<T: PortValue>(&mut self, name: impl Into<String>, default: T) -> Output<T> {
        let node = input::InputNode::<T>::new(name.into());
        self.add(node, (constant(default),))
    }

    /// Names `out` as one of the pipeline's outputs: what a call of the workflow API
    /// (`POST /api/call`) returns, under `name`. Without named outputs, a call returns the
    /// outputs no node reads. A name used twice, or a handle from another graph, is an
    /// error at [`Graph::build`].
    pub fn name_output<T>(&mut self, name: impl Into<String>, out: &Output<T>) {
        let name = name.into();
        if out.graph != 0 && out.graph != self.id {
            self.problems.push(Error::Failed {
                node: name.clone(),
                message: format!(
                    "output `{name}` of graph `{}` names a handle from {}: name an output of a node of this graph",
                    self.name,
                    graph_label(out.graph)
                ),
            });
            return;
        }
        if self.outputs.iter().any(|o| o.name == name) {
            self.problems.push(Error::Failed {
                node: name.clone(),
                message: format!("output `{name}` is named twice: every output needs its own name"),
            });
            return;
        }
        self.outputs.push(NamedOutput {
            name,
            node: out.node,
            port: out.port,
        });
    }

    /// Adds a typed node, wiring its inputs from `inputs` (a tuple with one source per argument).
    #[track_caller]
    pub fn add<N: TypedNode>(&mut self, node: N, inputs: impl IntoSources<N::Args>) -> N::Handles {
        let id = self.add_erased(Arc::new(node), inputs.into_bindings());
        self.handles::<N>(id)
    }

    /// Adds `node` with one source per input port, checked to come from this graph; returns
    /// its index.
    #[track_caller]
    pub(crate) fn add_erased(&mut self, node: Arc<dyn Node>, sources: Vec<ErasedSource>) -> usize {
        let id = self.nodes.len();
        // Exactly one slot per port: a vector grown by pushes keeps room for four.
        let mut bindings = Vec::with_capacity(sources.len());
        for (port, source) in sources.into_iter().enumerate() {
            let ErasedSource { binding, graph } = source;
            match binding {
                Ok(Binding::Port { node: from, .. }) if graph != 0 && graph != self.id => {
                    let spec = node.spec();
                    self.problems.push(Error::Failed {
                        node: spec.name.clone(),
                        message: format!(
                            "input `{}.{}` of graph `{}` is wired to a handle from {} (node #{from} there): a handle only wires nodes of the graph that made it; add the upstream node to graph `{}` and use the handle that returns",
                            spec.name, spec.inputs[port].name, self.name, graph_label(graph), self.name
                        ),
                    });
                    bindings.push(Binding::Unbound);
                }
                Ok(b) => bindings.push(b),
                Err(source) => {
                    let spec = node.spec();
                    self.problems.push(Error::Codec {
                        node: spec.name.clone(),
                        port: spec.inputs[port].name.clone(),
                        type_name: spec.inputs[port].ty.name(),
                        source,
                    });
                    bindings.push(Binding::Unbound);
                }
            }
        }
        self.nodes.push(NodeEntry {
            node,
            bindings,
            location: Location::caller(),
        });
        id
    }

    /// `N::handles(node)`, stamped with this graph's id (see [`Output::new`]).
    fn handles<N: TypedNode>(&self, node: usize) -> N::Handles {
        self.stamped(|| N::handles(node))
    }

    /// Runs `make` (which makes handles with [`Output::new`]) so that the handles it makes
    /// carry this graph's id.
    fn stamped<H>(&self, make: impl FnOnce() -> H) -> H {
        struct Restore(u64);
        impl Drop for Restore {
            fn drop(&mut self) {
                MAKING_HANDLES_FOR.with(|g| g.set(self.0));
            }
        }
        let _restore = Restore(MAKING_HANDLES_FOR.with(|g| g.replace(self.id)));
        make()
    }

    /// This graph's id, unique in the process: the handles it makes carry it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Adds a node with all inputs unconnected (for graphs assembled at run time).
    #[track_caller]
    pub fn add_dyn(&mut self, node: impl Node) -> NodeId {
        self.add_arc(Arc::new(node))
    }

    /// Adds a shared node with all inputs unconnected.
    #[track_caller]
    pub fn add_arc(&mut self, node: Arc<dyn Node>) -> NodeId {
        let id = self.nodes.len();
        let bindings = vec![Binding::Unbound; node.spec().inputs.len()];
        self.nodes.push(NodeEntry {
            node,
            bindings,
            location: Location::caller(),
        });
        NodeId(id, self.id)
    }

    /// Finds a node by name.
    pub fn node_id(&self, name: &str) -> Result<NodeId, Error> {
        self.nodes
            .iter()
            .position(|n| n.node.spec().name == name)
            .map(|index| NodeId(index, self.id))
            .ok_or_else(|| Error::UnknownNode {
                name: name.to_string(),
                suggestion: suggest(name, self.nodes.iter().map(|n| n.node.spec().name.as_str())),
            })
    }

    fn spec(&self, id: NodeId) -> &NodeSpec {
        self.nodes[id.0].node.spec()
    }

    /// `Ok` if `id` is a node of this graph; otherwise an error naming both graphs (the
    /// index would pick some other node here, or none).
    fn own(&self, id: NodeId, role: &str) -> Result<(), Error> {
        if id.1 == 0 || id.1 == self.id {
            return Ok(());
        }
        Err(Error::Failed {
            node: format!("#{}", id.0),
            message: format!(
                "the {role} node (node #{} of {}) is not a node of graph `{}`: a node id only works with the graph that made it",
                id.0,
                graph_label(id.1),
                self.name
            ),
        })
    }

    /// Connects `from.out_port` to `to.in_port`, checking names and types at run time.
    pub fn connect_dyn(
        &mut self,
        from: NodeId,
        out_port: &str,
        to: NodeId,
        in_port: &str,
    ) -> Result<(), Error> {
        self.own(from, "source")?;
        self.own(to, "target")?;
        let src = port_index(self.spec(from), out_port, Direction::Output)?;
        let dst = port_index(self.spec(to), in_port, Direction::Input)?;
        let (src_spec, dst_spec) = (self.spec(from), self.spec(to));
        let (src_ty, dst_ty) = (src_spec.outputs[src].ty, dst_spec.inputs[dst].ty);
        if !src_ty.same_as(&dst_ty) {
            return Err(Error::TypeMismatch {
                from: format!("{}.{out_port}", src_spec.name),
                from_type: src_ty.name(),
                to: format!("{}.{in_port}", dst_spec.name),
                to_type: dst_ty.name(),
            });
        }
        self.bind(
            to,
            dst,
            Binding::Port {
                node: from.0,
                port: src,
            },
        )
    }

    /// Binds a constant to `to.in_port`, checking its type.
    pub fn set_constant<T: PortValue>(
        &mut self,
        to: NodeId,
        in_port: &str,
        value: T,
    ) -> Result<(), Error> {
        self.own(to, "target")?;
        let spec = self.spec(to);
        let dst = port_index(spec, in_port, Direction::Input)?;
        let ty = spec.inputs[dst].ty;
        if !ty.is::<T>() {
            return Err(Error::WrongValueType {
                node: spec.name.clone(),
                port: in_port.to_string(),
                expected: ty.name(),
                found: std::any::type_name::<T>(),
            });
        }
        let value = Value::new(value).map_err(|source| Error::Codec {
            node: spec.name.clone(),
            port: in_port.to_string(),
            type_name: ty.name(),
            source,
        })?;
        self.bind(to, dst, Binding::Const(value))
    }

    /// Binds a constant given as an untyped [`Value`] to `to.in_port`, checking its type at
    /// run time.
    pub fn set_constant_value(
        &mut self,
        to: NodeId,
        in_port: &str,
        value: Value,
    ) -> Result<(), Error> {
        self.own(to, "target")?;
        let spec = self.spec(to);
        let dst = port_index(spec, in_port, Direction::Input)?;
        let ty = spec.inputs[dst].ty;
        if !ty.same_as(&value.port_type()) {
            return Err(Error::WrongValueType {
                node: spec.name.clone(),
                port: in_port.to_string(),
                expected: ty.name(),
                found: value.port_type().name(),
            });
        }
        self.bind(to, dst, Binding::Const(value))
    }

    /// A typed handle to an output of a node added at run time; checks the type.
    pub fn output<T: PortValue>(&self, node: NodeId, port: &str) -> Result<Output<T>, Error> {
        self.own(node, "given")?;
        let spec = self.spec(node);
        let index = port_index(spec, port, Direction::Output)?;
        let ty = spec.outputs[index].ty;
        if !ty.is::<T>() {
            return Err(Error::WrongValueType {
                node: spec.name.clone(),
                port: port.to_string(),
                expected: ty.name(),
                found: std::any::type_name::<T>(),
            });
        }
        Ok(Output::in_graph(self.id, node.0, index))
    }

    fn bind(&mut self, to: NodeId, port: usize, binding: Binding) -> Result<(), Error> {
        let slot = &mut self.nodes[to.0].bindings[port];
        if !matches!(slot, Binding::Unbound) {
            let spec = self.nodes[to.0].node.spec();
            return Err(Error::InputWiredTwice {
                node: spec.name.clone(),
                port: spec.inputs[port].name.clone(),
            });
        }
        *slot = binding;
        Ok(())
    }

    /// Validates the graph (duplicate names, unconnected inputs, cycles; every problem
    /// at once) and returns it with its edges as a petgraph, for the executor
    /// (`Graph::build`, in the executor's layer, makes the pipeline).
    pub(crate) fn validate(mut self) -> Result<(Graph, Dag), Error> {
        let mut problems = std::mem::take(&mut self.problems);
        problems.extend(self.group_problems());
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for entry in &self.nodes {
            let name = entry.node.spec().name.as_str();
            *seen.entry(name).or_default() += 1;
            if seen[name] == 2 {
                problems.push(Error::DuplicateNode {
                    name: name.to_string(),
                });
            }
        }
        let mut graph: DiGraph<usize, (usize, usize)> =
            DiGraph::with_capacity(self.nodes.len(), self.nodes.len());
        for i in 0..self.nodes.len() {
            graph.add_node(i);
        }
        for (i, entry) in self.nodes.iter().enumerate() {
            for (port, binding) in entry.bindings.iter().enumerate() {
                match binding {
                    Binding::Unbound => problems.push(Error::UnconnectedInput {
                        node: entry.node.spec().name.clone(),
                        port: entry.node.spec().inputs[port].name.clone(),
                    }),
                    Binding::Port { node, port: out } => {
                        graph.add_edge(NodeIndex::new(*node), NodeIndex::new(i), (*out, port));
                    }
                    _ => {}
                }
            }
        }
        for cycle in cycles(&graph) {
            problems.push(Error::Cycle {
                nodes: cycle
                    .into_iter()
                    .map(|n| self.nodes[n].node.spec().name.clone())
                    .collect(),
            });
        }
        Error::all(problems)?;
        if let Some(target) = std::env::var_os(EXPORT_GRAPH_ENV) {
            export_and_exit(&self.ir(), &target);
        }
        Ok((self, graph))
    }
}

impl Graph {
    /// The graph IR (nodes, typed ports, edges, source locations), as `cargo daggr graph` prints it.
    pub fn ir(&self) -> GraphIr {
        build_ir(&self.name, self.nodes.len(), &self.input_groups, |i| {
            let entry = &self.nodes[i];
            (&*entry.node, &entry.bindings[..], entry.location)
        })
    }
}

/// The IR of a graph of `len` nodes named `name`; `entry(i)` gives node `i`'s spec, its
/// bindings and where it was added. One pass over the nodes: a pipeline builds it when it
/// is first asked for, not with every graph.
pub(crate) fn build_ir<'a>(
    name: &str,
    len: usize,
    groups: &[InputGroup],
    entry: impl Fn(usize) -> (&'a dyn Node, &'a [Binding], &'static Location<'static>),
) -> GraphIr {
    let mut group_of: HashMap<usize, &str> = HashMap::new();
    for group in groups {
        for &member in &group.members {
            group_of.insert(member, &group.name);
        }
    }
    let port = |p: &crate::node::PortSpec, source: Option<String>| PortIr {
        name: p.name.clone(),
        ty: short_type_name(p.ty.name()),
        source,
    };
    let mut edges = Vec::new();
    let ir_nodes = (0..len)
        .map(|i| {
            let (node, bindings, location) = entry(i);
            let spec = node.spec();
            let inputs = spec
                .inputs
                .iter()
                .zip(bindings)
                .map(|(p, b)| match b {
                    Binding::Port { node, port: out } => {
                        let from = entry(*node).0.spec();
                        edges.push(EdgeIr {
                            from: from.name.clone(),
                            from_port: from.outputs[*out].name.clone(),
                            to: spec.name.clone(),
                            to_port: p.name.clone(),
                            ty: short_type_name(p.ty.name()),
                        });
                        port(p, None)
                    }
                    Binding::Const(_) => port(p, Some("const".into())),
                    Binding::Generated(g) => port(p, Some(format!("generated:{}", g.label))),
                    Binding::Unbound => port(p, Some("unbound".into())),
                })
                .collect();
            NodeIr {
                name: spec.name.clone(),
                kind: spec.kind.to_string(),
                inputs,
                outputs: spec.outputs.iter().map(|p| port(p, None)).collect(),
                location: Some(SourceLocation {
                    file: location.file().to_string(),
                    line: location.line(),
                    column: location.column(),
                }),
                group: group_of.get(&i).map(|g| g.to_string()),
                variants: match node.composite() {
                    Some(Composite::Choice(plan)) => {
                        plan.variants().map(|(v, _)| v.to_string()).collect()
                    }
                    _ => Vec::new(),
                },
                mapped: match node.composite() {
                    Some(Composite::Map(plan)) => spec
                        .inputs
                        .iter()
                        .enumerate()
                        .filter(|(port, _)| plan.is_mapped(*port))
                        .map(|(_, p)| p.name.clone())
                        .collect(),
                    _ => Vec::new(),
                },
            }
        })
        .collect();
    GraphIr {
        schema_version: daggr_codegen::ir::SCHEMA_VERSION,
        name: name.to_string(),
        nodes: ir_nodes,
        edges,
    }
}

fn export_and_exit(ir: &GraphIr, target: &std::ffi::OsStr) -> ! {
    let json = ir.to_json();
    let result = if target == "-" {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(json.as_bytes())
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
    } else {
        std::fs::write(target, json)
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!(
                "daggr: cannot write the graph to {}: {e}",
                target.to_string_lossy()
            );
            std::process::exit(2)
        }
    }
}

/// One loop per strongly connected component with a cycle (a self-loop counts), ordered
/// by their lowest node index; each loop starts at its component's lowest index.
///
/// Nothing here recurses: the common case, an acyclic graph, is settled by Kahn's
/// algorithm alone; only when nodes are left over does an iterative Tarjan find their
/// components, and a breadth-first search the shortest loop through each one's first
/// node. Graphs of any depth validate on a small stack (a tokio worker's 2 MiB).
fn cycles(graph: &Dag) -> Vec<Vec<usize>> {
    let n = graph.node_count();
    let mut indegree = vec![0u32; n];
    for e in graph.raw_edges() {
        indegree[e.target().index()] += 1;
    }
    let mut queue: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut done = 0;
    while let Some(v) = queue.pop() {
        done += 1;
        for d in graph.neighbors(NodeIndex::new(v)) {
            indegree[d.index()] -= 1;
            if indegree[d.index()] == 0 {
                queue.push(d.index());
            }
        }
    }
    if done == n {
        return Vec::new();
    }
    // Every node on a cycle is left with a positive in-degree (so is everything downstream
    // of one): Tarjan over those alone.
    let left: Vec<bool> = indegree.iter().map(|&d| d > 0).collect();
    let mut components = strongly_connected(graph, &left);
    components
        .retain(|c| c.len() > 1 || graph.contains_edge(NodeIndex::new(c[0]), NodeIndex::new(c[0])));
    for c in &mut components {
        c.sort_unstable();
    }
    components.sort_unstable_by_key(|c| c[0]);
    components.iter().map(|c| cycle_order(graph, c)).collect()
}

/// Tarjan's strongly connected components of the nodes marked in `within`, with an
/// explicit stack in place of recursion.
fn strongly_connected(graph: &Dag, within: &[bool]) -> Vec<Vec<usize>> {
    const UNSEEN: u32 = u32::MAX;
    let n = graph.node_count();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next_index = 0u32;
    let mut components = Vec::new();
    // The DFS path: each node with the iterator over its remaining successors.
    let mut path: Vec<(usize, petgraph::graph::Neighbors<'_, (usize, usize)>)> = Vec::new();
    for root in 0..n {
        if !within[root] || index[root] != UNSEEN {
            continue;
        }
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        path.push((root, graph.neighbors(NodeIndex::new(root))));
        while let Some((v, successors)) = path.last_mut() {
            let v = *v;
            match successors.next().map(|w| w.index()) {
                Some(w) if !within[w] => {}
                Some(w) if index[w] == UNSEEN => {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    path.push((w, graph.neighbors(NodeIndex::new(w))));
                }
                Some(w) => {
                    if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                }
                None => {
                    path.pop();
                    if let Some((parent, _)) = path.last() {
                        low[*parent] = low[*parent].min(low[v]);
                    }
                    if low[v] == index[v] {
                        let mut component = Vec::new();
                        loop {
                            let w = stack.pop().expect("v is on the stack");
                            on_stack[w] = false;
                            component.push(w);
                            if w == v {
                                break;
                            }
                        }
                        components.push(component);
                    }
                }
            }
        }
    }
    components
}

/// One loop through a strongly connected component (sorted, at least one edge inside it):
/// the shortest way from its lowest node back to itself, found breadth first.
fn cycle_order(graph: &Dag, component: &[usize]) -> Vec<usize> {
    let start = component[0];
    let inside = |v: usize| component.binary_search(&v).is_ok();
    // Breadth first from `start`'s successors; `parent[v]` is the node `v` was reached from.
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::new();
    if graph.contains_edge(NodeIndex::new(start), NodeIndex::new(start)) {
        return vec![start];
    }
    let mut last = start;
    queue.push_back(start);
    'search: while let Some(v) = queue.pop_front() {
        for w in graph.neighbors(NodeIndex::new(v)).map(|w| w.index()) {
            if w == start {
                last = v;
                break 'search;
            }
            if inside(w) && !parent.contains_key(&w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    // Back from the loop's last node to `start` (the only node without a parent).
    let mut order = vec![last];
    while let Some(&p) = parent.get(order.last().expect("not empty")) {
        order.push(p);
    }
    order.reverse();
    order
}

#[derive(Clone, Copy)]
enum Direction {
    Input,
    Output,
}

fn port_index(spec: &NodeSpec, port: &str, direction: Direction) -> Result<usize, Error> {
    let ports = match direction {
        Direction::Input => &spec.inputs,
        Direction::Output => &spec.outputs,
    };
    ports
        .iter()
        .position(|p| p.name == port)
        .ok_or_else(|| Error::UnknownPort {
            node: spec.name.clone(),
            direction: match direction {
                Direction::Input => "input",
                Direction::Output => "output",
            },
            port: port.to_string(),
            available: ports.iter().map(|p| p.name.clone()).collect(),
            suggestion: suggest(port, ports.iter().map(|p| p.name.as_str())),
        })
}
