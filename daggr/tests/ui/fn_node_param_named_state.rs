use daggr::fn_node;

#[fn_node]
fn step(__state: u32, delta: u32) -> u32 {
    __state + delta
}

fn main() {}
