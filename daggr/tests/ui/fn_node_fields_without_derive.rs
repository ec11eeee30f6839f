use daggr::fn_node;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Split {
    pub head: String,
    pub rest: String,
}

#[fn_node(fields)]
fn split(text: String) -> Split {
    Split { head: text.clone(), rest: text }
}

fn main() {}
