use daggr::fn_node;

#[fn_node(timeout = "3 fortnights")]
fn step(x: u64) -> u64 {
    x + 1
}

fn main() {}
