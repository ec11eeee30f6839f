//! Map (scatter/gather): one node applied to every item of a list, typed. The map node's
//! list inputs are `Vec<T>` where the node takes `T` (marked with [`each`]); its other inputs
//! go whole to every item; its output is the `Vec` of the node's output, in item order.
//! The executor runs the items concurrently and caches each under the key the node has for
//! that item's inputs (`exec/composite.rs`).

use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{ErasedSource, Graph, IntoSource, Output, Source, TypedNode};
use crate::error::{error_chain, BoxError, Error};
use crate::node::composite::{Composite, GatherFn, ItemError, ItemFailures, MapPlan, SplitFn};
use crate::node::{Inputs, Node, NodeContext, NodeSpec, PortSpec};
use crate::value::{PortType, PortValue, Value};

/// A list source of a map: each item of the list goes to its own call of the node.
///
/// Made by [`each`]; see [`Graph::map`].
pub struct Each<T> {
    list: Source<Vec<T>>,
}

/// Marks a list (`Vec<T>`) as the input a map splits into items: the node takes `T`, and is
/// called once per item. Several `each` sources of one map are zipped (they must have the same
/// length).
pub fn each<T: PortValue>(list: impl IntoSource<Vec<T>>) -> Each<T> {
    Each {
        list: list.into_source(),
    }
}

/// A source for one input of a mapped node taking `A`: a list split into items ([`each`]),
/// or anything that feeds an `A` (an output, a constant), given whole to every item.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a source for a mapped input of type `{A}`",
    label = "expected `daggr::each(list)` with a list of `{A}`, or a source of `{A}` given to every item",
    note = "a mapped node is called once per item: wrap a `Vec<{A}>` output in `daggr::each(..)` to split it, or pass an `Output<{A}>` or `daggr::constant(..)` to give every item the same value"
)]
pub trait MapSource<A> {
    #[doc(hidden)]
    fn into_map_source(self) -> MapBinding;
}

/// A source of a map with its type erased (an implementation detail of [`MapSource`]).
#[doc(hidden)]
pub struct MapBinding {
    source: ErasedSource,
    split: Option<SplitFn>,
    ty: PortType,
}

impl<A: PortValue> MapSource<A> for Each<A> {
    fn into_map_source(self) -> MapBinding {
        MapBinding {
            source: ErasedSource {
                binding: self.list.binding,
                graph: self.list.graph,
            },
            split: Some(split_list::<A>),
            ty: PortType::of::<Vec<A>>(),
        }
    }
}

/// A source given whole to every item (the same impls as [`IntoSource`]).
fn whole<A: PortValue>(source: Source<A>) -> MapBinding {
    MapBinding {
        source: ErasedSource {
            binding: source.binding,
            graph: source.graph,
        },
        split: None,
        ty: PortType::of::<A>(),
    }
}

impl<A: PortValue> MapSource<A> for Output<A> {
    fn into_map_source(self) -> MapBinding {
        whole(self.into_source())
    }
}

impl<A: PortValue> MapSource<A> for &Output<A> {
    fn into_map_source(self) -> MapBinding {
        whole(self.into_source())
    }
}

impl<A: PortValue> MapSource<A> for Source<A> {
    fn into_map_source(self) -> MapBinding {
        whole(self)
    }
}

/// A tuple of map sources matching a node's arguments one for one.
#[diagnostic::on_unimplemented(
    message = "the mapped node takes the inputs `{Args}`: these sources do not match them one for one",
    label = "expected one source per input, in order, as a tuple",
    note = "the sources given are `{Self}`; split a list with `daggr::each(list)` (a `Vec` of the input's type), give other inputs an output or a `daggr::constant(..)` of the input's own type"
)]
pub trait IntoMapSources<Args> {
    #[doc(hidden)]
    fn into_map_bindings(self) -> Vec<MapBinding>;
}

macro_rules! map_tuples {
    ($( ($($A:ident $s:ident $i:tt),*) )*) => {$(
        #[allow(non_camel_case_types)]
        impl<$($A, $s: MapSource<$A>),*> IntoMapSources<($($A,)*)> for ($($s,)*) {
            fn into_map_bindings(self) -> Vec<MapBinding> {
                vec![$(self.$i.into_map_source()),*]
            }
        }
    )*};
}

