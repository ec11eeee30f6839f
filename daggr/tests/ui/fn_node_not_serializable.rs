use daggr::fn_node;

struct Handle {
    id: u32,
}

#[fn_node]
fn open(id: u32) -> Handle {
    Handle { id }
}

fn main() {}
