use daggr::{fn_node, pipeline};

#[fn_node]
fn step(x: u64) -> u64 {
    x + 1
}

pipeline! {
    struct Flow {
        nodes {
            a = step(x: c);
            b = step(x: a);
            c = step(x: b);
        }
    }
}

fn main() {}
