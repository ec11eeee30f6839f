use daggr::{FnNode, Graph};

fn main() {
    let mut g = Graph::new("p");
    let name = g.input("name", "x".to_string());
    let _ = g.add(FnNode::sync("shout", |s: String| s.to_uppercase()), (name));
}
