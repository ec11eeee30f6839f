use daggr::fn_node;

#[fn_node]
struct Settings {
    size: u32,
}

fn main() {}
