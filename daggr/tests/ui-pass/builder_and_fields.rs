//! The builder API with generated node types, and `#[fn_node(fields)]` with `Outputs`.
use daggr::{constant, fn_node, FnNode, Graph, Outputs};
use serde::{Deserialize, Serialize};

#[derive(Outputs, Serialize, Deserialize)]
pub struct Split {
    pub head: String,
    pub rest: Vec<String>,
}

#[fn_node(fields)]
fn split(text: String) -> Split {
    let mut words = text.split_whitespace().map(str::to_string);
    Split {
        head: words.next().unwrap_or_default(),
        rest: words.collect(),
    }
}

#[fn_node(name = "repeat", timeout = "500ms")]
fn repeat(text: String, times: u32) -> Result<String, std::fmt::Error> {
    Ok(text.repeat(times as usize))
}

fn main() {
    let mut g = Graph::new("builder");
    let text = g.input("text", "one two three".to_string());
    let parts = g.add(SplitNode::new(), (text,));
    let again = g.add(
        RepeatNode::named("again"),
        RepeatNode::inputs().times(constant(2)).text(parts.head).finish(),
    );
    let count = g.add(FnNode::sync("count", |r: Vec<String>| r.len()), (parts.rest,));
    let _: (daggr::Output<String>, daggr::Output<usize>) = (again.output, count);
    assert_eq!(split("a b".into()).head, "a");
}
