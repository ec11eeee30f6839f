use daggr::{FnNode, Graph};

fn main() {
    let mut g = Graph::new("p");
    let n = g.input("n", 1u64);
    let _ = g.add(FnNode::sync("shout", |s: String| s.to_uppercase()), (n,));
}
