use daggr::fn_node;

#[fn_node]
fn length(text: &str) -> usize {
    text.len()
}

fn main() {}
