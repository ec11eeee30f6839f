//! Names the macros declare for themselves (the input builder's `…Wired` traits, the
//! `wire` helper of a `[node](sources)` node) never shadow the user's own, and an input
//! read only by an output counts as read.
use daggr::{constant, fn_node, pipeline, FnNode};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct TextWired(String);

#[derive(Clone, Serialize, Deserialize)]
pub struct TextNotYetWired(String);

#[fn_node]
fn join(text: TextWired, other: TextNotYetWired) -> String {
    format!("{}{}", text.0, other.0)
}

fn wire(prefix: &str) -> FnNode<(String,), String> {
    let prefix = prefix.to_string();
    FnNode::sync("wire", move |s: String| format!("{prefix}{s}"))
}

#[allow(dead_code)]
trait OneSourcePerInput {}

pipeline! {
    struct Flow {
        inputs {
            text: String = "x".to_string(),
            echo: u32 = 7,
        }
        nodes {
            j = join(text: { TextWired("a".into()) }, other: { TextNotYetWired("b".into()) });
            w = [wire(">")](text);
        }
        outputs {
            echo: u32 = echo,
            joined: String = j,
        }
    }
}

fn main() {
    let mut g = daggr::Graph::new("p");
    let _ = g.add(
        JoinNode::new(),
        JoinNode::inputs()
            .other(constant(TextNotYetWired("b".into())))
            .text(constant(TextWired("a".into())))
            .finish(),
    );
    let _ = Flow::graph();
}
