use daggr::{fn_node, pipeline};

#[fn_node]
fn step(x: u64) -> u64 {
    x + 1
}

pipeline! {
    struct Flow {
        inputs { x: u64 = 1 }
        nodes {
            a = step(x: x);
            a = step(x: x);
        }
    }
}

fn main() {}
