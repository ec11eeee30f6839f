// Mapping a node that takes `String` over a list of numbers.
use daggr::{each, FnNode, Graph};

fn main() {
    let mut g = Graph::new("p");
    let numbers = g.input("numbers", vec![1u32, 2, 3]);
    let _ = g.map(FnNode::sync("shout", |s: String| s.to_uppercase()), (each(numbers),));
}
