use daggr::fn_node;

#[fn_node]
fn render(width: u32, finish: String) -> String {
    format!("{width} {finish}")
}

fn main() {}
