use daggr::fn_node;

#[fn_node(retires = 3)]
fn step(x: u64) -> u64 {
    x + 1
}

fn main() {
    // The function is still emitted: no cascade of "cannot find function" errors.
    let _ = step(1);
}
