use daggr::fn_node;

#[fn_node(cache = "sometimes")]
fn step(x: u64) -> u64 {
    x + 1
}

fn main() {}
