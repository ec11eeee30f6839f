use daggr::fn_node;

#[fn_node(cache = never, retry = 2)]
fn fetch(url: String) -> usize {
    url.len()
}

fn main() {}
