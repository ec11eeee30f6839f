use daggr::{fn_node, Graph};

#[fn_node]
fn render(width: u32, height: u32) -> String {
    format!("{width}x{height}")
}

fn main() {
    let mut g = Graph::new("p");
    let width = g.input("width", 640u32);
    let height = g.input("height", 480u32);
    let _ = g.add(
        RenderNode::new(),
        RenderNode::inputs().width(width).width(height).finish(),
    );
}