map_tuples! {
    (A0 s0 0)
    (A0 s0 0, A1 s1 1)
    (A0 s0 0, A1 s1 1, A2 s2 2)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3, A4 s4 4)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3, A4 s4 4, A5 s5 5)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3, A4 s4 4, A5 s5 5, A6 s6 6)
    (A0 s0 0, A1 s1 1, A2 s2 2, A3 s3 3, A4 s4 4, A5 s5 5, A6 s6 6, A7 s7 7)
}

fn split_list<T: PortValue>(list: &Value) -> Result<Vec<Value>, serde_json::Error> {
    // An owned copy (port values need not be `Clone`), then one value per item: each item
    // is encoded and hashed on its own, so its key does not depend on its neighbours.
    let items: Vec<T> = match list.to_owned_value::<Vec<T>>() {
        Some(items) => items?,
        None => {
            return Err(serde::de::Error::custom(format!(
                "expected a list of `{}`, found `{}`",
                std::any::type_name::<T>(),
                list.port_type().name()
            )))
        }
    };
    items.into_iter().map(Value::new).collect()
}

/// What a map's output holds: the items' values ([`Values`]) or one `Result` per item
/// ([`Results`]).
pub trait Gather<U: PortValue> {
    /// The output type.
    type Out: PortValue;
    #[doc(hidden)]
    fn gather_fn() -> GatherFn;
}

/// A map whose output is `Vec<U>`: the node fails when an item fails, unless
/// [`Map::skip_failed`] leaves failed items out.
pub struct Values;

/// A map whose output is `Vec<Result<U, ItemError>>`: one entry per item, failed or not
/// ([`Map::collect_errors`]).
pub struct Results;

impl<U: PortValue> Gather<U> for Values {
    type Out = Vec<U>;
    fn gather_fn() -> GatherFn {
        Arc::new(|items: Vec<Result<Value, ItemError>>| {
            let values = items
                .into_iter()
                .filter_map(Result::ok)
                .map(|v| owned::<U>(&v))
                .collect::<Result<Vec<U>, _>>()?;
            Value::new(values)
        })
    }
}

impl<U: PortValue> Gather<U> for Results {
    type Out = Vec<Result<U, ItemError>>;
    fn gather_fn() -> GatherFn {
        Arc::new(|items: Vec<Result<Value, ItemError>>| {
            let values = items
                .into_iter()
                .map(|item| match item {
                    Ok(v) => owned::<U>(&v).map(Ok),
                    Err(e) => Ok(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Value::new(values)
        })
    }
}

fn owned<U: PortValue>(value: &Value) -> Result<U, serde_json::Error> {
    value.to_owned_value::<U>().unwrap_or_else(|| {
        Err(serde::de::Error::custom(format!(
            "an item produced `{}`, not `{}`",
            value.port_type().name(),
            std::any::type_name::<U>()
        )))
    })
}

/// The handles of a node with exactly one output port: an `Output<T>`, or the outputs
/// struct `#[fn_node]` generates for a function with one output.
#[diagnostic::on_unimplemented(
    message = "a mapped node or a choice variant has one output port, and this node's outputs are `{Self}`",
    label = "this node has more than one output port",
    note = "map over, or choose between, nodes with one output each: split this node, or name the one output you need with `#[fn_node(outputs(..))]` on a function returning one value"
)]
pub trait OneOutputPort {
    /// The port's type. Not bound by `PortValue` here: `#[fn_node]` implements this trait
    /// for its outputs struct, and a type that cannot cross a port is reported once, on the
    /// user's type, by the node's own checks.
    type Value;
    /// The port.
    fn one_output(&self) -> Output<Self::Value>;
}

impl<T> OneOutputPort for Output<T> {
    type Value = T;
    fn one_output(&self) -> Output<T> {
        *self
    }
}

/// A node to apply to every item of its list inputs, with how failed items are handled;
/// add it with [`Graph::add_map`] (or use [`Graph::map`] for the defaults).
///
/// ```
/// use daggr::{each, Cache, FnNode, Graph, Map, Scope};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
/// let mut g = Graph::new("lengths");
/// let words = g.input("words", vec!["map".to_string(), "a".into(), "node".into()]);
/// let parse = FnNode::try_sync("parse", |w: String| {
///     if w.len() > 1 { Ok(w.len()) } else { Err(format!("`{w}` is too short")) }
/// });
/// let lengths = g.add_map(Map::new(parse).collect_errors(), (each(words),));
/// # let g = g.cache(Cache::temporary()?);
/// let report = g.build()?.run(Scope::All).await?;
/// let lengths = report.value(&lengths)?;
/// assert_eq!(lengths[0], Ok(3));
/// assert_eq!(lengths[1].as_ref().unwrap_err().error, "node `parse` failed: `a` is too short");
/// # Ok(()) }
/// ```
pub struct Map<N, G = Values> {
    node: N,
    name: Option<String>,
    failures: ItemFailures,
    _gather: PhantomData<fn() -> G>,
}

impl<N: TypedNode> Map<N, Values> {
    /// Applies `node` to every item; the map fails when an item fails (after every item was
    /// attempted, and the ones that succeeded were cached).
    pub fn new(node: N) -> Self {
        Map {
            node,
            name: None,
            failures: ItemFailures::FailNode,
            _gather: PhantomData,
        }
    }

