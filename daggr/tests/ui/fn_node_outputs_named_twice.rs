use daggr::fn_node;

#[fn_node(outputs(left, left))]
fn split(x: u32) -> (u32, u32) {
    (x / 2, x - x / 2)
}

fn main() {}
