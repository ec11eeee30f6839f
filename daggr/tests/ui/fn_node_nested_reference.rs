use daggr::fn_node;

#[fn_node]
fn count(words: Vec<&str>) -> usize {
    words.len()
}

fn main() {}
