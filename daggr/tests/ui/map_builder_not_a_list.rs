// `each` takes a list: a plain `String` output is not one.
use daggr::{each, FnNode, Graph};

fn main() {
    let mut g = Graph::new("p");
    let word = g.input("word", "fox".to_string());
    let _ = g.map(FnNode::sync("shout", |s: String| s.to_uppercase()), (each(word),));
}
