use daggr::fn_node;

#[fn_node]
fn name(id: u32) -> &'static str {
    if id == 0 { "zero" } else { "other" }
}

fn main() {}
