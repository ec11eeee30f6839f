use daggr::{fn_node, pipeline};

#[fn_node(retires = 3)]
fn step(x: u64) -> u64 {
    x + 1
}

// The function and its node type are still emitted (the bad option is left at its
// default), so neither the call nor the pipeline below adds "cannot find" errors.
pipeline! {
    struct Flow {
        inputs { x: u64 = 1 }
        nodes {
            s = step(x: x);
        }
    }
}

fn main() {
    let _ = step(1);
    let _ = StepNode::new();
}
