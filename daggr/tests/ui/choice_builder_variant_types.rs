// The variants of a choice take the same inputs and give the same outputs.
use daggr::{Choice, FnNode, Graph};

fn main() {
    let mut g = Graph::new("p");
    let text = g.input("text", "hi".to_string());
    let _ = g.choose(
        Choice::new("caption", "short", FnNode::sync("short", |s: String| s.len()))
            .or("long", FnNode::sync("long", |s: String| s.to_uppercase())),
        (text,),
    );
}
