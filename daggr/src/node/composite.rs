//! Nodes made of other nodes, which the executor evaluates part by part: a map applies one
//! node to every item of its list inputs, a choice runs one of several interchangeable nodes.
//! Each part is keyed and cached as its own node would be, so a map's item or a choice's
//! variant is a cache hit wherever the same node saw the same inputs before.
//!
//! The typed builders are [`Graph::map`](crate::Graph::map) and
//! [`Graph::choose`](crate::Graph::choose); this module holds what the executor needs.

use std::sync::Arc;

use crate::error::Error;
pub use crate::error::ItemError;
use crate::node::{Node, NodeSpec};
use crate::value::Value;

/// How a node made of other nodes is evaluated ([`Node::composite`]).
#[non_exhaustive]
pub enum Composite {
    /// One node applied to every item of the list inputs.
    Map(MapPlan),
    /// One of several interchangeable nodes.
    Choice(ChoicePlan),
}

/// Splits a list value (`Vec<T>`) into one value per item (`T`).
pub(crate) type SplitFn = fn(&Value) -> Result<Vec<Value>, serde_json::Error>;

/// Gathers the items' results, in item order, into the map's output value.
pub(crate) type GatherFn =
    Arc<dyn Fn(Vec<Result<Value, ItemError>>) -> Result<Value, serde_json::Error> + Send + Sync>;

/// A map: the node applied to each item, and how its inputs split and its outputs gather.
pub struct MapPlan {
    pub(crate) item: Arc<dyn Node>,
    /// Per input port of the map: how to split it, or `None` when every item gets the whole
    /// value (a broadcast input).
    pub(crate) split: Vec<Option<SplitFn>>,
    pub(crate) gather: GatherFn,
    pub(crate) failures: ItemFailures,
}

impl MapPlan {
    /// The node applied to each item.
    pub fn item_node(&self) -> &Arc<dyn Node> {
        &self.item
    }

    /// Whether input port `port` is split into items (rather than given whole to each).
    pub fn is_mapped(&self, port: usize) -> bool {
        self.split.get(port).is_some_and(Option::is_some)
    }

    /// What the map does when some items fail.
    pub fn failures(&self) -> ItemFailures {
        self.failures
    }

    /// Splits the map's input values (`spec` is the map node's) into each item's inputs, in
    /// the item node's port order. The lists are zipped: they must have the same length.
    pub(crate) fn split_items(
        &self,
        spec: &NodeSpec,
        values: &[Value],
    ) -> Result<Vec<Vec<Value>>, Error> {
        let mut lists: Vec<(usize, Vec<Value>)> = Vec::new();
        for (port, split) in self.split.iter().enumerate() {
            if let Some(split) = split {
                let items = split(&values[port]).map_err(|source| Error::Codec {
                    node: spec.name.clone(),
                    port: spec.inputs[port].name.clone(),
                    type_name: spec.inputs[port].ty.name(),
                    source,
                })?;
                lists.push((port, items));
            }
        }
        let count = lists.first().map_or(0, |(_, items)| items.len());
        if lists.iter().any(|(_, items)| items.len() != count) {
            let lengths = lists
                .iter()
                .map(|(port, items)| format!("`{}` has {}", spec.inputs[*port].name, items.len()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::NodeFailed {
                node: spec.name.clone(),
                source: format!(
                    "the lists it maps over are zipped item by item, so they need the same length: {lengths}"
                )
                .into(),
            });
        }
        let mut lists: Vec<std::vec::IntoIter<Value>> = lists
            .into_iter()
            .map(|(_, items)| items.into_iter())
            .collect();
        Ok((0..count)
            .map(|_| {
                let mut next_list = lists.iter_mut();
                self.split
                    .iter()
                    .zip(values)
                    .map(|(split, whole)| match split {
                        Some(_) => next_list
                            .next()
                            .and_then(Iterator::next)
                            .expect("every list has `count` items"),
                        None => whole.clone(),
                    })
                    .collect()
            })
            .collect())
    }

    /// Gathers the items' results, in item order, into the map's output (`spec` is the map
    /// node's); with [`ItemFailures::FailNode`], a failed item fails the node instead.
    pub(crate) fn gather_items(
        &self,
        spec: &NodeSpec,
        items: Vec<Result<Value, ItemError>>,
    ) -> Result<Value, Error> {
        if self.failures == ItemFailures::FailNode {
            let failed: Vec<ItemError> = items
                .iter()
                .filter_map(|item| item.as_ref().err().cloned())
                .collect();
            if !failed.is_empty() {
                return Err(Error::ItemsFailed {
                    node: spec.name.clone(),
                    total: items.len(),
                    failed,
                });
            }
        }
        (self.gather)(items).map_err(|source| Error::Codec {
            node: spec.name.clone(),
            port: spec.outputs[0].name.clone(),
            type_name: spec.outputs[0].ty.name(),
            source,
        })
    }
}

/// What a map hands downstream when some of its items failed. Whatever the choice, every
/// item is attempted, the items that succeed are cached, and the node's result records which
/// items failed and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ItemFailures {
    /// The node fails, naming the failed items (downstream is skipped).
    #[default]
    FailNode,
    /// The failed items are left out of the list (so its indices no longer match the input's).
    Skip,
    /// The output is `Vec<Result<U, ItemError>>`: one entry per item, in item order.
    Collect,
}

/// A choice: its variants in fallback order, and whether a failing selection falls back.
pub struct ChoicePlan {
    pub(crate) variants: Vec<(String, Arc<dyn Node>)>,
    pub(crate) fallback: bool,
}

impl ChoicePlan {
    /// The variants' names and nodes, in declaration (and fallback) order.
    pub fn variants(&self) -> impl Iterator<Item = (&str, &Arc<dyn Node>)> {
        self.variants
            .iter()
            .map(|(name, node)| (name.as_str(), node))
    }

    /// Whether a failing variant is followed by the next one.
    pub fn falls_back(&self) -> bool {
        self.fallback
    }
}

/// The name of a choice node's input port that selects the variant (a `String`, the
/// variant's name); it is the last port.
pub const VARIANT_PORT: &str = "variant";
