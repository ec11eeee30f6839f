//! Which nodes a run evaluates: [`Scope`], the [`NodeRef`]s that name its nodes, and how a
//! workspace turns them into node indices.

use petgraph::graph::NodeIndex;
use petgraph::visit::{Dfs, Reversed};

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

impl Pipeline {
    /// The scope as a run span's `scope` field: `all`, `to upper`, `only #3`, … (the
    /// `Debug` form, `To(Name("upper"))`, is noisy in a log line).
    pub(super) fn scope_label(&self, scope: &Scope) -> String {
        let (verb, node) = match scope {
            Scope::All => return "all".to_string(),
            Scope::To(n) => ("to", n),
            Scope::Only(n) => ("only", n),
            Scope::From(n) => ("from", n),
        };
        match self.resolve(node) {
            Ok(i) => format!("{verb} {}", self.0.s.names[i]),
            Err(_) => format!("{verb} {node:?}"),
        }
    }

    pub(super) fn resolve(&self, node: &NodeRef) -> Result<usize, Error> {
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

    pub(super) fn scope_set(&self, scope: &Scope) -> Result<Vec<bool>, Error> {
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
}