    /// Leaves failed items out of the output instead of failing the node (the output is
    /// then shorter than the input; the node's result says which items failed).
    pub fn skip_failed(mut self) -> Self {
        self.failures = ItemFailures::Skip;
        self
    }

    /// Outputs one `Result` per item, `Err` for a failed one: downstream decides.
    pub fn collect_errors(self) -> Map<N, Results> {
        Map {
            node: self.node,
            name: self.name,
            failures: ItemFailures::Collect,
            _gather: PhantomData,
        }
    }
}

impl<N, G> Map<N, G> {
    /// Names the map node (default: the node's own name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// The node a map adds to the graph.
pub(crate) struct MapNode {
    spec: NodeSpec,
    composite: Composite,
}

impl MapNode {
    fn plan(&self) -> &MapPlan {
        match &self.composite {
            Composite::Map(plan) => plan,
            Composite::Choice(_) => unreachable!("a map node holds a map plan"),
        }
    }
}

impl Node for MapNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn composite(&self) -> Option<&Composite> {
        Some(&self.composite)
    }

    fn runtime_fingerprint(&self) -> Option<BoxFuture<'static, Option<String>>> {
        self.plan().item.runtime_fingerprint()
    }

    fn preflight(&self) -> Option<BoxFuture<'static, Result<(), Error>>> {
        self.plan().item.preflight()
    }

    /// The executor evaluates a map item by item (concurrently, each item cached); called
    /// directly, the items run one after the other, uncached.
    fn run(
        &self,
        ctx: NodeContext,
        inputs: Inputs,
    ) -> BoxFuture<'static, Result<Vec<Value>, BoxError>> {
        let plan = self.plan();
        let items = plan.split_items(&self.spec, &inputs.values);
        let item = plan.item.clone();
        let names: Vec<String> = item.spec().inputs.iter().map(|p| p.name.clone()).collect();
        let spec = self.spec.clone();
        let plan = MapPlan {
            item: item.clone(),
            split: plan.split.clone(),
            gather: plan.gather.clone(),
            failures: plan.failures,
        };
        Box::pin(async move {
            let mut results = Vec::new();
            for (index, values) in items?.into_iter().enumerate() {
                let inputs = Inputs {
                    node: ctx.node.clone(),
                    values,
                    names: names.clone(),
                };
                results.push(match item.run(ctx.clone(), inputs).await {
                    Ok(mut out) if out.len() == 1 => Ok(out.remove(0)),
                    Ok(out) => Err(ItemError {
                        index,
                        error: format!("returned {} outputs, but declares 1", out.len()),
                    }),
                    Err(e) => Err(ItemError {
                        index,
                        error: error_chain(&*e),
                    }),
                });
            }
            Ok(vec![plan.gather_items(&spec, results)?])
        })
    }
}

