use daggr::{FnNode, Graph};

fn main() {
    let mut g = Graph::new("p");
    let _ = g.add(FnNode::sync("double", |x: u32| x * 2), (3u32,));
}
