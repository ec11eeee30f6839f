use daggr::{fn_node, Outputs};
use serde::{Deserialize, Serialize};

#[derive(Outputs, Serialize, Deserialize)]
pub struct Split {
    pub head: String,
    pub rest: String,
}

#[fn_node(fields, outputs(head, rest))]
fn split(text: String) -> Split {
    Split { head: text.clone(), rest: text }
}

fn main() {}
