use daggr::fn_node;

#[fn_node]
fn identity<T>(x: T) -> T {
    x
}

fn main() {}
