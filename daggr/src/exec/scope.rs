//! Which nodes a run evaluates: [`Scope`], the [`NodeRef`]s that name its nodes, and how a
//! workspace turns them into node indices.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use super::Pipeline;
use crate::error::{suggest, Error};
use crate::graph::Output;

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
    /// One item of a map node computed again, bypassing its cache entry (a result that
    /// looked wrong, a remote call worth another draw): the map alone, as with
    /// [`Scope::Only`], its other items served from the cache. The new result replaces the
    /// item's cache entry, the map's output is gathered again, and its readers go stale if
    /// it changed. Items are numbered from 0; a node that is not a map, or an item past the
    /// end of its lists, is refused before anything runs (see [`Pipeline::check_item`]).
    Item(NodeRef, usize),
}

/// Names a node: by name or by a handle.
#[derive(Clone, Debug)]
pub enum NodeRef {
    /// By name.
    Name(String),
    /// By index.
    Index(usize),
    /// By a typed handle: its node's index and the id of the graph that made it (a handle
    /// of another graph is refused, not taken for this graph's node of that index).
    Handle(usize, u64),
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
        NodeRef::Handle(out.node, out.graph_id())
    }
}
impl<T> From<Output<T>> for NodeRef {
    fn from(out: Output<T>) -> Self {
        NodeRef::Handle(out.node, out.graph_id())
    }
}
impl From<usize> for NodeRef {
    fn from(index: usize) -> Self {
        NodeRef::Index(index)
    }
}
impl From<crate::graph::NodeId> for NodeRef {
    fn from(id: crate::graph::NodeId) -> Self {
        NodeRef::Handle(id.index(), id.1)
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
    /// `Scope::Item(node, item)`.
    pub fn item(node: impl Into<NodeRef>, item: usize) -> Self {
        Scope::Item(node.into(), item)
    }
}

impl Pipeline {
    /// The scope as a run span's `scope` field: `all`, `to upper`, `only #3`, … (the
    /// `Debug` form, `To(Name("upper"))`, is noisy in a log line).
    pub(super) fn scope_label(&self, scope: &Scope) -> String {
        let (verb, node) = match scope {
            Scope::All => return "all".to_string(),
            Scope::To(n) => ("to", n),
            Scope::Only(n) => ("only", n),
            Scope::From(n) => ("from", n),
            Scope::Item(n, item) => {
                return match self.resolve(n) {
                    Ok(i) => format!("item {item} of {}", self.0.s.names[i]),
                    Err(_) => format!("item {item} of {n:?}"),
                }
            }
        };
        match self.resolve(node) {
            Ok(i) => format!("{verb} {}", self.0.s.names[i]),
            Err(_) => format!("{verb} {node:?}"),
        }
    }

    pub(super) fn resolve(&self, node: &NodeRef) -> Result<usize, Error> {
        match node {
            NodeRef::Handle(i, graph) => {
                self.check_handle(*graph, "a node handle")?;
                self.resolve(&NodeRef::Index(*i))
            }
            NodeRef::Index(i) if *i < self.0.s.nodes.len() => Ok(*i),
            NodeRef::Index(i) => Err(Error::UnknownNode {
                name: format!("#{i}"),
                suggestion: None,
            }),
            NodeRef::Name(name) => self.0.s.index_of(name).ok_or_else(|| Error::UnknownNode {
                name: name.clone(),
                suggestion: suggest(name, self.0.s.names.iter().map(|n| &**n)),
            }),
        }
    }

    pub(super) fn scope_set(&self, scope: &Scope) -> Result<Vec<bool>, Error> {
        let n = self.0.s.nodes.len();
        let mut set = vec![false; n];
        match scope {
            Scope::All => set.iter_mut().for_each(|s| *s = true),
            Scope::Only(node) => set[self.resolve(node)?] = true,
            Scope::To(node) => self.0.s.upstream.reach(self.resolve(node)?, &mut set),
            Scope::From(node) => self.0.s.downstream.reach(self.resolve(node)?, &mut set),
            Scope::Item(node, item) => {
                let n = self.resolve(node)?;
                self.check_item(n, *item)?;
                set[n] = true;
            }
        }
        Ok(set)
    }

    /// The map node and item a scope forces to compute again (resolved: call after
    /// [`Pipeline::scope_set`] accepted the scope).
    pub(super) fn forced_item(&self, scope: &Scope) -> Option<(usize, usize)> {
        match scope {
            Scope::Item(node, item) => Some((self.resolve(node).ok()?, *item)),
            _ => None,
        }
    }
}

/// Each node's distinct neighbours on one side (upstream or downstream), ascending, in
/// one flat array: two allocations for the whole graph rather than one per node.
pub(super) struct Adjacency {
    /// Node `i`'s neighbours are `nodes[start[i]..start[i + 1]]`.
    start: Vec<u32>,
    nodes: Vec<u32>,
}

impl Adjacency {
    /// The upstream and the downstream sides of `dag`.
    pub(super) fn both(dag: &DiGraph<usize, (usize, usize)>) -> (Adjacency, Adjacency) {
        let n = dag.node_count();
        assert!(
            n < u32::MAX as usize && dag.edge_count() < u32::MAX as usize,
            "a graph has fewer than 2^32 nodes and edges"
        );
        let mut start = Vec::with_capacity(n + 1);
        let mut nodes = Vec::with_capacity(dag.edge_count());
        let mut fan_out = vec![0u32; n + 1];
        start.push(0);
        for i in 0..n {
            let from = nodes.len();
            nodes.extend(
                dag.neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                    .map(|x| x.index() as u32),
            );
            nodes[from..].sort_unstable();
            let mut kept = from;
            for k in from..nodes.len() {
                if k == from || nodes[k] != nodes[kept - 1] {
                    nodes[kept] = nodes[k];
                    kept += 1;
                }
            }
            nodes.truncate(kept);
            for &u in &nodes[from..] {
                fan_out[u as usize + 1] += 1;
            }
            start.push(nodes.len() as u32);
        }
        nodes.shrink_to_fit();
        let upstream = Adjacency { start, nodes };
        // The downstream side: counts, prefix sums, then each edge in order of its target,
        // so every node's list comes out ascending.
        for i in 0..n {
            fan_out[i + 1] += fan_out[i];
        }
        let mut next = fan_out.clone();
        let mut down = vec![0u32; upstream.nodes.len()];
        for i in 0..n {
            for &u in upstream.of(i) {
                down[next[u as usize] as usize] = i as u32;
                next[u as usize] += 1;
            }
        }
        (
            upstream,
            Adjacency {
                start: fan_out,
                nodes: down,
            },
        )
    }

    /// Node `i`'s neighbours.
    pub(super) fn of(&self, i: usize) -> &[u32] {
        &self.nodes[self.start[i] as usize..self.start[i + 1] as usize]
    }

    /// Marks in `set` `from` and every node reachable from it on this side (a depth-first
    /// walk with an explicit stack: any depth, on any stack).
    pub(super) fn reach(&self, from: usize, set: &mut [bool]) {
        let mut stack = vec![from];
        set[from] = true;
        while let Some(v) = stack.pop() {
            for &w in self.of(v) {
                if !std::mem::replace(&mut set[w as usize], true) {
                    stack.push(w as usize);
                }
            }
        }
    }
}
