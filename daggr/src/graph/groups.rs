//! Grouped inputs and input hints: several pipeline inputs shown as one card in the
//! inspector, and what a widget for an input may offer (known choices, a range, long text).
//! Neither changes how anything runs: each input stays its own node, so an edit invalidates
//! exactly that input's readers.

use super::{graph_label, Graph, NodeId, Output, INPUT_KIND};
use crate::error::Error;
use crate::node::InputHint;

/// Pipeline inputs shown together as one card ([`Graph::group_inputs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputGroup {
    /// The group's name (the card's title).
    pub name: String,
    /// The inputs, by node index, in the order given.
    pub members: Vec<usize>,
}

impl Graph {
    /// Shows the pipeline inputs `members` (made with [`Graph::input`]) as one card named
    /// `name` in the inspector. Editing any of them still invalidates exactly its own readers.
    /// A member that is not an input of this graph, an input in two groups, or a group name
    /// used twice is an error at [`Graph::build`].
    ///
    /// ```
    /// # fn main() -> Result<(), daggr::Error> {
    /// let mut g = daggr::Graph::new("render");
    /// let width = g.input("width", 512u32);
    /// let height = g.input("height", 512u32);
    /// g.group_inputs("size", &[width.node_id(), height.node_id()]);
    /// # let g = g.cache(daggr::Cache::temporary()?);
    /// let pipeline = g.build()?;
    /// assert_eq!(pipeline.input_groups()[0].members, [0, 1]);
    /// # Ok(()) }
    /// ```
    pub fn group_inputs(&mut self, name: impl Into<String>, members: &[NodeId]) {
        let name = name.into();
        let mut indices = Vec::with_capacity(members.len());
        for member in members {
            if member.1 != 0 && member.1 != self.id {
                self.problems.push(Error::Failed {
                    node: name.clone(),
                    message: format!(
                        "input group `{name}` names a node of {}: group inputs of graph `{}`",
                        graph_label(member.1),
                        self.name
                    ),
                });
                continue;
            }
            indices.push(member.0);
        }
        self.input_groups.push(InputGroup {
            name,
            members: indices,
        });
    }

    /// Tells the inspector what a widget for `input` may offer: a dropdown of known choices,
    /// a slider over a range, a text area. Without it, the widget follows the input's type
    /// (a dropdown for an enum, a checkbox for `bool`, an upload for media) and what the
    /// nodes it feeds say (a Gradio app's dropdown choices and slider range).
    pub fn input_hint<T>(&mut self, input: &Output<T>, hint: InputHint) {
        if input.graph != 0 && input.graph != self.id {
            self.problems.push(Error::Failed {
                node: format!("#{}", input.node),
                message: format!(
                    "an input hint names a handle from {}: hint inputs of graph `{}`",
                    graph_label(input.graph),
                    self.name
                ),
            });
            return;
        }
        self.input_hints.insert(input.node, hint);
    }

    /// The problems of the input groups and hints, for [`Graph::validate`].
    pub(super) fn group_problems(&self) -> Vec<Error> {
        let mut problems = Vec::new();
        let mut grouped: std::collections::HashMap<usize, &str> = Default::default();
        let is_input = |i: usize| {
            self.nodes
                .get(i)
                .is_some_and(|e| e.node.spec().kind == INPUT_KIND)
        };
        let node_name = |i: usize| {
            self.nodes
                .get(i)
                .map_or_else(|| format!("#{i}"), |e| e.node.spec().name.clone())
        };
        for (n, group) in self.input_groups.iter().enumerate() {
            let fail = |message: String| Error::Failed {
                node: group.name.clone(),
                message: format!("input group `{}`: {message}", group.name),
            };
            if self.input_groups[..n].iter().any(|g| g.name == group.name) {
                problems.push(fail("the name is used by another group".into()));
            }
            if group.members.is_empty() {
                problems.push(fail("it has no inputs".into()));
            }
            for &member in &group.members {
                if !is_input(member) {
                    problems.push(fail(format!(
                        "`{}` is not a pipeline input (made with `Graph::input`)",
                        node_name(member)
                    )));
                } else if let Some(other) = grouped.insert(member, &group.name) {
                    problems.push(fail(format!(
                        "input `{}` is already in group `{other}`: an input is in one group at most",
                        node_name(member)
                    )));
                }
            }
        }
        for &input in self.input_hints.keys() {
            if !is_input(input) {
                problems.push(Error::Failed {
                    node: node_name(input),
                    message: format!(
                        "an input hint is given for `{}`, which is not a pipeline input (made with `Graph::input`)",
                        node_name(input)
                    ),
                });
            }
        }
        problems
    }
}
