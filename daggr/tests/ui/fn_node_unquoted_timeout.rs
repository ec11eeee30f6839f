use daggr::fn_node;

#[fn_node(timeout = 30, name = shout)]
fn loud(text: String) -> String {
    text.to_uppercase()
}

fn main() {}
