use daggr::{fn_node, pipeline};

#[fn_node]
fn scale(x: u64, factor: u64) -> u64 {
    x * factor
}

pipeline! {
    struct Flow {
        inputs { x: u64 = 1 }
        nodes {
            s = scale(x: x);
        }
    }
}

fn main() {}
