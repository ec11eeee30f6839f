use daggr::fn_node;

#[fn_node]
fn label(n: u32) -> impl std::fmt::Display {
    n
}

fn main() {}
