use daggr::fn_node;

struct Handle {
    id: u32,
}

type Fallible<T> = Result<T, String>;

#[fn_node]
fn open(id: u32) -> Fallible<Handle> {
    Ok(Handle { id })
}

fn main() {}
