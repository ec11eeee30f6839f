use daggr::{fn_node, pipeline};

#[fn_node]
fn step(x: u64) -> u64 {
    x + 1
}

pipeline! {
    struct Flow {
        inputs { x: u64 = 1 }
        nodes {
            x = step(x: 2);
        }
    }
}

fn main() {}
