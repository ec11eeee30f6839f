use daggr::fn_node;

#[fn_node(retries = "x")]
fn step(x: u64) -> u64 {
    x + 1
}

fn main() {}