impl Graph {
    /// Applies `node` to every item of the lists marked with [`each`], concurrently, and
    /// returns the list of its outputs in item order. Inputs not marked with `each` go whole
    /// to every item. Each item is cached on its own, under the key `node` has for that
    /// item's inputs: change one item of a hundred and one call runs; reorder them and none
    /// does. An item that fails fails the map (after the others finished and were cached);
    /// see [`Graph::add_map`] to skip or collect failed items instead.
    ///
    /// The node's group, timeout and retries apply to each item; the map node is named
    /// after the node. The node must have one output port (an `Output<T>`, or a
    /// `#[fn_node]` with one output).
    ///
    /// ```
    /// use daggr::{constant, each, Cache, FnNode, Graph, Scope};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
    /// let mut g = Graph::new("shout");
    /// let words = g.input("words", vec!["map".to_string(), "each".into()]);
    /// let shout = FnNode::sync("shout", |w: String, mark: String| w.to_uppercase() + &mark);
    /// let loud = g.map(shout, (each(words), constant("!".to_string())));
    /// # let g = g.cache(Cache::temporary()?);
    /// let report = g.build()?.run(Scope::All).await?;
    /// assert_eq!(*report.value(&loud)?, ["MAP!", "EACH!"]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn map<N, U>(&mut self, node: N, sources: impl IntoMapSources<N::Args>) -> Output<Vec<U>>
    where
        N: TypedNode,
        N::Handles: OneOutputPort<Value = U>,
        U: PortValue,
    {
        self.add_map(Map::new(node), sources)
    }

    /// Adds a map ([`Graph::map`]) with its settings: its name, and what happens to failed
    /// items ([`Map::skip_failed`], [`Map::collect_errors`]).
    #[track_caller]
    pub fn add_map<N, U, G>(
        &mut self,
        map: Map<N, G>,
        sources: impl IntoMapSources<N::Args>,
    ) -> Output<G::Out>
    where
        N: TypedNode,
        N::Handles: OneOutputPort<Value = U>,
        U: PortValue,
        G: Gather<U>,
    {
        let bindings = sources.into_map_bindings();
        let item = map.node.spec();
        let inputs: Vec<PortSpec> = item
            .inputs
            .iter()
            .zip(&bindings)
            .map(|(port, b)| PortSpec {
                name: port.name.clone(),
                ty: b.ty,
            })
            .collect();
        let mapped: Vec<&str> = item
            .inputs
            .iter()
            .zip(&bindings)
            .filter(|(_, b)| b.split.is_some())
            .map(|(p, _)| p.name.as_str())
            .collect();
        let name = map.name.clone().unwrap_or_else(|| item.name.clone());
        let spec = NodeSpec {
            name: name.clone(),
            kind: "map",
            identity: format!("{}:{}", item.kind, item.identity),
            code_fingerprint: item.code_fingerprint.clone(),
            params: serde_json::json!({
                "item": item.params,
                "mapped": mapped,
                "failures": map.failures,
            }),
            inputs,
            outputs: vec![PortSpec::new::<G::Out>(item.outputs[0].name.clone())],
            config: crate::node::NodeConfig {
                // The item's group, timeout and retries apply to each item; the map itself
                // is cached like any node.
                cache: item.config.cache,
                version: item.config.version.clone(),
                ..Default::default()
            },
        };
        if mapped.is_empty() {
            self.problems.push(Error::Failed {
                node: name.clone(),
                message: format!(
                    "map `{name}` splits none of its inputs: wrap the list to split in `daggr::each(..)`"
                ),
            });
        }
        let split: Vec<Option<SplitFn>> = bindings.iter().map(|b| b.split).collect();
        let sources: Vec<ErasedSource> = bindings.into_iter().map(|b| b.source).collect();
        let node = MapNode {
            spec,
            composite: Composite::Map(MapPlan {
                item: Arc::new(map.node),
                split,
                gather: G::gather_fn(),
                failures: map.failures,
            }),
        };
        let id = self.add_erased(Arc::new(node), sources);
        Output::in_graph(self.id, id, 0)
    }
}
