use daggr::{constant, fn_node, Graph};

#[fn_node]
fn scale(x: u64, factor: u64) -> u64 {
    x * factor
}

fn main() {
    let mut g = Graph::new("p");
    let x = g.input("x", 3u64);
    let wired = ScaleNode::inputs().x(x).factor(constant(2)).factor(constant(3));
    let _ = g.add(ScaleNode::new(), wired.finish());
}
