use daggr::fn_node;

type Pair = (u32, String);

#[fn_node(outputs(count, label))]
fn describe(text: String) -> Pair {
    (text.len() as u32, text)
}

fn main() {}
