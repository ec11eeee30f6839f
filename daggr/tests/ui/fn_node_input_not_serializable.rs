use daggr::fn_node;

struct Handle {
    id: u32,
}

#[fn_node]
fn close(handle: Handle) -> u32 {
    handle.id
}

fn main() {}
